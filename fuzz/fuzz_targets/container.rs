#![no_main]
//! The container format (header, section table, per-section CRC) of every index file.
use libfuzzer_sys::fuzz_target;

#[path = "reseal.rs"]
mod reseal;

fuzz_target!(|data: &[u8]| {
    let _ = lakevec::fuzz_api::container(data);
    if let Some(sealed) = reseal::container(data) {
        assert!(lakevec::fuzz_api::container(&sealed), "a resealed container must verify");
    }
});
