#![no_main]
//! Delta deletion vectors: input = 1 flag byte (bit 0: file-backed framing) + 8 bytes row
//! count + 8 bytes cardinality + the vector (magic + portable RoaringTreemap). File-backed
//! vectors are framed here with their size and CRC right, so mutations reach the bitmap.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let framed = data[0] & 1 == 1;
    let rows = u64::from_le_bytes(data[1..9].try_into().unwrap());
    let cardinality = i64::from_le_bytes(data[9..17].try_into().unwrap());
    let body = &data[17..];
    if framed {
        let mut b = (body.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(body);
        b.extend_from_slice(&crc32fast_hash(body).to_be_bytes());
        let _ = lakevec::fuzz_api::deletion_vector(&b, true, cardinality, rows);
    } else {
        let _ = lakevec::fuzz_api::deletion_vector(body, false, cardinality, rows);
    }
});

/// CRC-32 (IEEE), bitwise: the framing's checksum without another dependency.
fn crc32fast_hash(b: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}
