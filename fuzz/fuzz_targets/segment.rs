#![no_main]
//! Segment files: META (JSON), FILES/FSTART/ROWS/VECTORS, the kind's sections (HNSW graph),
//! and KEYS (an Arrow IPC stream).
use libfuzzer_sys::fuzz_target;

#[path = "reseal.rs"]
mod reseal;

fuzz_target!(|data: &[u8]| {
    let _ = lakevec::fuzz_api::segment(data);
    if let Some(sealed) = reseal::container(data) {
        let _ = lakevec::fuzz_api::segment(&sealed);
    }
});
