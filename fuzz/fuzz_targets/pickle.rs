//! Property: a pickle stream through the data-only machine is accepted or refused with a typed error, never a panic, in bounded
//! time and memory (`wharf_converters::roundtrip::pickle`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = wharf_converters::roundtrip::pickle(data) {
        panic!("{v:?}");
    }
});
