//! The memory budget of a build or refresh: how the table's data files are cut into segments
//! so that one segment's read, structure and write fit in `memory_limit`, whatever the table's
//! size.
//!
//! A segment holds whole data files (its addresses are (file, row)); files are taken in table
//! order and a segment is cut before the file that would take it over the budget. The estimate
//! of what a row costs while its segment is built ([`Budget::row_bytes`]):
//! the float32 vector (`4 * dim`), its address (8), a key (16, a guess for ids), and for HNSW the
//! native builder's layer-0 list (`4 * (1 + 2m)`) plus its lock, level and upper-layer slot
//! (32). Three quarters of the budget go to the segment; the rest is left for the read batches
//! in flight (whose number is bounded by it too, [`Budget::read_concurrency`]) and the process.
//! A single file larger than the budget still becomes one segment (a segment cannot split a
//! file): lakevec then warns through the log and needs that file's size.

use crate::error::{LakeError, Result};
use crate::index::kind::IndexKind;
use crate::lake::datafiles::DataFileEntry;

/// The smallest budget accepted (below it the process's own overhead dominates).
pub const MIN_BYTES: u64 = 16 << 20;

/// A build's memory budget.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Bytes one segment's build may hold (see the module docs).
    pub bytes: u64,
    /// At most this many rows per segment (`usize::MAX`: no limit besides `bytes`).
    pub max_segment_rows: usize,
}

impl Budget {
    /// `memory_limit` bytes (default: [`Budget::default_bytes`]) and `max_segment_rows`.
    ///
    /// Errors: `InvalidArgument` for a limit under [`MIN_BYTES`] or zero rows.
    pub fn new(memory_limit: Option<u64>, max_segment_rows: Option<usize>) -> Result<Self> {
        let bytes = memory_limit.unwrap_or_else(Self::default_bytes);
        if bytes < MIN_BYTES {
            return Err(LakeError::InvalidArgument(format!(
                "memory_limit must be at least {} MiB, got {bytes} bytes",
                MIN_BYTES >> 20
            )));
        }
        if max_segment_rows == Some(0) {
            return Err(LakeError::InvalidArgument("max_segment_rows must be at least 1".into()));
        }
        Ok(Budget { bytes, max_segment_rows: max_segment_rows.unwrap_or(usize::MAX) })
    }

    /// Half the memory available to new allocations when the call starts (`MemAvailable` of
    /// /proc/meminfo, else half the physical memory), at least [`MIN_BYTES`].
    pub fn default_bytes() -> u64 {
        let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .map(|kib| kib * 1024)
        });
        let bytes = available.unwrap_or_else(|| {
            // SAFETY: sysconf only reads system configuration values.
            let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
            pages.max(0) as u64 * page.max(0) as u64
        });
        (bytes / 2).max(MIN_BYTES)
    }

    /// Estimated bytes a row costs while its segment is built as `kind` (without its float
    /// vector; a quantized kind's code counts, at `dim` bytes for SQ8 and the padded dimension's
    /// bits or bytes for RaBitQ, 384 dimensions when not known yet).
    pub fn row_overhead(kind: &IndexKind, dim: Option<usize>) -> u64 {
        let structure = match kind {
            IndexKind::Hnsw(p) => 4 * (1 + 2 * p.m as u64) + 32,
            IndexKind::HnswSq8(p) => 4 * (1 + 2 * p.hnsw.m as u64) + 32 + dim.unwrap_or(384) as u64 + 4,
            // codes, factors and centroid number, and their copy while identical records are
            // grouped
            IndexKind::HnswRabitq(p) => {
                let dp = crate::vector::rotation::padded_dim(dim.unwrap_or(384)) as u64;
                4 * (1 + 2 * p.hnsw.m as u64) + 32 + 2 * (if p.bits == 1 { dp / 8 } else { dp } + 14)
            }
            IndexKind::Flat => 0,
        };
        8 + 16 + structure
    }

    /// Estimated bytes of file `e` while its segment is built: its live rows (known from the
    /// table metadata, else guessed from its size) times the row cost, the vectors at
    /// `4 * dim` each (or the file's size when the dimension is not known yet).
    pub fn file_bytes(e: &DataFileEntry, dim: Option<usize>, kind: &IndexKind) -> (u64, u64) {
        let rows = e.live_rows().or(e.num_records).unwrap_or_else(|| e.size / (4 * dim.unwrap_or(16).max(1) as u64));
        let vectors = match dim {
            Some(d) => rows * 4 * d as u64,
            None => e.size,
        };
        (rows, vectors + rows * Self::row_overhead(kind, dim))
    }

    /// Cut `files` (indices into `entries`, in order) into groups, each built as one segment
    /// within the budget and `max_segment_rows`.
    pub fn plan(
        &self,
        entries: &[DataFileEntry],
        files: &[usize],
        dim: Option<usize>,
        kind: &IndexKind,
    ) -> Vec<Vec<usize>> {
        let cap = self.bytes / 4 * 3;
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let (mut cur, mut bytes, mut rows) = (Vec::new(), 0u64, 0u64);
        for &i in files {
            let (r, b) = Self::file_bytes(&entries[i], dim, kind);
            if !cur.is_empty() && (bytes + b > cap || rows + r > self.max_segment_rows as u64) {
                groups.push(std::mem::take(&mut cur));
                (bytes, rows) = (0, 0);
            }
            if b > cap {
                log::warn!(
                    "data file '{}' alone needs about {} MiB to index, over the memory budget of {} MiB",
                    entries[i].path,
                    b >> 20,
                    self.bytes >> 20
                );
            }
            cur.push(i);
            bytes += b;
            rows += r;
        }
        if !cur.is_empty() || groups.is_empty() {
            groups.push(cur);
        }
        groups
    }

    /// How many of `files` to read at once (at most `wanted`): their batches in flight stay
    /// within a quarter of the budget.
    pub fn read_concurrency(&self, entries: &[DataFileEntry], files: &[usize], wanted: usize) -> usize {
        let largest = files.iter().map(|&i| entries[i].size).max().unwrap_or(0).max(1);
        ((self.bytes / 4 / largest) as usize).clamp(1, wanted.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::hnsw_params::HnswParams;

    fn entry(rows: u64) -> DataFileEntry {
        DataFileEntry {
            path: format!("f{rows}.parquet"),
            store: std::sync::Arc::new(object_store::memory::InMemory::new()),
            object: "x".into(),
            size: rows * 400,
            tag: None,
            num_records: Some(rows),
            partition: Vec::new(),
            deleted: crate::lake::datafiles::Deleted::None,
        }
    }

    #[test]
    fn files_are_cut_into_groups_within_the_budget() {
        let kind = IndexKind::Hnsw(HnswParams { m: 16, ef_construction: 100, builder: Default::default() });
        let entries: Vec<DataFileEntry> = (0..10).map(|_| entry(10_000)).collect();
        let per_file = Budget::file_bytes(&entries[0], Some(96), &kind).1;
        assert_eq!(per_file, 10_000 * (384 + 8 + 16 + 132 + 32));
        let b = Budget::new(Some(per_file * 4), None).unwrap(); // 3 files fit in 3/4 of it
        let all: Vec<usize> = (0..10).collect();
        let plan = b.plan(&entries, &all, Some(96), &kind);
        assert_eq!(plan, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]);
        let b = Budget::new(Some(1 << 40), Some(25_000)).unwrap();
        assert_eq!(b.plan(&entries, &all, Some(96), &kind).len(), 5);
        assert_eq!(b.plan(&entries, &[], Some(96), &kind), vec![Vec::<usize>::new()]);
        assert!(Budget::new(Some(1000), None).is_err());
        assert!(Budget::new(None, Some(0)).is_err());
        assert!(Budget::default_bytes() >= MIN_BYTES);
    }
}
