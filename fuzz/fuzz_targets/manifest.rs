//! Property: a bundle manifest is refused with a typed error or accepted; an accepted manifest
//! re-serialises to bytes that parse to the same manifest (`wharf_manifests::Manifest`).
#![no_main]

use std::path::Path;

use wharf_manifests::Manifest;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data, Path::new("manifest.json")) {
        let again = Manifest::parse(&m.to_bytes(), Path::new("manifest.json"))
            .expect("a re-serialised manifest must parse");
        assert_eq!(again.to_bytes(), m.to_bytes());
    }
});
