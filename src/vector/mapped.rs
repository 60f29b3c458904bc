//! Arrays a segment uses in place: owned (just built) or views into the verified bytes of its
//! file (a read-only memory map of a local file, or a downloaded buffer).
//!
//! A view is made only after the container's checks (sizes, checksums) passed and only when
//! the section is aligned for its element type: [`Arr::view`] checks alignment and length with
//! `bytemuck` and falls back to a copy for misaligned sections (files written before sections
//! were aligned, or a buffer the network delivered at an odd address). Elements are stored
//! little-endian; on a big-endian target every section is copied and converted.

use std::marker::PhantomData;
use std::ops::{Deref, Range};
use std::sync::Arc;

use bytemuck::Pod;

/// The bytes behind mapped arrays.
pub enum Backing {
    /// A read-only map of a local index file (pages are loaded as searches touch them), and
    /// the open file (for positioned reads that map nothing: [`Arr::read_row`]).
    Map(memmap2::Mmap, std::fs::File),
    /// A buffer (an object-store download, or a file read whole).
    Bytes(bytes::Bytes),
}

impl Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Map(m, _) => m,
            Backing::Bytes(b) => b,
        }
    }
}

impl std::fmt::Debug for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backing::Map(m, _) => write!(f, "Map({} bytes)", m.len()),
            Backing::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
        }
    }
}

impl Backing {
    /// Map the local file at `path` read-only.
    ///
    /// The map stays valid while the file is replaced or deleted (index files are immutable and
    /// written under new names); truncating it in place would make reads of the lost pages
    /// fault, which lakevec never does and its vacuum avoids by deleting, not truncating.
    pub fn map(file: &std::fs::File) -> std::io::Result<Self> {
        // SAFETY: memmap2 requires that the file is not modified while mapped (UB otherwise).
        // lakevec's index files are immutable: written once under a fresh unique name, fsynced,
        // then only read or deleted (unlinking keeps the mapped inode alive). The map is
        // read-only and its bytes are verified (size, CRC-32) before any array views them.
        let m = unsafe { memmap2::Mmap::map(file)? };
        Ok(Backing::Map(m, file.try_clone()?))
    }

    /// Drop this process's resident copies of a map's pages (its RSS falls; later reads
    /// fault the pages in again from the page cache or the file). Called once a segment's
    /// bytes were verified and decoded, which reads every page: afterwards the pages
    /// resident are the ones searches touch. No-op for a buffer; errors are ignored (the
    /// advice is only an optimisation).
    pub fn release_resident(&self) {
        if let Backing::Map(m, _) = self {
            // SAFETY: MADV_DONTNEED on a private file mapping discards the process's page
            // table entries; a private page that was written would revert to the file's
            // content, which is the hazard memmap2 marks this unsafe for. This map is
            // read-only (`Mmap`, PROT_READ) and never written, so every page already holds the
            // file's content and reads after the advice return the same bytes; the file is
            // immutable (see `map`). No reference observes a change.
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// Bytes of this map or buffer in this process's memory: a buffer's length, a map's
    /// resident pages (its `Rss` in `/proc/self/smaps`: the pages searches touched since the
    /// segment was verified). Off Linux a map counts whole (an upper bound).
    pub fn resident_bytes(&self) -> usize {
        match self {
            Backing::Bytes(b) => b.len(),
            Backing::Map(m, _) => map_rss(m.as_ptr() as usize, m.len()).unwrap_or(m.len()),
        }
    }

    /// Bytes mapped from a file (0 for a buffer).
    pub fn mapped_bytes(&self) -> usize {
        match self {
            Backing::Map(m, _) => m.len(),
            Backing::Bytes(_) => 0,
        }
    }
}

/// The resident bytes (`Rss`) of this process's mappings within `[start, start + len)`, from
/// `/proc/self/smaps` (`None` where it cannot be read).
fn map_rss(start: usize, len: usize) -> Option<usize> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let (mut inside, mut kb) = (false, 0usize);
    for line in smaps.lines() {
        let head = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = head.split_once('-').filter(|_| !head.ends_with(':')) {
            let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
            inside = a >= start && b <= start + len;
        } else if inside && head == "Rss:" {
            kb += line.split_whitespace().nth(1).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        }
    }
    Some(kb * 1024)
}

/// Views at least this large read rows by positioned reads ([`Arr::read_row`]): 64 MiB.
pub const PREAD_MIN_BYTES: usize = 64 << 20;

/// An array of `T`: owned, or a view into a [`Backing`].
pub enum Arr<T: Pod> {
    Owned(Vec<T>),
    View { buf: Arc<Backing>, range: Range<usize>, _t: PhantomData<T> },
}

impl<T: Pod> Arr<T> {
    /// A view of `buf[range]` as `T`s when aligned (and the target is little-endian), else a
    /// converted copy. `range` must lie in `buf` and be a multiple of `size_of::<T>()` long
    /// (the caller checked both against the counts it expects).
    pub fn view(buf: &Arc<Backing>, range: Range<usize>) -> Self {
        let bytes = &buf[range.clone()];
        if cfg!(target_endian = "little") && bytemuck::try_cast_slice::<u8, T>(bytes).is_ok() {
            return Arr::View { buf: buf.clone(), range, _t: PhantomData };
        }
        let size = std::mem::size_of::<T>();
        let mut out: Vec<T> = vec![T::zeroed(); bytes.len() / size];
        let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut out);
        dst.copy_from_slice(&bytes[..dst.len()]);
        if cfg!(target_endian = "big") {
            for chunk in dst.chunks_exact_mut(size) {
                chunk.reverse();
            }
        }
        Arr::Owned(out)
    }

    /// Bytes this array owns (0 for a view: its bytes count with its [`Backing`]).
    pub fn owned_bytes(&self) -> usize {
        match self {
            Arr::Owned(v) => std::mem::size_of_val(v.as_slice()),
            Arr::View { .. } => 0,
        }
    }

    /// Whether the array is a view into a file map or buffer (not a copy).
    pub fn is_view(&self) -> bool {
        matches!(self, Arr::View { .. })
    }

    /// Row `i` of `width` elements into `out` (`width` long; the row must lie in the array).
    /// A view of a file map of at least [`PREAD_MIN_BYTES`] reads it with a positioned read
    /// (`pread`), which copies from the page cache without mapping pages into the process:
    /// re-ranking a few candidates this way keeps the rest of a large float section out of
    /// resident memory, where touching the map would fault in the pages around each row (the
    /// kernel's fault-around, 64 KiB). Smaller views, owned arrays and buffers copy from
    /// memory (a system call per row costs more than a small section's pages); a failed read
    /// falls back to the map.
    pub fn read_row(&self, width: usize, i: usize, out: &mut [T]) {
        #[cfg(unix)]
        if let Arr::View { buf, range, .. } = self {
            if let (Backing::Map(_, file), true) = (&**buf, range.len() >= PREAD_MIN_BYTES) {
                use std::os::unix::fs::FileExt;
                let at = range.start + i * width * std::mem::size_of::<T>();
                if file.read_exact_at(bytemuck::cast_slice_mut(out), at as u64).is_ok() {
                    return;
                }
            }
        }
        out.copy_from_slice(&self[i * width..(i + 1) * width]);
    }

    /// The bytes a view lives in (`None` when owned).
    pub fn backing(&self) -> Option<&Arc<Backing>> {
        match self {
            Arr::View { buf, .. } => Some(buf),
            Arr::Owned(_) => None,
        }
    }
}

impl<T: Pod> Deref for Arr<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        match self {
            Arr::Owned(v) => v,
            // Alignment and length were checked when the view was made; `buf` is immutable.
            Arr::View { buf, range, .. } => bytemuck::cast_slice(&buf[range.clone()]),
        }
    }
}

impl<T: Pod> From<Vec<T>> for Arr<T> {
    fn from(v: Vec<T>) -> Self {
        Arr::Owned(v)
    }
}

impl<T: Pod> Default for Arr<T> {
    fn default() -> Self {
        Arr::Owned(Vec::new())
    }
}

impl<T: Pod> Clone for Arr<T> {
    fn clone(&self) -> Self {
        match self {
            Arr::Owned(v) => Arr::Owned(v.clone()),
            Arr::View { buf, range, .. } => Arr::View { buf: buf.clone(), range: range.clone(), _t: PhantomData },
        }
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for Arr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arr::Owned(v) => write!(f, "Owned({} items)", v.len()),
            Arr::View { range, .. } => write!(f, "View({} bytes)", range.len()),
        }
    }
}

impl<T: Pod + PartialEq> PartialEq for Arr<T> {
    fn eq(&self, o: &Self) -> bool {
        **self == **o
    }
}

/// The little-endian bytes of `v`: the values themselves on a little-endian target (no copy),
/// a converted copy otherwise.
pub fn le_bytes<T: Pod>(v: &[T]) -> std::borrow::Cow<'_, [u8]> {
    let bytes: &[u8] = bytemuck::cast_slice(v);
    if cfg!(target_endian = "little") {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = bytes.to_vec();
    for chunk in out.chunks_exact_mut(std::mem::size_of::<T>()) {
        chunk.reverse();
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_sections_are_views_misaligned_are_copies() {
        let mut raw = vec![0u8; 64];
        raw[8..12].copy_from_slice(&1.5f32.to_le_bytes());
        raw[13..17].copy_from_slice(&2.5f32.to_le_bytes());
        let buf = Arc::new(Backing::Bytes(bytes::Bytes::from(raw)));
        let base = buf.as_ptr() as usize;
        let a: Arr<f32> = Arr::view(&buf, 8..12);
        let b: Arr<f32> = Arr::view(&buf, 13..17);
        assert_eq!((&a[..], &b[..]), (&[1.5f32][..], &[2.5f32][..]));
        assert_eq!(a.is_view(), (base + 8) % 4 == 0);
        assert_eq!(b.is_view(), (base + 13) % 4 == 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn resident_bytes_of_a_map_follow_the_pages_touched() {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &vec![7u8; 64 << 12]).unwrap();
        let b = Backing::map(&f).unwrap();
        b.release_resident();
        let before = b.resident_bytes();
        let sum: u64 = b.iter().step_by(4096).map(|&x| x as u64).sum();
        assert_eq!(sum, 7 * 64);
        assert!(before < 64 << 12 && b.resident_bytes() == 64 << 12, "{before} {}", b.resident_bytes());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn read_row_of_a_map_view_reads_without_mapping() {
        let mut f = tempfile::tempfile().unwrap();
        let vals: Vec<f32> = (0..(PREAD_MIN_BYTES / 4 + 2048)).map(|i| i as f32).collect();
        std::io::Write::write_all(&mut f, bytemuck::cast_slice(&vals)).unwrap();
        let b = Arc::new(Backing::map(&f).unwrap());
        let a: Arr<f32> = Arr::view(&b, 4096..vals.len() * 4);
        assert!(a.is_view());
        b.release_resident();
        let before = b.resident_bytes();
        let mut row = [0f32; 16];
        for i in (0..4000).step_by(97) {
            a.read_row(16, i, &mut row);
            assert_eq!(row[0], (1024 + 16 * i) as f32);
            assert_eq!(&row[..], &a[16 * i..16 * i + 16]);
        }
        // the comparison above touched the map itself: read again after a release
        b.release_resident();
        let before2 = b.resident_bytes();
        (0..4000).step_by(97).for_each(|i| a.read_row(16, i, &mut row));
        assert!(b.resident_bytes() <= before2.max(before), "{} > {before2}", b.resident_bytes());
        let owned: Arr<f32> = vals[..64].to_vec().into();
        owned.read_row(16, 3, &mut row);
        assert_eq!(row[0], 48.0);
        // a small view reads through the map
        let small: Arr<f32> = Arr::view(&b, 4096..8192);
        b.release_resident();
        small.read_row(16, 1, &mut row);
        assert_eq!(row[0], (1024 + 16) as f32);
        assert!(b.resident_bytes() >= 4096);
    }
}
