#![no_main]
//! Dedup index files: segments and clusters (container, META counts, per-file row order,
//! flags, roots, semantic neighbour lists) with the counts taken from the input's first bytes, and manifests.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let rows = u16::from_le_bytes([data[0], data[1]]) as u64;
    let num_perm = 1 + data[2] as usize % 64;
    let bands = 1 + (data[2] >> 6) as usize;
    let body = &data[4..];
    match data[3] % 3 {
        0 => {
            let _ = lakevec::fuzz_api::dedup_segment(body, rows, num_perm, bands);
        }
        1 => {
            // neighbour lists (a semantic index) in half the inputs
            let width = if data[2] & 1 == 1 { num_perm % 16 } else { 0 };
            let _ = lakevec::fuzz_api::dedup_clusters(body, rows, width);
        }
        _ => {
            let _ = lakevec::fuzz_api::dedup_manifest(body);
        }
    }
});
