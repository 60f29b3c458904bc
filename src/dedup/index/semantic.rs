//! Semantic dedup that follows a vector index: the clusters of `dedup.semantic` (each live
//! row joined to those of its `k` nearest other rows whose similarity, `1 - distance`, is at
//! least the threshold) kept up to date as the index gains and loses rows.
//!
//! Per live row the clusters file stores its above-threshold neighbour list (the edges it
//! contributes). An update follows what a full run over the new version would compute:
//! - a new row's list is its `k`-nearest search over the whole index, as in `knn_graph`;
//! - a stored row's list can change only if a new row comes within the threshold of it
//!   (entering its k nearest, or pushing out an above-threshold neighbour: both need a
//!   similarity >= threshold), or a row of its list was deleted. The first kind are found
//!   by a range search around each new row (its nearest rows, doubling k while the last is
//!   still within the threshold), the second from the stored lists; both are searched again.
//!   Other rows keep their lists: a full run would give them the same ones.
//! - components that held a re-searched or deleted row are formed again from their members'
//!   lists; every other component keeps its members (its edges never left it) and can only
//!   merge with the rows a new or re-searched list reaches.
//!
//! With an exact (`flat`) vector index the clusters equal one `dedup.semantic` run over the
//! covered version; with a graph index the searches are approximate in the same way the full
//! run's are (a stored row that a new row's search missed, but whose own search would find the
//! new row, keeps its list).
//!
//! Resident: per row its address and root (~21 bytes) and `k` neighbours (`4 k` bytes), a map
//! of the vector index's live rows to index rows (16 bytes per row), and the vector index's
//! segments as searches map them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rayon::prelude::*;

use crate::dedup::index::commit::{commit_version, Target};
use crate::dedup::index::format::{Clusters, DedupParams, DedupSegment, SegFile};
use crate::dedup::index::ops::{best_match, liveness, new_rows_batch, too_many, DedupIndex, Update};
use crate::dedup::minhash::UnionFind;
use crate::error::{LakeError, Result};
use crate::index::build::{Phase, Progress};
use crate::index::handle::VectorIndex;
use crate::index::knn_graph::{graph_sources, live_nodes, node_knn};
use crate::index::location::IndexAt;
use crate::index::sources::SearchSource;
use crate::runtime::{pool, run_cpu, CancelToken};
use crate::vector::distance::Metric;

/// A neighbour: (index row, similarity).
type Nbr = (u64, f64);

/// The searches of one update: the vector index's sources and the two-way map between its
/// live (source, node) pairs and the dedup index's global rows.
struct Space {
    srcs: Arc<Vec<SearchSource>>,
    metric: Metric,
    k: usize,
    ef: usize,
    threshold: f64,
    /// Per source, per node: the global row (u32::MAX: not an index row).
    row_of: Vec<Vec<u32>>,
    /// Per global row: its (source, node), None without a vector.
    node_of: Vec<Option<(usize, u32)>>,
    live: Vec<bool>,
}

impl Space {
    /// Hits of global row `g`'s vector: its `kk` nearest other rows, as index rows with
    /// their similarity (live rows only).
    fn search(&self, g: u64, kk: usize) -> Vec<Nbr> {
        let Some(node) = self.node_of[g as usize] else { return vec![] };
        node_knn(&self.srcs, self.metric, node, kk, self.ef)
            .into_iter()
            .filter_map(|(d, sj, j)| {
                let r = self.row_of[sj][j as usize];
                (r != u32::MAX && self.live[r as usize]).then_some((r as u64, 1.0 - d as f64))
            })
            .collect()
    }

    /// Row `g`'s list: its k nearest at similarity >= threshold, nearest first.
    fn list(&self, g: u64) -> Vec<Nbr> {
        self.search(g, self.k).into_iter().filter(|h| h.1 >= self.threshold).collect()
    }

    /// The stored rows (below `old_rows`) within the threshold of new row `g`, k doubling
    /// while the farthest hit is still within it.
    fn within(&self, g: u64, first: &[Nbr], old_rows: u64, live_total: usize) -> Vec<u64> {
        let mut kk = self.k;
        let mut hits = first.to_vec();
        while hits.len() >= kk && hits.last().is_some_and(|h| h.1 >= self.threshold) && kk < live_total {
            kk = (kk * 2).min(live_total);
            hits = self.search(g, kk);
        }
        hits.into_iter().filter(|h| h.1 >= self.threshold && h.0 < old_rows).map(|h| h.0).collect()
    }
}

/// The vector index a semantic index follows (its newest version, opened with the index's
/// storage options and only in a store the caller configured, as for the table); None for
/// the other methods.
pub async fn followed_index(idx: &DedupIndex) -> Result<Option<VectorIndex>> {
    let Some(uri) = idx.manifest.vector_index.as_deref() else { return Ok(None) };
    idx.at.check_table_store(uri)?;
    Ok(Some(VectorIndex::open(IndexAt::new(uri, idx.at.options.clone())?).await?))
}

/// Build (`prev` None) or bring `prev` to the vector index `vidx`'s version: the rows of the
/// data files it holds that the dedup index does not are added with their neighbour lists,
/// deleted rows leave, stored rows whose lists may have changed are searched again, and the
/// affected components are formed again (see the module docs). Commits a version unless
/// nothing changed.
#[allow(clippy::too_many_arguments)]
pub async fn semantic_update(
    at: IndexAt,
    prev: Option<Arc<DedupIndex>>,
    vidx: &VectorIndex,
    name: &str,
    params: &DedupParams,
    num_threads: Option<usize>,
    cancel: &CancelToken,
    progress: &Progress,
) -> Result<Update> {
    let st = vidx.state();
    let vm = &st.manifest;
    if !matches!(vm.metric, Metric::Cosine | Metric::Dot) {
        return Err(LakeError::InvalidArgument(format!(
            "semantic dedup needs a cosine or dot index, the one at '{}' is {}",
            vidx.at.uri,
            vm.metric.as_str()
        )));
    }
    let table = vidx.table_at(vm.table_version).await?;
    let entries = table.entries().await?;
    let (now_live, missing) = liveness(prev.as_deref(), &entries)?;
    let (k, threshold) = (params.num_perm, params.threshold);
    let (srcs, metric, ef) = graph_sources(vidx, k, params.ef, num_threads, cancel).await?;
    let nodes = live_nodes(&srcs);
    // The new rows: those of the vector index's live rows in files the dedup index lacks.
    let mut by_file: HashMap<&str, Vec<(u64, usize, u32)>> = HashMap::new();
    for &(si, i) in &nodes {
        let seg = srcs[si].segment.seg();
        by_file.entry(seg.files[seg.file_of(i)].as_str()).or_default().push((seg.rows[i as usize], si, i));
    }
    by_file.values_mut().for_each(|l| l.sort_unstable());
    let (mut files, mut fstart, mut rows, mut new_nodes) = (vec![], vec![0u32], vec![], vec![]);
    for &fi in &missing {
        let e = &entries[fi];
        let Some(list) = by_file.get(e.path.as_str()) else { continue };
        rows.extend(list.iter().map(|x| x.0));
        new_nodes.extend(list.iter().map(|x| (x.1, x.2)));
        files.push(SegFile { path: e.path.clone(), size: e.size, tag: e.tag.clone() });
        fstart.push(u32::try_from(rows.len()).map_err(|_| too_many())?);
    }
    let old_rows = now_live.len() as u64;
    let n_new = rows.len();
    let old_live = prev.as_ref().map(|p| p.clusters.live.clone()).unwrap_or_default();
    let unchanged = n_new == 0 && old_live == now_live;
    if let Some(p) = prev.as_ref().filter(|p| unchanged && p.manifest.table_version == table.version()) {
        return Ok(Update { index: p.clone(), new_rows: new_rows_batch(p, &[], &[])?, committed: false });
    }
    let total = old_rows + n_new as u64;
    if total >= u32::MAX as u64 {
        return Err(too_many());
    }
    let seg = Arc::new(DedupSegment {
        valid: vec![true; n_new],
        files,
        fstart,
        rows: rows.into(),
        num_perm: 0,
        sigs: Default::default(),
        bands: 0,
        band_keys: Default::default(),
        band_rows: Default::default(),
        dirs: Default::default(),
    });
    // The two-way map between vector index nodes and index rows.
    let mut row_of: Vec<Vec<u32>> = srcs.iter().map(|s| vec![u32::MAX; s.segment.seg().len()]).collect();
    let mut node_of: Vec<Option<(usize, u32)>> = vec![None; total as usize];
    if let Some(p) = prev.as_deref() {
        for (g, live) in now_live.iter().enumerate() {
            let (f, r) = p.address(g as u64);
            let hit = by_file.get(f).and_then(|l| l.binary_search_by_key(&r, |x| x.0).ok().map(|j| l[j]));
            if let (true, Some((_, si, i))) = (*live, hit) {
                row_of[si][i as usize] = g as u32;
                node_of[g] = Some((si, i));
            }
        }
    }
    for (j, &(si, i)) in new_nodes.iter().enumerate() {
        row_of[si][i as usize] = (old_rows as usize + j) as u32;
        node_of[old_rows as usize + j] = Some((si, i));
    }
    let mut live = now_live;
    live.extend(std::iter::repeat_n(true, n_new));
    let space = Space { srcs, metric, k, ef, threshold, row_of, node_of, live };
    let (old_root, old_nbr, width) = match prev.as_deref() {
        Some(p) => (p.clusters.root.clone(), p.clusters.nbr.clone(), p.clusters.width),
        None => (vec![], vec![], k),
    };
    if width != k {
        return Err(LakeError::CorruptIndex(format!("dedup index '{}': neighbour lists of {width}, k={k}", at.uri)));
    }
    progress.set_phase(Phase::Build);
    progress.total.store(n_new, Ordering::Relaxed);
    let c2 = cancel.clone();
    let (clusters, matched) = run_cpu(pool(num_threads)?, cancel.clone(), move || {
        let live_total = space.live.iter().filter(|&&l| l).count();
        // New rows: their lists, and the stored rows within the threshold of them.
        let found: Vec<(Vec<Nbr>, Vec<u64>)> = (old_rows..total)
            .into_par_iter()
            .map(|g| {
                c2.check()?;
                let first = space.search(g, k);
                let near = space.within(g, &first, old_rows, live_total);
                Ok((first.into_iter().filter(|h| h.1 >= threshold).collect(), near))
            })
            .collect::<Result<_>>()?;
        // Stored rows to search again: near a new row, or listing a deleted row.
        let mut again: HashSet<u64> = found.iter().flat_map(|f| f.1.iter().copied()).collect();
        let mut hit_roots: HashSet<u64> = HashSet::new();
        for g in 0..old_rows as usize {
            if old_live[g] && !space.live[g] {
                hit_roots.insert(old_root[g]);
            } else if space.live[g]
                && old_nbr[g * k..(g + 1) * k].iter().any(|&x| x != u32::MAX && !space.live[x as usize])
            {
                again.insert(g as u64);
            }
        }
        let again: Vec<u64> = again.into_iter().collect();
        let redone: Vec<Vec<Nbr>> = again
            .par_iter()
            .map(|&g| {
                c2.check()?;
                Ok(space.list(g))
            })
            .collect::<Result<_>>()?;
        // Every row's list.
        let mut nbr = vec![u32::MAX; total as usize * k];
        for g in 0..old_rows as usize {
            if space.live[g] {
                nbr[g * k..(g + 1) * k].copy_from_slice(&old_nbr[g * k..(g + 1) * k]);
            }
        }
        let mut put = |g: u64, l: &[Nbr]| {
            for (j, h) in l.iter().enumerate() {
                nbr[g as usize * k + j] = h.0 as u32;
            }
            for j in l.len()..k {
                nbr[g as usize * k + j] = u32::MAX;
            }
        };
        for (&g, l) in again.iter().zip(&redone) {
            put(g, l);
            hit_roots.insert(old_root[g as usize]);
        }
        for (j, f) in found.iter().enumerate() {
            put(old_rows + j as u64, &f.0);
        }
        // Components: untouched ones keep their members; the rest are formed from the lists.
        let mut uf = UnionFind::new(total as usize);
        for (g, &r) in old_root.iter().enumerate() {
            if space.live[g] && !hit_roots.contains(&r) {
                uf.union(g as u32, r as u32);
            }
        }
        for g in 0..total as usize {
            let redo = g >= old_rows as usize || hit_roots.contains(&old_root[g]);
            if space.live[g] && redo {
                for &x in nbr[g * k..(g + 1) * k].iter().take_while(|&&x| x != u32::MAX) {
                    uf.union(g as u32, x);
                }
            }
        }
        let root: Vec<u64> =
            (0..total).map(|g| if space.live[g as usize] { uf.find(g as u32) as u64 } else { g }).collect();
        let matched: Vec<Option<Nbr>> = found
            .iter()
            .map(|f| best_match(&f.0.iter().copied().filter(|h| h.0 < old_rows).collect::<Vec<_>>()))
            .collect();
        Ok((Clusters { root, live: space.live, width: k, nbr }, matched))
    })
    .await?;
    progress.done.store(n_new, Ordering::Relaxed);
    progress.set_phase(Phase::Write);
    let target = Target {
        table: &table,
        name,
        column: &vm.column,
        params,
        vector_index: Some(vidx.at.loc.url_of(vidx.at.root())),
    };
    let files_encoded = seg.files.len();
    let (segs, refs) = if n_new > 0 { (vec![seg], vec![None]) } else { (vec![], vec![]) };
    let index = commit_version(at, prev.as_deref(), &target, segs, refs, clusters, files_encoded).await?;
    let news: Vec<u64> = (old_rows..total).collect();
    let new_rows = new_rows_batch(&index, &news, &matched)?;
    Ok(Update { index, new_rows, committed: true })
}
