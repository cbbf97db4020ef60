//! The spool: the tap's output cut into zstd batch files with a manifest before it is loaded,
//! so a failed or killed load is replayed without extracting again.
//!
//! Layout of `<home>/spool/<state id>/`:
//! - `batch-000001.jsonl.zst`: Singer lines, whole, in tap order;
//! - `batch-000001.schemas.jsonl`: the SCHEMA lines in effect when the batch starts (sent
//!   first on replay, so each batch loads on its own);
//! - `manifest.json`: the sealed batches, oldest first.
//!
//! - with `format = "parquet"`, `batch-000001.files/`: the batch's RECORDs as Parquet files,
//!   which BATCH lines in the batch file name in their place (see [`columnar`]).
//!
//! With a `root` in object storage the same files live under `<root>/<state id>/` too, and
//! the store's manifest is the one that counts (see [`remote`]).
//!
//! A batch is removed once the target confirmed a state that follows all of its records (or the
//! target exited successfully after reading it).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use singer_core::batch::store;

mod columnar;
mod remote;

use crate::project::{SpoolConfig, SpoolFormat};
use crate::run::inspect::{Line, classify};
use crate::run::pump::ChunkSink;
pub(crate) use remote::{attach, list};

/// Serialises manifest updates from the sink and from confirmations.
static MANIFEST: Mutex<()> = Mutex::new(());

/// One sealed batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub(crate) seq: u64,
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) lines: u64,
    /// The last STATE value in the batch, if any.
    pub(crate) last_state: Option<Value>,
    /// True when no RECORD follows that state in the batch.
    pub(crate) ends_with_state: bool,
    pub(crate) sealed_at: String,
    /// Sealed here but not yet in the spool's object store: never fed to a target until it
    /// is (the next run uploads it, unless another run spooled since).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) upload_pending: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) batches: Vec<Batch>,
    /// Index into `batches` after which confirmations are searched (targets confirm in order).
    #[serde(default)]
    pub(crate) confirmed_upto: usize,
    /// The number of the next batch (numbers are never reused, so a store shared by several
    /// machines never mixes two batches up).
    #[serde(default)]
    pub(crate) next_seq: u64,
    /// The highest batch number removed because the target confirmed it.
    #[serde(default)]
    pub(crate) trimmed_upto: u64,
    /// The spool's folder in object storage, if it has one (set by [`attach`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remote: Option<String>,
}

fn batch_file(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("batch-{seq:06}.jsonl.zst"))
}

fn files_dir(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("batch-{seq:06}.files"))
}

fn schemas_file(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("batch-{seq:06}.schemas.jsonl"))
}

pub(crate) fn read_manifest(dir: &Path) -> Manifest {
    std::fs::read_to_string(dir.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), String> {
    let text = serde_json::to_string_pretty(m).map_err(|e| e.to_string())?;
    crate::catalog::write_atomic(&dir.join("manifest.json"), text.as_bytes())
}

/// Checks a spool `root`: an object-store URL this build can reach.
pub(crate) fn check_root(root: &str) -> Result<(), String> {
    if !store::is_remote(root) {
        return Err(format!(
            "`{root}` is not an object-store URL (s3://bucket/prefix); the spool is in the home without it"
        ));
    }
    store::check(root)
}

/// True when an earlier run left batches that were not confirmed.
pub(crate) fn has_pending(dir: &Path) -> bool {
    !read_manifest(dir).batches.is_empty()
}

/// Removes batches `..n` (and their files); returns their numbers.
fn drop_batches(dir: &Path, m: &mut Manifest, n: usize) -> Vec<u64> {
    let mut dropped = Vec::new();
    for b in m.batches.drain(..n.min(m.batches.len())) {
        remove_local(dir, b.seq);
        m.trimmed_upto = m.trimmed_upto.max(b.seq);
        dropped.push(b.seq);
    }
    m.confirmed_upto = m.confirmed_upto.saturating_sub(n);
    dropped
}

fn remove_local(dir: &Path, seq: u64) {
    let _ = std::fs::remove_file(batch_file(dir, seq));
    let _ = std::fs::remove_file(schemas_file(dir, seq));
    let _ = std::fs::remove_dir_all(files_dir(dir, seq));
}

/// Writes the manifest here and, with a store, there; then removes `dropped` from the store.
/// A store that cannot be reached is logged: the batches stay there, and the next
/// [`attach`] on this machine removes them (this manifest remembers `trimmed_upto`).
fn save_trimmed(dir: &Path, m: &Manifest, dropped: &[u64]) {
    if let Err(e) = write_manifest(dir, m) {
        tracing::warn!("spool manifest: {e}");
    }
    if let Some(url) = &m.remote
        && let Err(e) = remote::put_manifest(url, m).and_then(|()| remote::delete(url, dropped))
    {
        tracing::warn!("spool: removing confirmed batches from {url}: {e}");
    }
}

/// The target confirmed `state`: drop the batches whose records it covers.
pub(crate) fn confirmed(dir: &Path, state: &Value) {
    let _g = MANIFEST.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = read_manifest(dir);
    let from = m.confirmed_upto.min(m.batches.len());
    let Some(j) =
        (from..m.batches.len()).find(|&i| m.batches[i].last_state.as_ref() == Some(state))
    else {
        return;
    };
    let n = if m.batches[j].ends_with_state {
        j + 1
    } else {
        j
    };
    m.confirmed_upto = j;
    let dropped = drop_batches(dir, &mut m, n);
    if !dropped.is_empty() {
        save_trimmed(dir, &m, &dropped);
    }
}

/// The target exited successfully after reading every sealed batch: drop them all.
pub(crate) fn loaded_all(dir: &Path) {
    let _g = MANIFEST.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = read_manifest(dir);
    let n = m.batches.len();
    let dropped = drop_batches(dir, &mut m, n);
    save_trimmed(dir, &m, &dropped);
}

/// Writes every pending batch (schemas first) to `w`, oldest first.
pub(crate) fn feed_all<W: Write>(dir: &Path, mut w: W) -> Result<(), String> {
    let batches = {
        let _g = MANIFEST.lock().unwrap_or_else(|p| p.into_inner());
        read_manifest(dir).batches
    };
    for b in &batches {
        if b.upload_pending {
            return Err(format!(
                "batch {} is not in the spool's object store yet (run `singer spool list` or `singer run` to upload it)",
                b.seq
            ));
        }
        let schemas = std::fs::read(schemas_file(dir, b.seq)).unwrap_or_default();
        w.write_all(&schemas)
            .map_err(|e| format!("writing to the target: {e}"))?;
        feed_batch(dir, b.seq, &mut w)?;
    }
    w.flush().map_err(|e| format!("writing to the target: {e}"))
}

fn feed_batch<W: Write>(dir: &Path, seq: u64, w: &mut W) -> Result<(), String> {
    let path = batch_file(dir, seq);
    let f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut dec =
        zstd::stream::read::Decoder::new(f).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = dec
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            return Ok(());
        }
        w.write_all(&buf[..n])
            .map_err(|e| format!("writing to the target: {e}"))?;
    }
}

/// The thread loading sealed batches into the target, and how to hand it one.
type Loader = (Sender<u64>, JoinHandle<Result<(), String>>);

/// The open batch.
struct Open {
    seq: u64,
    enc: zstd::stream::write::Encoder<'static, std::fs::File>,
    started: Instant,
    records: u64,
    bytes: u64,
    lines: u64,
    last_state: Option<Value>,
    ends_with_state: bool,
}

/// A [`ChunkSink`] that spools chunks into batch files and loads sealed batches into the
/// target on a thread of its own.
pub(crate) struct SpoolSink {
    dir: PathBuf,
    cfg: SpoolConfig,
    open: Option<Open>,
    next_seq: u64,
    schemas: BTreeMap<String, Vec<u8>>,
    loader: Option<Loader>,
    /// With `format = "parquet"`: RECORDs into Parquet files.
    columnar: Option<columnar::Columnar>,
    /// The spool's folder in object storage: a batch is fed to the target once it is there.
    remote: Option<String>,
}

impl SpoolSink {
    pub(crate) fn create<W: Write + Send + 'static>(
        dir: &Path,
        cfg: &SpoolConfig,
        target: W,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let m = read_manifest(dir);
        let next_seq = m
            .next_seq
            .max(m.batches.last().map_or(1, |b| b.seq + 1))
            .max(1);
        let (tx, rx) = channel::<u64>();
        let d = dir.to_path_buf();
        let loader = std::thread::spawn(move || load_loop(&d, rx, target));
        Ok(Self {
            dir: dir.to_path_buf(),
            cfg: cfg.clone(),
            open: None,
            next_seq,
            schemas: BTreeMap::new(),
            loader: Some((tx, loader)),
            columnar: (cfg.format == SpoolFormat::Parquet)
                .then(|| columnar::Columnar::new(cfg.max_records)),
            remote: m.remote,
        })
    }

    fn open_batch(&mut self) -> std::io::Result<&mut Open> {
        if self.open.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let mut schemas = Vec::new();
            for line in self.schemas.values() {
                schemas.extend_from_slice(line);
                schemas.push(b'\n');
            }
            std::fs::write(schemas_file(&self.dir, seq), schemas)?;
            if let Some(c) = &mut self.columnar {
                let files = files_dir(&self.dir, seq);
                std::fs::create_dir_all(&files)?;
                c.set_dir(&files);
                // With a store, the Parquet files go there as they are completed, and the
                // BATCH lines name them there, so any machine can load the batch.
                let name = format!("batch-{seq:06}.files");
                c.set_remote(self.remote.as_deref().map(|r| store::join(r, &name)));
            }
            let f = std::fs::File::create(batch_file(&self.dir, seq))?;
            let enc = zstd::stream::write::Encoder::new(f, 3)?;
            self.open = Some(Open {
                seq,
                enc,
                started: Instant::now(),
                records: 0,
                bytes: 0,
                lines: 0,
                last_state: None,
                ends_with_state: false,
            });
        }
        self.open
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no open batch"))
    }

    fn seal(&mut self) -> std::io::Result<()> {
        let Some(mut o) = self.open.take() else {
            return Ok(());
        };
        if let Some(c) = &mut self.columnar {
            c.seal(&mut o.enc)?;
        }
        let f = o.enc.finish()?;
        f.sync_all()?;
        let batch = Batch {
            seq: o.seq,
            records: o.records,
            bytes: o.bytes,
            lines: o.lines,
            last_state: o.last_state,
            ends_with_state: o.ends_with_state,
            sealed_at: chrono::Utc::now().to_rfc3339(),
            upload_pending: self.remote.is_some(),
        };
        {
            let _g = MANIFEST.lock().unwrap_or_else(|p| p.into_inner());
            let mut m = read_manifest(&self.dir);
            m.batches.push(batch);
            m.next_seq = m.next_seq.max(o.seq + 1);
            write_manifest(&self.dir, &m).map_err(std::io::Error::other)?;
        }
        // With a store, the batch counts as spooled (and goes to the target) only once it is
        // there: a failed upload fails the run, and the next one uploads it.
        if let Some(url) = &self.remote {
            remote::store_sealed(&self.dir, url, o.seq).map_err(std::io::Error::other)?;
        }
        // A loader that stopped (the target went away) is not an error here: the batch is on
        // disk, so the rest of the tap's output keeps being spooled for `singer spool replay`
        // (or the next run) instead of extracted again. Its error is reported by `finish`.
        if let Some((tx, _)) = &self.loader {
            let _ = tx.send(o.seq);
        }
        Ok(())
    }
}

impl ChunkSink for SpoolSink {
    fn write_chunk(&mut self, chunk: &[u8], _states: u64) -> std::io::Result<()> {
        for line in chunk.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let kind = classify(line);
            if let Line::Schema(s) = &kind {
                self.schemas.insert((*s).to_string(), line.to_vec());
            }
            let (max_records, max_bytes, max_age) =
                (self.cfg.max_records, self.cfg.max_bytes, self.cfg.max_age);
            self.open_batch()?;
            let Some(o) = self.open.as_mut() else {
                continue;
            };
            // With Parquet, a RECORD goes into its stream's file; the files are completed
            // (and their BATCH lines written) before any other line.
            let columnar = match (&mut self.columnar, &kind) {
                (Some(c), Line::Record(_)) => c.record(line, &mut o.enc)?,
                (Some(c), Line::Schema(s)) => {
                    c.schema(s, line, &mut o.enc)?;
                    false
                }
                (Some(c), _) => {
                    c.flush_all(&mut o.enc)?;
                    false
                }
                (None, _) => false,
            };
            if !columnar {
                o.enc.write_all(line)?;
                o.enc.write_all(b"\n")?;
            }
            o.lines += 1;
            o.bytes += line.len() as u64 + 1;
            match kind {
                Line::Record(_) => {
                    o.records += 1;
                    o.ends_with_state = false;
                }
                Line::State => {
                    if let Some(v) = serde_json::from_slice::<Value>(line)
                        .ok()
                        .and_then(|m| m.get("value").cloned())
                    {
                        o.last_state = Some(v);
                        o.ends_with_state = true;
                    }
                }
                _ => {}
            }
            let full =
                o.records >= max_records || o.bytes >= max_bytes || o.started.elapsed() >= max_age;
            // Batches end after a STATE when they can, so each one is confirmed on its own.
            if full && (o.ends_with_state || o.bytes >= max_bytes.saturating_mul(2)) {
                self.seal()?;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.seal()?;
        if let Some((tx, handle)) = self.loader.take() {
            drop(tx);
            handle
                .join()
                .map_err(|_| std::io::Error::other("the loader panicked"))?
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

fn load_loop<W: Write>(dir: &Path, rx: Receiver<u64>, mut target: W) -> Result<(), String> {
    for seq in rx {
        feed_batch(dir, seq, &mut target)?;
    }
    target
        .flush()
        .map_err(|e| format!("writing to the target: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the target would read, shared with the test.
    struct W(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for W {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn cfg(records: u64) -> SpoolConfig {
        SpoolConfig {
            max_records: records,
            max_bytes: 1 << 30,
            max_age: std::time::Duration::from_secs(3600),
            format: SpoolFormat::Jsonl,
            root: None,
        }
    }

    #[test]
    fn parquet_batches_keep_states_after_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let out = std::sync::Arc::new(Mutex::new(Vec::new()));
        let cfg = SpoolConfig {
            format: SpoolFormat::Parquet,
            ..cfg(3)
        };
        let mut sink = SpoolSink::create(dir.path(), &cfg, W(out.clone())).unwrap();
        let input = concat!(
            "{\"type\":\"SCHEMA\",\"stream\":\"s\",\"schema\":{\"properties\":{\"i\":{\"type\":\"integer\"}}},\"key_properties\":[\"i\"]}\n",
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"i\":1}}\n",
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"i\":2}}\n",
            "{\"type\":\"STATE\",\"value\":{\"n\":2}}\n",
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"i\":3}}\n",
            "{\"type\":\"RECORD\",\"stream\":\"t\",\"record\":{\"i\":4}}\n",
            "{\"type\":\"STATE\",\"value\":{\"n\":4}}\n",
        );
        sink.write_chunk(input.as_bytes(), 2).unwrap();
        sink.finish().unwrap();
        let fed = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let kinds: Vec<String> = fed
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["type"].as_str().unwrap().to_string()
            })
            .collect();
        // Records of `s` became BATCHes completed before each STATE; `t` has no SCHEMA, so
        // its record stays a RECORD for the target to judge (streams are independent, so it
        // may pass the open file of `s`).
        assert_eq!(
            kinds,
            ["SCHEMA", "BATCH", "STATE", "RECORD", "BATCH", "STATE"],
            "{fed}"
        );
        let batches = read_manifest(dir.path()).batches;
        assert_eq!(batches.iter().map(|b| b.records).sum::<u64>(), 4);
        let files = files_dir(dir.path(), batches[0].seq);
        let parquet = std::fs::read_dir(&files).unwrap().count();
        assert_eq!(parquet, 2, "one file per BATCH line");
        loaded_all(dir.path());
        assert!(!files.exists(), "the batch's Parquet files go with it");
    }

    #[test]
    fn batches_cut_after_states_and_replay_on_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let out = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut sink = SpoolSink::create(dir.path(), &cfg(2), W(out.clone())).unwrap();
        let input = concat!(
            "{\"type\":\"SCHEMA\",\"stream\":\"s\",\"schema\":{},\"key_properties\":[]}\n",
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"i\":1}}\n",
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"i\":2}}\n",
            "{\"type\":\"STATE\",\"value\":{\"n\":2}}\n",
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"i\":3}}\n",
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"i\":4}}\n",
            "{\"type\":\"STATE\",\"value\":{\"n\":4}}\n",
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"i\":5}}\n",
        );
        sink.write_chunk(input.as_bytes(), 2).unwrap();
        sink.finish().unwrap();
        // Everything reached the target in order.
        assert_eq!(
            String::from_utf8(out.lock().unwrap().clone()).unwrap(),
            input
        );
        let m = read_manifest(dir.path());
        assert_eq!(m.batches.len(), 3);
        assert!(m.batches[0].ends_with_state && !m.batches[2].ends_with_state);
        // Batch 2 starts with the schema in effect, so a replay of it alone is loadable.
        let s2 = std::fs::read_to_string(schemas_file(dir.path(), 2)).unwrap();
        assert!(s2.contains("\"SCHEMA\""));
        // Confirming the first state drops the first batch only.
        confirmed(dir.path(), &serde_json::json!({"n": 2}));
        let m = read_manifest(dir.path());
        assert_eq!(
            m.batches.iter().map(|b| b.seq).collect::<Vec<_>>(),
            vec![2, 3]
        );
        let mut replay = Vec::new();
        feed_all(dir.path(), &mut replay).unwrap();
        let text = String::from_utf8(replay).unwrap();
        assert!(text.starts_with("{\"type\":\"SCHEMA\""));
        assert!(text.contains("\"i\":3") && !text.contains("\"i\":2"));
        loaded_all(dir.path());
        assert!(!has_pending(dir.path()));
    }
}
