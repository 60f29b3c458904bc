//! Structure-aware inputs: every input is decoded twice, as it is and resealed (each
//! container section's CRC, or the manifest envelope's, recomputed), so that byte flips inside
//! a section reach the checks behind the checksum instead of stopping at it.

use lakevec::fuzz_api;

/// `data` as a container with every checksum right (`None` if its table does not parse).
pub fn container(data: &[u8]) -> Option<Vec<u8>> {
    fuzz_api::parts_unchecked(data).map(|parts| fuzz_api::write_container(&parts))
}

/// `data` as a manifest whose envelope checksum matches its body.
pub fn manifest(data: &[u8]) -> Option<Vec<u8>> {
    fuzz_api::seal_manifest(&fuzz_api::manifest_body(data)?)
}
