//! Property: a torch.save zip (directory, pickle, views) is accepted or refused with a typed error, never a panic, in bounded
//! time and memory (`wharf_converters::roundtrip::torch`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = wharf_converters::roundtrip::torch(data) {
        panic!("{v:?}");
    }
});
