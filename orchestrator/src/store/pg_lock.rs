//! The run lock with the PostgreSQL store, and the fence that keeps a run which lost it from
//! storing states.
//!
//! A run holds a session advisory lock on a connection of its own. The server releases it when
//! that session ends, which does not always mean the run ended: the session can be terminated
//! (`pg_terminate_backend`, a server restart, `idle_session_timeout`) or cut off while the tap
//! and target go on. Another scheduler can then take the lock and start a second run, and
//! both would store states. So:
//!
//! - taking the lock also bumps a **generation** in `<schema>.run_lock`, in the same session,
//!   before the run reads its state;
//! - every state the run stores is written only if that row still has the run's generation, in
//!   the same statement (the row is locked while the write commits, so a newer holder's bump
//!   waits for it and then reads it): a late write of a run whose lock was taken over stores
//!   nothing and fails the run, and can never overwrite the newer run's states;
//! - a thread watches the lock's session (its connection ending, and a query every
//!   [`HEARTBEAT`], which also keeps an idle timeout away): once it is gone the run is told to
//!   stop, and it stores no more states even before anyone else took the lock.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::StoreError;

/// How often the lock's session is checked.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a check may take before the session counts as lost (a network cut).
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long dropping the lock waits for the session to close (the server then releases it).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The run lock of one state id, as the state writes of its run check it.
#[derive(Clone, Debug)]
pub(crate) struct Fence {
    pub(crate) id: String,
    /// The `run_lock` generation this run took.
    pub(crate) generation: i64,
    /// Why the lock's session was lost, once it was.
    lost: Arc<Mutex<Option<String>>>,
}

impl Fence {
    /// Why the run lost its lock, if it did.
    pub(crate) fn lost(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|l| l.clone())
    }

    fn mark_lost(&self, why: String) {
        if let Ok(mut l) = self.lost.lock()
            && l.is_none()
        {
            *l = Some(format!(
                "lost the run lock of state id `{}` ({why}); another run may have started, so \
                 this run stores no more states",
                self.id
            ));
        }
    }
}

/// A held advisory lock. Dropping it closes its session, which releases it.
pub(crate) struct PgLock {
    fence: Fence,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    watcher: Option<JoinHandle<()>>,
}

impl PgLock {
    pub(crate) fn fence(&self) -> &Fence {
        &self.fence
    }
}

impl Drop for PgLock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

/// This process, as the `holder` of a lock: `host pid N`.
fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".into());
    format!("{host} pid {}", std::process::id())
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError(format!("state store (PostgreSQL): {e}"))
}

/// What [`try_lock`] found.
pub(crate) enum Taken {
    Held(PgLock),
    /// Another run holds it; who, as far as `run_lock` tells.
    Busy(String),
}

/// Takes the run lock of `id` in store schema `schema` (quoted) on a session of its own.
pub(crate) fn try_lock(url: &str, schema: &str, id: &str) -> Result<Taken, StoreError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError(format!("cannot start a runtime: {e}")))?;
    let (client, conn) = rt
        .block_on(tokio_postgres::connect(url, NoTls))
        .map_err(pg)?;
    let conn = rt.spawn(conn);
    let taken = rt.block_on(async {
        // The key is the one earlier versions used, so old and new runs exclude each other.
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('singer-run:' || $1 || ':' || $2, 0))",
                &[&schema, &id],
            )
            .await?
            .get(0);
        if !got {
            // The holder's row, once the session holding the lock has written it (it does so
            // just after taking the lock).
            let sql = format!(
                "SELECT r.holder || ', since ' || to_char(r.since AT TIME ZONE 'UTC', \
                 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM {schema}.run_lock r
                 WHERE r.id = $1 AND r.session_pid IN (SELECT pid FROM pg_locks
                   WHERE locktype = 'advisory' AND granted AND ((classid::bigint << 32)
                     | objid::bigint) = hashtextextended('singer-run:' || $2 || ':' || $1, 0))"
            );
            for _ in 0..10 {
                if let Some(r) = client.query_opt(&sql, &[&id, &schema]).await? {
                    return Ok::<_, tokio_postgres::Error>(Err(Some(r.get::<_, String>(0))));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return Ok::<_, tokio_postgres::Error>(Err(None));
        }
        let generation: i64 = client
            .query_one(
                &format!(
                    "INSERT INTO {schema}.run_lock AS l (id, generation, holder, since, session_pid)
                     VALUES ($1, 1, $2, now(), pg_backend_pid())
                     ON CONFLICT (id) DO UPDATE
                       SET generation = l.generation + 1, holder = EXCLUDED.holder, since = now(),
                         session_pid = EXCLUDED.session_pid
                     RETURNING generation"
                ),
                &[&id, &holder()],
            )
            .await?
            .get(0);
        Ok(Ok(generation))
    });
    let generation = match taken.map_err(pg)? {
        Ok(g) => g,
        Err(holder) => {
            let who =
                holder.map_or_else(|| "holder not recorded".into(), |h| format!("held by {h}"));
            return Ok(Taken::Busy(who));
        }
    };
    let fence = Fence {
        id: id.to_string(),
        generation,
        lost: Arc::new(Mutex::new(None)),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let watched = fence.clone();
    let watcher = std::thread::Builder::new()
        .name("singer-run-lock".into())
        .spawn(move || rt.block_on(watch(client, conn, stopped, watched)))
        .map_err(|e| StoreError(format!("cannot start the run lock's watcher: {e}")))?;
    Ok(Taken::Held(PgLock {
        fence,
        stop: Some(stop),
        watcher: Some(watcher),
    }))
}

/// Watches the lock's session until the lock is dropped (then closes it) or the session is
/// lost (then marks the fence).
async fn watch(
    client: tokio_postgres::Client,
    mut conn: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    fence: Fence,
) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.tick().await;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            ended = &mut conn => {
                fence.mark_lost(match ended {
                    Ok(Err(e)) => format!("its PostgreSQL session ended: {e}"),
                    _ => "its PostgreSQL session ended".into(),
                });
                return;
            }
            _ = beat.tick() => {
                match tokio::time::timeout(HEARTBEAT_TIMEOUT, client.simple_query("SELECT 1")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        fence.mark_lost(format!("its PostgreSQL session failed: {e}"));
                        return;
                    }
                    Err(_) => {
                        fence.mark_lost(format!(
                            "its PostgreSQL session did not answer for {} s",
                            HEARTBEAT_TIMEOUT.as_secs()
                        ));
                        return;
                    }
                }
            }
        }
    }
    // Closing the session releases the lock at once (the connection sends Terminate once its
    // last client is gone).
    drop(client);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn).await;
}
