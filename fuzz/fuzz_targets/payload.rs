//! Event payloads: any body under any event name (a first field, separated from the
//! body by a 0xFF byte), and under every known event name.
#![no_main]

#[allow(dead_code)]
#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [name, body] = properties::fields::<2>(data);
    properties::payload(&String::from_utf8_lossy(name), body);
});
