#![no_main]
//! Index manifests: the JSON envelope, its checksum, format version 1 (upgraded) and 2, every
//! field and bound (dimension, kinds, segments).
use libfuzzer_sys::fuzz_target;

#[path = "reseal.rs"]
mod reseal;

fuzz_target!(|data: &[u8]| {
    let _ = lakevec::fuzz_api::manifest(data);
    if let Some(sealed) = reseal::manifest(data) {
        let _ = lakevec::fuzz_api::manifest(&sealed);
    }
});
