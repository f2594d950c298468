//! Property: an ONNX model's initializers is accepted or refused with a typed error, never a panic, in bounded
//! time and memory (`wharf_converters::roundtrip::onnx`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = wharf_converters::roundtrip::onnx(data) {
        panic!("{v:?}");
    }
});
