//! Property: arbitrary bytes are accepted or refused with a typed error, never a panic; what
//! is accepted survives write -> parse unchanged (`wharf_converters::roundtrip::safetensors`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = wharf_converters::roundtrip::safetensors(data) {
        panic!("{v:?}");
    }
});
