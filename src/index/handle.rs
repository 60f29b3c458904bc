//! An opened vector index: one [`IndexState`] behind an `RwLock<Arc<..>>`. A search takes the
//! `Arc` once, so it sees one version whole while a refresh in another thread swaps in the
//! next. Building is in [`crate::index::build`], refresh and compaction in their own modules,
//! search in [`crate::index::search`].

use std::sync::{Arc, Mutex, RwLock};

use crate::error::{LakeError, Result};
use crate::index::location::IndexAt;
use crate::index::manifest::{self, CommitInfo, SegmentRef};
use crate::index::sources::SearchSource;
use crate::index::state::{load_state, IndexState, LoadedSegment};
use crate::lake::pin::TablePin;
use crate::lake::storage::{parse_uri, store_for};
use crate::lake::table::{latest_fingerprint, Format, LakeTable};

/// The indexed table at its latest version, with the fingerprint it was opened at and when
/// that fingerprint was last confirmed.
pub struct LatestTable {
    pub fingerprint: String,
    pub table: Arc<LakeTable>,
    pub checked: std::time::Instant,
}

/// Unfiltered search sources computed for (index version, table fingerprint + stale mode).
pub(crate) type SourcesCache = Option<(u64, String, Arc<Vec<SearchSource>>)>;

/// An opened index.
pub struct VectorIndex {
    pub at: IndexAt,
    state: RwLock<Arc<IndexState>>,
    /// The table's latest version as last opened (reused while its fingerprint holds).
    latest: Mutex<Option<Arc<LatestTable>>>,
    pub(crate) sources_cache: Mutex<SourcesCache>,
    /// The table at the last pinned version a search opened (a version's files never change).
    pinned: Mutex<Option<(i64, Arc<LakeTable>)>>,
    /// Whether this process wrote the manifest's table location (the handle a build returns):
    /// then its store is not checked (`IndexAt::check_table_store`); an opened index is.
    table_trusted: bool,
    /// How long a confirmed view of the latest table serves searches before the table is
    /// checked for a new version, in nanoseconds (0: every search checks; `u64::MAX`: only
    /// `reload()` does).
    consistency_ns: std::sync::atomic::AtomicU64,
}

impl VectorIndex {
    /// Open the newest version of the index at `at`.
    pub async fn open(at: IndexAt) -> Result<Self> {
        Self::open_version(at, None).await
    }

    /// Open index version `version` (the newest when `None`).
    pub async fn open_version(at: IndexAt, version: Option<u64>) -> Result<Self> {
        let state = load_state(&at, version).await?;
        let mut idx = Self::with_state(at, state);
        idx.table_trusted = false;
        Ok(idx)
    }

    /// Check the manifest's table location unless the caller vouched for it.
    fn check_table(&self, table_uri: &str) -> Result<()> {
        match self.table_trusted {
            true => Ok(()),
            false => self.at.check_table_store(table_uri),
        }
    }

    pub(crate) fn with_state(at: IndexAt, state: IndexState) -> Self {
        VectorIndex {
            at,
            state: RwLock::new(Arc::new(state)),
            latest: Default::default(),
            sources_cache: Default::default(),
            pinned: Default::default(),
            table_trusted: true,
            consistency_ns: Default::default(),
        }
    }

    /// Set the consistency interval (see `consistency_ns`; `None`: never check by itself).
    pub fn set_consistency_interval(&self, d: Option<std::time::Duration>) {
        let ns = d.map_or(u64::MAX, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.consistency_ns.store(ns, std::sync::atomic::Ordering::Relaxed);
    }

    /// The consistency interval (`None`: never check by itself).
    pub fn consistency_interval(&self) -> Option<std::time::Duration> {
        match self.consistency_ns.load(std::sync::atomic::Ordering::Relaxed) {
            u64::MAX => None,
            ns => Some(std::time::Duration::from_nanos(ns)),
        }
    }

    /// The current state (one version, whole).
    pub fn state(&self) -> Arc<IndexState> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Make `s` the current state unless a newer version is already current (a `reload()`
    /// racing a commit never moves the state backwards).
    fn set_state(&self, s: IndexState) {
        let mut cur = self.state.write().unwrap_or_else(|p| p.into_inner());
        if s.manifest.version >= cur.manifest.version {
            *cur = Arc::new(s);
        }
    }

    /// The indexed table at its latest version: within the consistency interval of the last
    /// check, the view that check confirmed (no I/O); after it, one LIST request checks the
    /// table's fingerprint ([`latest_fingerprint`]) and the table is reopened only when it
    /// changed.
    pub async fn latest_table(&self) -> Result<Arc<LatestTable>> {
        let m = &self.state().manifest;
        self.check_table(&m.table_uri)?;
        let cached = self.latest.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(l) = &cached {
            if self.consistency_interval().is_none_or(|d| l.checked.elapsed() < d) {
                return Ok(l.clone());
            }
        }
        let loc = parse_uri(&m.table_uri)?;
        let store = store_for(&loc, &self.at.options)?;
        let format = Format::parse(&m.table_format)?;
        let fingerprint = latest_fingerprint(&store, &loc, format).await?;
        let checked = std::time::Instant::now();
        let table = match cached.filter(|l| l.fingerprint == fingerprint) {
            Some(l) => l.table.clone(),
            None => Arc::new(self.open_table(TablePin::default()).await?),
        };
        let l = Arc::new(LatestTable { fingerprint, table, checked });
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(l.clone());
        Ok(l)
    }

    /// The indexed table at `version` (a versioned format), reused while searches pin the same
    /// version; `None` (Parquet folders, which have no versions): opened anew.
    pub async fn table_at(&self, version: Option<i64>) -> Result<Arc<LakeTable>> {
        let Some(v) = version else {
            return Ok(Arc::new(self.open_table(TablePin::default()).await?));
        };
        let cached = self.pinned.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((_, t)) = cached.filter(|(cv, _)| *cv == v) {
            return Ok(t);
        }
        let t = Arc::new(self.open_table(TablePin { version: Some(v), timestamp: None }).await?);
        *self.pinned.lock().unwrap_or_else(|p| p.into_inner()) = Some((v, t.clone()));
        Ok(t)
    }

    /// Open the indexed table at `pin` with this index's storage options.
    pub async fn open_table(&self, pin: TablePin) -> Result<LakeTable> {
        let m = &self.state().manifest;
        self.check_table(&m.table_uri)?;
        let format = Some(Format::parse(&m.table_format)?);
        LakeTable::open(&m.table_uri, self.at.options.clone(), format, pin).await
    }

    /// Commit the version after `st` with `segments` (loaded: `loaded`, one per segment; or
    /// `None`: loaded on first use), covering `table_version`, and make it the current state.
    pub(crate) async fn commit_next(
        &self,
        st: &IndexState,
        segments: Vec<SegmentRef>,
        loaded: Option<Vec<Arc<LoadedSegment>>>,
        table_version: Option<i64>,
        commit: CommitInfo,
    ) -> Result<()> {
        let mut m = st.manifest.clone();
        m.version = self.next_version(st.manifest.version).await?;
        m.writer_id = manifest::new_id();
        m.segments = segments;
        m.table_version = table_version;
        m.commit = commit;
        let local = self.at.local_file(&manifest::manifest_path(self.at.root(), m.version));
        manifest::commit(&self.at.store, self.at.root(), &m, local).await?;
        self.set_state(match loaded {
            Some(l) => IndexState::loaded(m, l),
            None => IndexState::lazy(m),
        });
        Ok(())
    }

    /// The version to commit after `current`: the next one, unless newer manifests exist that
    /// all fail verification (corrupt or truncated files: skipped, never overwritten). A
    /// newer valid manifest means another writer committed since `current` was read.
    async fn next_version(&self, current: u64) -> Result<u64> {
        let next = manifest::next_version(current)?;
        let newer: Vec<u64> =
            manifest::versions(&self.at.store, self.at.root()).await?.into_iter().filter(|&v| v >= next).collect();
        for &v in &newer {
            match manifest::probe::<manifest::Manifest>(&self.at.store, self.at.root(), v).await? {
                manifest::Probe::Damaged(_) | manifest::Probe::Missing => {}
                manifest::Probe::Valid(found) => {
                    return Err(LakeError::CommitConflict(format!(
                        "index version {v} at '{}' was committed by another writer ({}) after version {current} \
                         was read; reopen the index and retry",
                        self.at.uri, found.writer_id
                    )))
                }
            }
        }
        match newer.first() {
            Some(&newest) => manifest::next_version(newest),
            None => Ok(next),
        }
    }

    /// Reload the newest committed version (another process may have refreshed); the next
    /// search also checks the table for a new version, whatever the consistency interval.
    pub async fn reload(&self) -> Result<()> {
        let st = load_state(&self.at, None).await?;
        self.set_state(st);
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }
}
