//! Request headers as the intake reads them: the fixture format that carries them,
//! their redaction for storage, and authentication by webhook id, signature, Basic
//! or bearer, for any bytes read as a request.
#![no_main]

#[allow(dead_code)]
#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Half the inputs also meet a default authentication for unknown webhook ids.
    properties::headers(data, data.len() % 2 == 0);
});
