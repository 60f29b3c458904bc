#![no_main]
//! Tombstone files: input = 8 bytes (the segment's row count, little-endian) + the file; the
//! count of ids is taken from the DELETED section's length, off by the low bits of the first
//! byte (so counts that disagree with the bytes are tried too).
use libfuzzer_sys::fuzz_target;

#[path = "reseal.rs"]
mod reseal;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let rows = u64::from_le_bytes(data[..8].try_into().unwrap());
    let file = &data[8..];
    let ids = lakevec::fuzz_api::parts_unchecked(file)
        .and_then(|p| p.first().map(|(_, b)| b.len() as u64 / 8))
        .unwrap_or(0);
    let count = match data[0] & 3 {
        0 => ids,
        1 => ids + 1,
        2 => ids.saturating_sub(1),
        _ => u64::MAX,
    };
    let _ = lakevec::fuzz_api::tombstones(file, count, rows);
    if let Some(sealed) = reseal::container(file) {
        let _ = lakevec::fuzz_api::tombstones(&sealed, count, rows);
    }
});
