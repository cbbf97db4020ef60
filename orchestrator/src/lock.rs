//! One run per pipeline state id at a time: an exclusive file lock locally, an advisory lock
//! with the PostgreSQL store. Both are released by the operating system or the server when the
//! holder dies, so a lock cannot go stale; a lock file left by a run that died is reported.
//! The advisory lock can also be released while its run goes on (its session ended): the run
//! then learns it from [`RunLock::lost`] and its state writes are fenced (see `store::pg_lock`).

use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::store::{PgStore, Store};

/// A held run lock.
pub(crate) enum RunLock {
    File(std::fs::File),
    /// Released on drop.
    Postgres(Box<crate::store::postgres_lock::PgLock>),
}

impl RunLock {
    /// Why the run lost its lock while running, if it did (only an advisory lock can be lost:
    /// its session can end while the run goes on).
    pub(crate) fn lost(&self) -> Option<String> {
        match self {
            RunLock::File(_) => None,
            RunLock::Postgres(l) => l.fence().lost(),
        }
    }
}

/// Why a lock was not taken.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another run holds it.
    Busy(String),
    Failed(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy(m) | LockError::Failed(m) => f.write_str(m),
        }
    }
}

/// Takes the lock of state id `id`.
pub(crate) fn acquire(
    home: &Path,
    store: &Store,
    pg_url: Option<&str>,
    id: &str,
) -> Result<RunLock, LockError> {
    if let (Store::Postgres(pg), Some(url)) = (store, pg_url) {
        return acquire_pg(pg, url, id);
    }
    let dir = home.join("locks");
    std::fs::create_dir_all(&dir)
        .map_err(|e| LockError::Failed(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("{}.lock", crate::store::file_name(id)));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| LockError::Failed(format!("{}: {e}", path.display())))?;
    let mut previous = String::new();
    let _ = f.read_to_string(&mut previous);
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = previous.trim();
            return Err(LockError::Busy(format!(
                "state id `{id}` is already being run ({})",
                if holder.is_empty() {
                    "holder unknown".into()
                } else {
                    holder.to_string()
                }
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(LockError::Failed(format!("{}: {e}", path.display())));
        }
    }
    if let Some(pid) = previous
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u32>().ok())
        && pid != std::process::id()
    {
        tracing::warn!(
            "the previous run of `{id}` ({}) ended without releasing its lock file; taking it over",
            previous.trim()
        );
    }
    let stamp = format!(
        "pid {} since {}\n",
        std::process::id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = f.write_all(stamp.as_bytes());
    let _ = f.flush();
    Ok(RunLock::File(f))
}

fn acquire_pg(pg: &PgStore, url: &str, id: &str) -> Result<RunLock, LockError> {
    match pg.try_lock(url, id) {
        Ok(Ok(l)) => Ok(RunLock::Postgres(Box::new(l))),
        Ok(Err(who)) => Err(LockError::Busy(format!(
            "state id `{id}` is already being run ({who}; advisory lock held in PostgreSQL)"
        ))),
        Err(e) => Err(LockError::Failed(e.0)),
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let RunLock::File(f) = self {
            // An empty lock file means the last holder finished cleanly.
            let _ = f.set_len(0);
            let _ = f.unlock();
        }
    }
}
