//! Stopping a target on SIGTERM or SIGINT without losing what it read.
//!
//! The first signal asks the driver to stop reading: it finishes the message it is on, cuts
//! every stream's buffer into a last batch, waits until every loader committed, echoes the
//! newest state those commits cover and exits 0. The tap's pipe may stay open: nothing more is
//! read from it.
//!
//! A second signal, or a drain longer than the target's [`Target::drain_timeout`], exits at
//! once with a non-zero status (128 + the signal's number, or 1 on the timeout). Transactions
//! still open die with the process, and no state is echoed from then on, so the last echoed
//! state still covers only committed records. SIGINT behaves as SIGTERM: in a shell pipeline
//! `tap | target`, Ctrl-C reaches both, and the target keeps what it read.
//!
//! [`Target::drain_timeout`]: super::Target::drain_timeout

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::signal::unix::{SignalKind, signal};

/// How long a forced exit waits for a state line being written to stdout to finish.
const STDOUT_WAIT: Duration = Duration::from_secs(1);

/// Which stop signal arrived first, if any (its number; 0 before any).
#[derive(Clone, Default)]
pub(super) struct StopFlag(Arc<AtomicI32>);

impl StopFlag {
    /// Whether a stop was asked for (read once per input line: a relaxed load).
    pub(super) fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    /// The name of the signal that asked for the stop.
    pub(super) fn signal_name(&self) -> &'static str {
        Sig::from_number(self.0.load(Ordering::SeqCst)).name()
    }
}

#[derive(Clone, Copy)]
enum Sig {
    Term,
    Int,
}

impl Sig {
    fn number(self) -> i32 {
        match self {
            Sig::Int => 2,
            Sig::Term => 15,
        }
    }

    fn from_number(n: i32) -> Self {
        if n == 2 { Sig::Int } else { Sig::Term }
    }

    fn name(self) -> &'static str {
        match self {
            Sig::Int => "SIGINT",
            Sig::Term => "SIGTERM",
        }
    }
}

/// Installs the SIGTERM and SIGINT handlers (before any input is read, so no signal finds
/// the default action that would kill the process) and returns the flag the driver polls.
pub(super) fn listen(
    rt: &Runtime,
    name: &'static str,
    drain_timeout: Duration,
) -> std::io::Result<StopFlag> {
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
        set.0.store(first.number(), Ordering::SeqCst);
        tracing::warn!(
            signal = first.name(),
            "stopping: no more input is read; committing what was read (signal again to exit at once)"
        );
        let second = tokio::select! {
            _ = term.recv() => Some(Sig::Term),
            _ = int.recv() => Some(Sig::Int),
            () = tokio::time::sleep(drain_timeout) => None,
        };
        match second {
            Some(s) => exit_now(
                name,
                128 + s.number(),
                &format!(
                    "{} while committing after {}: exiting without echoing more state",
                    s.name(),
                    first.name()
                ),
            ),
            None => exit_now(
                name,
                1,
                &format!(
                    "what was read did not commit within {} s of {}: exiting without echoing more state",
                    drain_timeout.as_secs_f64(),
                    first.name()
                ),
            ),
        }
    });
    Ok(flag)
}

/// Exits the process now. Stdout is held first, so that no state line is written, or cut in
/// half, from here on; a writer blocked on a full pipe holds the exit up for at most
/// [`STDOUT_WAIT`].
fn exit_now(name: &str, code: i32, why: &str) -> ! {
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
