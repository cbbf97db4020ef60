//! Retries after retriable database errors, and what a COMMIT whose answer was lost did.
//!
//! A batch, a schema change or an ACTIVATE_VERSION that fails with a retriable error
//! ([`crate::connect::DbError`]'s class: a lost connection, a server shutting down or
//! starting, a serialization failure, a deadlock) is retried after `retry_backoff_seconds`,
//! doubling up to [`MAX_BACKOFF`], at most `max_retries` times; every retry is logged with the
//! stream and the cause. Before each retry the loader reopens the connections that no longer
//! answer (a new session: its settings are set again, and the staging tables and statements of
//! a part are created by the part itself) and re-reads the table's definition, so a schema
//! change or a widening cut short is planned again from what the server really has.
//!
//! A batch is one transaction per connection, so a failure before COMMIT leaves nothing
//! behind and the batch is replayed whole. A failure during COMMIT is ambiguous: the server
//! may have committed before the answer was lost. Replaying would duplicate the rows of a
//! stream without key, and not replaying could lose them. So each batch transaction starts by
//! reading its transaction id (`txid_current()`, which also assigns it; in the same round trip
//! as `BEGIN`), and after a lost COMMIT the loader asks the server `txid_status(xid)`:
//! `committed` (nothing to replay), `aborted` (replay), or `in progress`, when the old session
//! has not yet noticed the lost connection and may still be about to commit. Then the old
//! backend is ended with `pg_terminate_backend` (only when it still holds that transaction),
//! which settles the outcome: a commit under way completes first, anything else rolls back.
//!
//! Over several connections ([`crate::loader`]), each shard's transaction commits in turn: the
//! shards before a lost COMMIT committed, the lost one is looked up as above, the others
//! rolled back; only the shards that did not commit are loaded again. The batch counts as
//! loaded, and a later state can be echoed, only once every shard committed.
//!
//! DDL and ACTIVATE_VERSION statements run outside batch transactions and are idempotent once
//! planned again from the re-read definition, so they need no lookup: they are run again.

use std::time::Duration;

use singer_core::sdk::SdkError;
use singer_core::{Classify, ErrorClass};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::connect::{DbError, db_error};
use crate::sink::{Batch, Part};

/// The longest wait between two retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How often a transaction still in progress on a lost connection is looked up again, and how
/// long to wait in between, before counting as a failed retry.
const IN_PROGRESS_POLLS: u32 = 20;
const IN_PROGRESS_POLL: Duration = Duration::from_millis(100);

/// How many times, and after how long, retriable errors are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first failure; 0 fails at once.
    pub max_retries: u32,
    /// The wait before the first retry; it doubles with each further one.
    pub backoff: Duration,
}

impl RetryPolicy {
    /// The policy of the `max_retries` and `retry_backoff_seconds` settings.
    pub fn from_settings(max_retries: u32, backoff_seconds: f64) -> Result<Self, SdkError> {
        if max_retries > 1000 {
            return Err(SdkError::Config(format!(
                "max_retries must be at most 1000, not {max_retries}"
            )));
        }
        if !(0.0..=3600.0).contains(&backoff_seconds) {
            return Err(SdkError::Config(format!(
                "retry_backoff_seconds must be between 0 and 3600, not {backoff_seconds}"
            )));
        }
        Ok(Self {
            max_retries,
            backoff: Duration::from_secs_f64(backoff_seconds),
        })
    }

    /// The wait before retry `n` (1-based): the backoff doubled `n - 1` times, at most
    /// [`MAX_BACKOFF`] (or the backoff itself when that is longer).
    pub fn delay(&self, n: u32) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1u32 << n.saturating_sub(1).min(20));
        doubled.min(MAX_BACKOFF.max(self.backoff))
    }
}

/// The retries of one step (a batch, a schema change, an ACTIVATE_VERSION).
pub(crate) struct Retry {
    policy: RetryPolicy,
    step: &'static str,
    done: u32,
}

impl Retry {
    pub(crate) fn new(policy: RetryPolicy, step: &'static str) -> Self {
        Self {
            policy,
            step,
            done: 0,
        }
    }

    /// After `err`: returns it when it is not retriable or no retry is left; otherwise logs
    /// the retry and waits its backoff.
    pub(crate) async fn wait(&mut self, stream: &str, err: SdkError) -> Result<(), SdkError> {
        if err.class() != ErrorClass::Retriable || self.policy.max_retries == 0 {
            return Err(err);
        }
        if self.done >= self.policy.max_retries {
            return Err(SdkError::fatal(
                format!(
                    "stream `{stream}`: {} gave up after {} retries",
                    self.step, self.done
                ),
                err,
            ));
        }
        self.done += 1;
        let delay = self.policy.delay(self.done);
        tracing::warn!(
            stream = %stream,
            step = self.step,
            retry = self.done,
            of = self.policy.max_retries,
            wait_s = delay.as_secs_f64(),
            error = %singer_core::error::chain_to_string(&err),
            "retriable database error; reconnecting and retrying"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// An open batch transaction: its id (with epoch, as `txid_current()` gives it) and the
/// backend process that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Txn {
    pub(crate) xid: i64,
    pub(crate) pid: i32,
}

/// `BEGIN`, reading the transaction id and the backend in the same round trip.
pub(crate) async fn begin(
    client: &Client,
    context: impl FnOnce() -> String,
) -> Result<Txn, SdkError> {
    let messages = match client
        .simple_query("BEGIN; SELECT txid_current(), pg_backend_pid()")
        .await
    {
        Ok(m) => m,
        Err(e) => return Err(db_error(context(), e)),
    };
    let txn = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(Txn {
            xid: r.get(0)?.parse().ok()?,
            pid: r.get(1)?.parse().ok()?,
        }),
        _ => None,
    });
    txn.ok_or_else(|| {
        SdkError::fatal(
            context(),
            std::io::Error::other("BEGIN did not return the transaction id"),
        )
    })
}

/// A COMMIT that failed: with a retriable error its outcome is unknown and must be looked up
/// before the rows are loaded again.
#[derive(Debug)]
pub(crate) struct CommitFailed {
    pub(crate) txn: Txn,
    /// The shards whose rows the transaction held.
    pub(crate) shards: Vec<usize>,
    /// Shards of the batch that committed before it.
    pub(crate) committed: Vec<usize>,
    error: DbError,
}

impl std::fmt::Display for CommitFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for CommitFailed {}

impl Classify for CommitFailed {
    fn class(&self) -> ErrorClass {
        self.error.class()
    }
}

/// The error of a failed COMMIT of `txn`, holding `shards`, after `committed` shards did.
pub(crate) fn commit_failed(
    context: String,
    error: tokio_postgres::Error,
    txn: Txn,
    shards: Vec<usize>,
    committed: Vec<usize>,
) -> SdkError {
    SdkError::connector(
        context,
        CommitFailed {
            txn,
            shards,
            committed,
            error: DbError(error),
        },
    )
}

/// The failed COMMIT behind `err`, if that is what it is.
pub(crate) fn lost_commit(err: &SdkError) -> Option<&CommitFailed> {
    match err {
        SdkError::Connector { source, .. } => source.downcast_ref::<CommitFailed>(),
        _ => None,
    }
}

/// A lost transaction that cannot be settled yet; retriable.
#[derive(Debug)]
struct StillInProgress(i64);

impl std::fmt::Display for StillInProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "transaction {} is still in progress on the lost connection's backend",
            self.0
        )
    }
}

impl std::error::Error for StillInProgress {}

impl Classify for StillInProgress {
    fn class(&self) -> ErrorClass {
        ErrorClass::Retriable
    }
}

/// Whether `txn`, whose COMMIT answer was lost, committed; asked on `client`, a working
/// connection. A transaction still in progress has its backend ended (see the module
/// documentation) and is looked up again.
pub(crate) async fn committed(client: &Client, stream: &str, txn: Txn) -> Result<bool, SdkError> {
    let context = || {
        format!(
            "stream `{stream}`: cannot learn whether transaction {} committed",
            txn.xid
        )
    };
    for _ in 0..IN_PROGRESS_POLLS {
        let row = client
            .query_one("SELECT txid_status($1)", &[&txn.xid])
            .await
            .map_err(|e| db_error(context(), e))?;
        let status: Option<String> = row.try_get(0).map_err(|e| db_error(context(), e))?;
        match status.as_deref() {
            Some("committed") => return Ok(true),
            Some("aborted") => return Ok(false),
            Some(_) => {
                // Still held by the old backend: the COMMIT may not have reached it yet. End
                // that backend, if it is still the one holding the transaction (a pid can be
                // reused); allowed on a session of one's own role.
                let ended = client
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE pid = $1 AND backend_xid::text::bigint = $2",
                        &[&txn.pid, &(txn.xid & 0xffff_ffff)],
                    )
                    .await;
                match ended {
                    Ok(rows) if !rows.is_empty() => {
                        tracing::warn!(stream = %stream, xid = txn.xid, pid = txn.pid, "the lost connection's session still held the transaction; ended it");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(stream = %stream, error = %DbError(e), "cannot end the lost connection's session");
                    }
                }
                tokio::time::sleep(IN_PROGRESS_POLL).await;
            }
            None => {
                return Err(SdkError::fatal(
                    context(),
                    std::io::Error::other("the server no longer knows it"),
                ));
            }
        }
    }
    Err(SdkError::connector(context(), StillInProgress(txn.xid)))
}

/// The parts of `batch` on shards other than `committed`.
pub(crate) fn without_shards(batch: &Batch, committed: &[usize]) -> Batch {
    Batch {
        parts: batch
            .parts
            .iter()
            .filter(|p| !committed.contains(&p.shard))
            .map(|p| Part {
                shard: p.shard,
                columns: p.columns.clone(),
                data: p.data.clone(),
                lines: p.lines.clone(),
                unique_keys: p.unique_keys,
            })
            .collect(),
        versions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::from_settings(8, 1.0).unwrap();
        let waits: Vec<u64> = (1..=8).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        let p = RetryPolicy::from_settings(3, 0.05).unwrap();
        assert_eq!(p.delay(3), Duration::from_millis(200));
        assert_eq!(p.delay(1000), MAX_BACKOFF);
        // A first wait longer than the cap stays as given.
        let p = RetryPolicy::from_settings(3, 60.0).unwrap();
        assert_eq!(p.delay(2), Duration::from_secs(60));
        assert!(RetryPolicy::from_settings(3, -1.0).is_err());
        assert!(RetryPolicy::from_settings(3, f64::NAN).is_err());
        assert!(RetryPolicy::from_settings(1001, 1.0).is_err());
    }

    #[test]
    fn only_retriable_errors_are_retried_and_only_so_often() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let policy = RetryPolicy::from_settings(2, 0.0).unwrap();
            let retriable = || SdkError::connector("lost", StillInProgress(7)) as SdkError;
            let mut r = Retry::new(policy, "load");
            assert!(r.wait("s", retriable()).await.is_ok());
            assert!(r.wait("s", retriable()).await.is_ok());
            let e = r.wait("s", retriable()).await.unwrap_err();
            assert_eq!(e.class(), ErrorClass::Fatal);
            let text = singer_core::error::chain_to_string(&e);
            assert!(
                text.contains("stream `s`: load gave up after 2 retries")
                    && text.contains("transaction 7 is still in progress"),
                "{text}"
            );
            let mut r = Retry::new(policy, "load");
            let fatal = SdkError::fatal("bad value", std::io::Error::other("no"));
            assert_eq!(
                r.wait("s", fatal).await.unwrap_err().to_string(),
                "bad value"
            );
        });
    }
}
