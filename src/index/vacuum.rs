//! Vacuum: delete the index files no reader within the retention period needs (Delta Lake's
//! VACUUM, for a lakevec sidecar: the vector index, and the dedup index through [`vacuum`]).
//!
//! Kept: the newest valid manifest and every manifest written less than `retain` ago, and
//! every file any of them lists; also any other file written less than `retain` ago (a build
//! or refresh in progress publishes its manifest after its files). Deleted: everything else
//! under `manifests/` and the index's file folders (`segments/` and `tombstones/`; the dedup
//! index's `segments/` and `clusters/`): superseded
//! versions older than `retain`, and the files of builds that failed or were killed before
//! their manifest was published. Damaged manifests are never read for references, and are
//! deleted by age like the rest. A reader that loaded a version's segments keeps using them
//! after their files are deleted (a local file stays mapped; a download is in memory); one
//! that had not loaded them yet gets a `CorruptIndexError` naming the missing file.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use crate::error::{LakeError, Result};
use crate::index::handle::VectorIndex;
use crate::index::manifest::{self, Probe};
use crate::index::publish::Doc;

/// One file vacuum considered.
struct Candidate {
    rel: String,
    kind: &'static str,
    bytes: u64,
}

impl VectorIndex {
    /// Delete (or with `dry_run`, list) the index files no manifest newer than `retain`
    /// references (see the module docs). Returns one row per such file: `path` (relative to
    /// the index folder), `kind` ("manifest", "segment" or "tombstone"), `bytes`, `deleted`.
    pub async fn vacuum(&self, retain: Duration, dry_run: bool) -> Result<RecordBatch> {
        vacuum::<manifest::Manifest>(&self.at.store, self.at.root(), retain, dry_run).await
    }
}

/// [`VectorIndex::vacuum`] for the index of manifest type `M` at `root` (kinds: "manifest"
/// and those of `M::FOLDERS`).
pub async fn vacuum<M: Doc>(
    store: &Arc<dyn object_store::ObjectStore>,
    root: &object_store::path::Path,
    retain: Duration,
    dry_run: bool,
) -> Result<RecordBatch> {
    {
        let now = chrono::Utc::now();
        let horizon = now - chrono::Duration::from_std(retain).unwrap_or(chrono::Duration::MAX);
        let objects: Vec<object_store::ObjectMeta> = store.list(Some(root)).try_collect().await?;
        let prefix = format!("{}/", root.as_ref());
        let rel_of = |p: &object_store::path::Path| -> String {
            let s = p.as_ref();
            s.strip_prefix(&prefix).unwrap_or(s).to_string()
        };
        // Manifests to keep: the newest valid one and all younger than the horizon.
        let newest = manifest::newest_valid::<M>(store, root).await?.map(|(m, _)| m.version());
        let mut keep: HashSet<String> = HashSet::new();
        for o in &objects {
            let rel = rel_of(&o.location);
            let Some(v) = rel.strip_prefix("manifests/").and_then(|n| n.strip_suffix(".json")) else { continue };
            let Ok(v) = v.parse::<u64>() else { continue };
            if Some(v) != newest && o.last_modified < horizon {
                continue;
            }
            keep.insert(rel.clone());
            if let Probe::Valid(m) = manifest::probe::<M>(store, root, v).await? {
                keep.extend(m.files().into_iter().map(str::to_string));
            }
        }
        let mut out: Vec<Candidate> = Vec::new();
        for o in &objects {
            let rel = rel_of(&o.location);
            let folder = rel.split('/').next().unwrap_or_default();
            let kind = match M::FOLDERS.iter().find(|(f, _)| *f == folder) {
                _ if folder == "manifests" => "manifest",
                Some((_, kind)) => kind,
                None => continue, // not lakevec's: never touched
            };
            if keep.contains(&rel) || o.last_modified >= horizon {
                continue;
            }
            out.push(Candidate { rel, kind, bytes: o.size });
        }
        // Immutable files first, manifests last: a crash midway leaves manifests
        // whose files are gone only where those manifests were past retention anyway.
        out.sort_by_key(|c| (c.kind == "manifest", c.rel.clone()));
        let mut deleted = Vec::with_capacity(out.len());
        for c in &out {
            if dry_run {
                deleted.push(false);
                continue;
            }
            match store.delete(&manifest::child(root, &c.rel)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted.push(true),
                Err(e) => return Err(LakeError::from(e).context(format!("vacuum deleting '{}'", c.rel))),
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("path", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("bytes", DataType::Int64, false),
            Field::new("deleted", DataType::Boolean, false),
        ]));
        Ok(RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(out.iter().map(|c| c.rel.as_str()))),
                Arc::new(StringArray::from_iter_values(out.iter().map(|c| c.kind))),
                Arc::new(Int64Array::from_iter_values(out.iter().map(|c| c.bytes as i64))),
                Arc::new(BooleanArray::from(deleted)),
            ],
        )?)
    }
}
