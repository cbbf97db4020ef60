//! The spool in object storage (`root = "s3://bucket/prefix"` in the spool table): every
//! sealed batch also lives under `<root>/<state id>/`, beside a `manifest.json` that is the
//! spool's truth, so `singer spool list|replay` and `singer run` on any machine see the same
//! batches, in the same order.
//!
//! A batch is written here first (the local spool folder is the staging area), then uploaded:
//! its schemas file, its batch file (and, with `format = "parquet"`, its Parquet files, which
//! go up as they are completed), then the store's manifest naming it. Only then does it count
//! as spooled and go to the target. An upload that fails fails the run: the batch stays here,
//! marked `upload_pending`, and was never fed, so no state past it was confirmed. [`attach`],
//! at the start of the next run (or replay), uploads it and it is loaded first, unless
//! another run spooled batches since (the store's `next_seq` moved past it): then its records
//! were extracted again there, and the local copy is dropped.
//!
//! Batch numbers come from the store's manifest and are never reused. Confirmed batches are
//! removed from the manifest first, then their objects. If the store cannot be reached then,
//! the local manifest remembers `trimmed_upto` and the next [`attach`] here finishes the job.

use std::path::Path;

use singer_core::batch::store;

use super::{
    Batch, MANIFEST, Manifest, batch_file, read_manifest, remove_local, schemas_file,
    write_manifest,
};

const MANIFEST_NAME: &str = "manifest.json";

/// The spool's folder in the store: `<root>/<the local folder's name>` (the state id).
fn folder(root: &str, dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    store::join(root, &name)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Brings the local spool folder in line with the store before batches are listed, loaded
/// or trimmed: batches the store no longer holds are removed here, batches it holds are
/// downloaded, batches that failed to upload are uploaded (or dropped when stale). Without a
/// `root`, the folder is a plain local spool.
pub(crate) fn attach(dir: &Path, root: Option<&str>) -> Result<(), String> {
    let _g = MANIFEST.lock().unwrap_or_else(|p| p.into_inner());
    let mut local = read_manifest(dir);
    let Some(root) = root else {
        if local.remote.take().is_some() {
            write_manifest(dir, &local)?;
        }
        return Ok(());
    };
    let url = folder(root, dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let merged = merge(&local, fetch_manifest(&url)?, &url);
    for seq in &merged.stale {
        tracing::warn!(
            "spool: batch {seq} was never stored in {url} and another run spooled batches since; dropping it here (its records were extracted again)"
        );
    }
    remove_strays(dir, &merged.manifest);
    let mut m = merged.manifest;
    for b in m.batches.iter_mut().filter(|b| b.upload_pending) {
        tracing::info!("spool: uploading batch {} to {url}", b.seq);
        upload_files(dir, &url, b.seq)
            .map_err(|e| format!("spool: batch {} could not be stored in {url}: {e}", b.seq))?;
        b.upload_pending = false;
    }
    if merged.changed {
        // The manifest names the uploaded batches only now; the trimmed ones go after it.
        put_manifest(&url, &m).map_err(|e| format!("spool: {e}"))?;
        if let Err(e) = delete(&url, &merged.trimmed) {
            tracing::warn!("spool: removing confirmed batches from {url}: {e}");
        }
    }
    for b in &m.batches {
        download_missing(dir, &url, b.seq).map_err(|e| format!("spool: batch {}: {e}", b.seq))?;
    }
    m.remote = Some(url);
    write_manifest(dir, &m)
}

/// The batches `singer spool list` shows: those of the store (less those confirmed here) and
/// those waiting here to be uploaded. Changes nothing.
pub(crate) fn list(dir: &Path, root: Option<&str>) -> Result<Vec<Batch>, String> {
    let local = read_manifest(dir);
    let Some(root) = root else {
        return Ok(local.batches);
    };
    let url = folder(root, dir);
    Ok(merge(&local, fetch_manifest(&url)?, &url).manifest.batches)
}

/// A sealed batch goes up: its files, then the store's manifest naming it; then it is marked
/// uploaded here.
pub(super) fn store_sealed(dir: &Path, url: &str, seq: u64) -> Result<(), String> {
    let stored = upload_files(dir, url, seq).and_then(|()| {
        let _g = MANIFEST.lock().unwrap_or_else(|p| p.into_inner());
        let mut m = read_manifest(dir);
        if let Some(b) = m.batches.iter_mut().find(|b| b.seq == seq) {
            b.upload_pending = false;
        }
        put_manifest(url, &m)?;
        write_manifest(dir, &m)
    });
    stored.map_err(|e| {
        format!(
            "spool: batch {seq} could not be stored in {url}, so it was not loaded (the next run uploads and loads it): {e}"
        )
    })
}

/// Writes the store's manifest: the uploaded batches of `m`. Its `next_seq` stops at the
/// first batch still waiting here, so that batch can still be uploaded under its number.
pub(super) fn put_manifest(url: &str, m: &Manifest) -> Result<(), String> {
    let next_seq = m
        .batches
        .iter()
        .find(|b| b.upload_pending)
        .map_or(m.next_seq, |b| b.seq);
    let there = Manifest {
        batches: m
            .batches
            .iter()
            .filter(|b| !b.upload_pending)
            .cloned()
            .collect(),
        confirmed_upto: 0,
        next_seq,
        trimmed_upto: m.trimmed_upto,
        remote: None,
    };
    let text = serde_json::to_vec_pretty(&there).map_err(|e| e.to_string())?;
    store::put_bytes(&store::join(url, MANIFEST_NAME), text)
}

/// Removes the objects of batches `seqs`.
pub(super) fn delete(url: &str, seqs: &[u64]) -> Result<(), String> {
    for &seq in seqs {
        store::delete(&store::join(url, &format!("batch-{seq:06}.jsonl.zst")))?;
        store::delete(&store::join(url, &format!("batch-{seq:06}.schemas.jsonl")))?;
        store::delete_all(&store::join(url, &format!("batch-{seq:06}.files")))?;
    }
    Ok(())
}

fn fetch_manifest(url: &str) -> Result<Manifest, String> {
    let object = store::join(url, MANIFEST_NAME);
    match store::get_bytes(&object).map_err(|e| format!("spool: {e}"))? {
        None => Ok(Manifest::default()),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("spool: `{object}` is not a spool manifest: {e}")),
    }
}

fn upload_files(dir: &Path, url: &str, seq: u64) -> Result<(), String> {
    for local in [schemas_file(dir, seq), batch_file(dir, seq)] {
        store::upload(&local, &store::join(url, &file_name(&local)))?;
    }
    Ok(())
}

fn download_missing(dir: &Path, url: &str, seq: u64) -> Result<(), String> {
    for local in [schemas_file(dir, seq), batch_file(dir, seq)] {
        if local.exists() {
            continue;
        }
        let mut from = store::download(&store::join(url, &file_name(&local)))?;
        let tmp = local.with_extension("download");
        let mut to = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::io::copy(&mut from, &mut to).map_err(|e| format!("{}: {e}", tmp.display()))?;
        to.sync_all()
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &local).map_err(|e| format!("{}: {e}", local.display()))?;
    }
    Ok(())
}

/// Removes local batch files the manifest does not name (trimmed elsewhere, stale, or left
/// half-written by a run that died).
fn remove_strays(dir: &Path, m: &Manifest) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(seq) = name
            .strip_prefix("batch-")
            .and_then(|rest| rest.split('.').next())
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        if !m.batches.iter().any(|b| b.seq == seq) {
            remove_local(dir, seq);
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The store's manifest and this machine's view of it, combined.
struct Merged {
    manifest: Manifest,
    /// Batches the store still lists that this machine saw confirmed.
    trimmed: Vec<u64>,
    /// Batches waiting here whose number another run has used since.
    stale: Vec<u64>,
    /// The store's manifest must be rewritten.
    changed: bool,
}

fn merge(local: &Manifest, there: Manifest, url: &str) -> Merged {
    let same = local.remote.as_deref() == Some(url);
    // A store folder never used takes along the batches of a spool that had none.
    let fresh = there.batches.is_empty() && there.next_seq == 0 && there.trimmed_upto == 0;
    let trimmed_upto = if same {
        local.trimmed_upto.max(there.trimmed_upto)
    } else {
        there.trimmed_upto
    };
    let mut next = there
        .next_seq
        .max(there.batches.last().map_or(0, |b| b.seq + 1));
    let (mut batches, mut trimmed) = (Vec::new(), Vec::new());
    for b in there.batches {
        if b.seq <= trimmed_upto {
            trimmed.push(b.seq);
        } else {
            batches.push(b);
        }
    }
    let mut stale = Vec::new();
    for b in &local.batches {
        if !(same && b.upload_pending || !same && fresh) {
            continue;
        }
        if b.seq >= next {
            next = b.seq + 1;
            batches.push(Batch {
                upload_pending: true,
                ..b.clone()
            });
        } else {
            stale.push(b.seq);
        }
    }
    let changed = !trimmed.is_empty() || batches.iter().any(|b| b.upload_pending);
    Merged {
        manifest: Manifest {
            batches,
            confirmed_upto: 0,
            next_seq: next.max(1),
            trimmed_upto,
            remote: Some(url.to_string()),
        },
        trimmed,
        stale,
        changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: u64, pending: bool) -> Batch {
        Batch {
            seq,
            records: 1,
            bytes: 1,
            lines: 1,
            last_state: None,
            ends_with_state: true,
            sealed_at: String::new(),
            upload_pending: pending,
        }
    }

    fn seqs(m: &Manifest) -> Vec<(u64, bool)> {
        m.batches
            .iter()
            .map(|b| (b.seq, b.upload_pending))
            .collect()
    }

    const URL: &str = "memory:///b/p";

    #[test]
    fn a_pending_batch_is_kept_until_another_run_spools() {
        let local = Manifest {
            batches: vec![batch(2, false), batch(3, true)],
            next_seq: 4,
            trimmed_upto: 1,
            remote: Some(URL.into()),
            ..Manifest::default()
        };
        // The store stopped at batch 3: it is uploaded under its number; batch 1, which this
        // machine saw confirmed, goes.
        let there = Manifest {
            batches: vec![batch(1, false), batch(2, false)],
            next_seq: 3,
            ..Manifest::default()
        };
        let m = merge(&local, there, URL);
        assert_eq!(seqs(&m.manifest), [(2, false), (3, true)]);
        assert_eq!(
            (m.trimmed, m.changed, m.manifest.next_seq),
            (vec![1], true, 4)
        );
        // Another machine spooled batch 3 meanwhile: the local one is stale.
        let there = Manifest {
            batches: vec![batch(3, false)],
            next_seq: 4,
            ..Manifest::default()
        };
        let m = merge(&local, there, URL);
        assert_eq!(seqs(&m.manifest), [(3, false)]);
        assert_eq!(m.stale, [3]);
    }

    /// Machine A uploads a batch its last run could not; machine B downloads it, loads it
    /// and trims it; A's copy goes at its next attach.
    #[test]
    fn attach_uploads_downloads_and_trims() {
        let root = "memory:///attach-test";
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (dir_a, dir_b) = (a.path().join("p"), b.path().join("p"));
        std::fs::create_dir_all(&dir_a).unwrap();
        std::fs::write(batch_file(&dir_a, 1), "x").unwrap();
        std::fs::write(schemas_file(&dir_a, 1), "").unwrap();
        let local = Manifest {
            batches: vec![batch(1, true)],
            next_seq: 2,
            remote: Some(folder(root, &dir_a)),
            ..Manifest::default()
        };
        write_manifest(&dir_a, &local).unwrap();
        attach(&dir_a, Some(root)).unwrap();
        assert_eq!(seqs(&read_manifest(&dir_a)), [(1, false)]);

        attach(&dir_b, Some(root)).unwrap();
        assert_eq!(seqs(&read_manifest(&dir_b)), [(1, false)]);
        assert_eq!(std::fs::read(batch_file(&dir_b, 1)).unwrap(), b"x");
        crate::spool::loaded_all(&dir_b);

        attach(&dir_a, Some(root)).unwrap();
        assert!(read_manifest(&dir_a).batches.is_empty());
        assert!(!batch_file(&dir_a, 1).exists());
        assert_eq!(read_manifest(&dir_a).next_seq, 2, "numbers are not reused");
        let gone = store::get_bytes(&store::join(
            &folder(root, &dir_a),
            "batch-000001.jsonl.zst",
        ));
        assert_eq!(gone, Ok(None));
    }

    #[test]
    fn the_store_manifest_never_counts_past_a_pending_batch() {
        let m = Manifest {
            batches: vec![batch(4, false), batch(5, true)],
            next_seq: 6,
            ..Manifest::default()
        };
        put_manifest("memory:///b/q", &m).unwrap();
        let there = fetch_manifest("memory:///b/q").unwrap();
        assert_eq!(seqs(&there), [(4, false)]);
        assert_eq!(there.next_seq, 5);
        assert_eq!(fetch_manifest("memory:///b/none").unwrap().batches.len(), 0);
    }
}
