//! The stop signals (SIGTERM, SIGINT) as taps and targets share them: which one came first,
//! a way to wait for it, and the forced exit a second signal causes.
//!
//! What a first signal means differs by role: a target commits what it read
//! ([`super::target`]'s `shutdown`), a tap stops at a message boundary ([`super::tap`]). A
//! second signal ends either at once through [`exit_now`], which first takes the stdout lock so
//! that no line is cut or written from then on.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How long a forced exit waits for a line being written to stdout to finish.
const STDOUT_WAIT: Duration = Duration::from_secs(1);

/// A stop signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sig {
    Term,
    Int,
}

impl Sig {
    /// The signal's number on Linux (and every Unix): 15 or 2.
    pub(crate) fn number(self) -> i32 {
        match self {
            Sig::Int => 2,
            Sig::Term => 15,
        }
    }

    fn from_number(n: i32) -> Option<Self> {
        match n {
            2 => Some(Sig::Int),
            15 => Some(Sig::Term),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Sig::Int => "SIGINT",
            Sig::Term => "SIGTERM",
        }
    }

    /// The conventional exit status of a process this signal interrupted: 128 + its number.
    pub(crate) fn exit_code(self) -> i32 {
        128 + self.number()
    }
}

/// Which stop signal arrived first, if any. Clones share it.
#[derive(Clone, Default)]
pub(crate) struct StopFlag(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// The first signal's number; 0 before any.
    first: AtomicI32,
    notify: Notify,
}

impl StopFlag {
    /// Whether a stop was asked for (cheap: read once per message or input line).
    pub(crate) fn requested(&self) -> bool {
        self.0.first.load(Ordering::Relaxed) != 0
    }

    /// The signal that asked for the stop.
    pub(crate) fn signal(&self) -> Option<Sig> {
        Sig::from_number(self.0.first.load(Ordering::SeqCst))
    }

    /// Records `sig` as the stop request (the first one wins) and wakes [`Self::stopped`].
    pub(crate) fn set(&self, sig: Sig) {
        let _ = self
            .0
            .first
            .compare_exchange(0, sig.number(), Ordering::SeqCst, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Completes once a stop was asked for.
    pub(crate) async fn stopped(&self) -> Sig {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a `set` between the two is not missed.
            notified.as_mut().enable();
            if let Some(sig) = self.signal() {
                return sig;
            }
            notified.await;
        }
    }
}

/// What a role does between the first and a second signal, in the words its logs use.
pub(crate) struct Stopping {
    /// The role's name in the CRITICAL line of a forced exit.
    pub name: &'static str,
    /// Logged on the first signal: what happens now.
    pub first: &'static str,
    /// What the role is doing while it stops (`"… while {doing} after SIGTERM"`).
    pub doing: &'static str,
    /// What a forced exit gives up (`"…: {forced}"`).
    pub forced: &'static str,
    /// How long stopping may take, and what a stop past it failed to do; `None`: no bound.
    pub deadline: Option<(Duration, &'static str)>,
}

/// Installs the SIGTERM and SIGINT handlers and returns the flag the first signal sets. A
/// second signal exits at once with 128 + its number; a stop past `deadline` exits 1.
pub(crate) fn listen(
    rt: &tokio::runtime::Runtime,
    stopping: Stopping,
) -> std::io::Result<StopFlag> {
    use tokio::signal::unix::{SignalKind, signal};
    let _guard = rt.enter();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let flag = StopFlag::default();
    let set = flag.clone();
    rt.spawn(async move {
        let first = tokio::select! {
            _ = term.recv() => Sig::Term,
            _ = int.recv() => Sig::Int,
        };
        set.set(first);
        tracing::warn!(signal = first.name(), "{}", stopping.first);
        let deadline = async {
            match stopping.deadline {
                Some((after, _)) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        let second = tokio::select! {
            _ = term.recv() => Some(Sig::Term),
            _ = int.recv() => Some(Sig::Int),
            () = deadline => None,
        };
        match second {
            Some(s) => exit_now(
                stopping.name,
                s.exit_code(),
                &format!(
                    "{} while {} after {}: {}",
                    s.name(),
                    stopping.doing,
                    first.name(),
                    stopping.forced
                ),
            ),
            // Only a deadline ends the wait without a signal.
            None => {
                let (after, failed) = stopping.deadline.unwrap_or_default();
                exit_now(
                    stopping.name,
                    1,
                    &format!(
                        "{failed} within {} s of {}: {}",
                        after.as_secs_f64(),
                        first.name(),
                        stopping.forced
                    ),
                )
            }
        }
    });
    Ok(flag)
}

/// Exits the process now. Stdout is held first, so that no line is written, or cut in half,
/// from here on; a writer blocked on a full pipe holds the exit up for at most
/// [`STDOUT_WAIT`] (its line may then stay cut, as after SIGKILL).
pub(crate) fn exit_now(name: &str, code: i32, why: &str) -> ! {
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _stdout = std::io::stdout().lock();
        let _ = held_tx.send(());
        loop {
            std::thread::park();
        }
    });
    let _ = held_rx.recv_timeout(STDOUT_WAIT);
    let _ = writeln!(std::io::stderr().lock(), "CRITICAL {name}: error: {why}");
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_wins_and_wakes_the_waiter() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let flag = StopFlag::default();
        assert!(!flag.requested());
        let waiter = flag.clone();
        let setter = flag.clone();
        let got = rt.block_on(async move {
            let wait = tokio::spawn(async move { waiter.stopped().await });
            tokio::task::yield_now().await;
            setter.set(Sig::Int);
            setter.set(Sig::Term);
            wait.await.unwrap()
        });
        assert_eq!(got, Sig::Int);
        assert_eq!(flag.signal(), Some(Sig::Int));
        assert_eq!(Sig::Term.exit_code(), 143);
        assert_eq!(Sig::Int.exit_code(), 130);
    }
}
