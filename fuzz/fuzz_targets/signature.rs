//! The `X-ActiGraph-Signature` header: parsing, verification and signing, for any
//! passcode, header text and body (three fields separated by a 0xFF byte).
#![no_main]

#[allow(dead_code)]
#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [passcode, header, body] = properties::fields::<3>(data);
    properties::signature(passcode, &String::from_utf8_lossy(header), body);
});
