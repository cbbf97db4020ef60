//! Child processes: each tap and target runs in a process group of its own, so stopping it
//! stops whatever it started; the last lines of its stderr are kept for the report.
//!
//! Stopping is asked for without blocking ([`Proc::ask_to_stop`]: SIGTERM now, SIGKILL once
//! the grace runs out, enforced by [`Proc::poll`]), so the run keeps storing the states the
//! target confirms meanwhile. Every child still running is also listed in a process-wide
//! registry, so that a second SIGTERM or Ctrl-C to `singer`, which ends it at once, can first
//! stop them all ([`stop_all`]): a child in a group of its own would not get the terminal's
//! signal, and would outlive `singer`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

/// How many stderr lines are kept for the failure report.
const TAIL_LINES: usize = 20;

/// On a second signal to `singer`: how long its children get between SIGTERM and SIGKILL.
pub(crate) const FORCE_GRACE: Duration = Duration::from_secs(5);

/// A running tap or target.
pub(crate) struct Proc {
    pub(crate) role: &'static str,
    pub(crate) child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
    stderr_thread: Option<JoinHandle<()>>,
    /// When SIGKILL follows the SIGTERM already sent, if a stop was asked for.
    kill_at: Option<Instant>,
    /// The group got SIGKILL because it outlived its grace.
    killed: bool,
    status: Option<ExitStatus>,
}

/// What a stderr line means to the run.
pub(crate) type StderrSink = Box<dyn FnMut(&'static str, &str) + Send>;

impl Proc {
    /// Starts `argv[0] argv[1..]` in `dir` with piped stdio; `on_stderr` sees every stderr line.
    pub(crate) fn spawn(
        role: &'static str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        dir: &Path,
        stdin: bool,
        mut on_stderr: StderrSink,
    ) -> Result<Self, String> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {role} `{}`: {e}", program.display()))?;
        register(child.id(), true);
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let stderr = child.stderr.take();
        let keep = Arc::clone(&tail);
        let stderr_thread = stderr.map(|err| {
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    on_stderr(role, &line);
                    if let Ok(mut t) = keep.lock() {
                        if t.len() == TAIL_LINES {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                }
            })
        });
        Ok(Self {
            role,
            child,
            tail,
            stderr_thread,
            kill_at: None,
            killed: false,
            status: None,
        })
    }

    /// The last stderr lines.
    pub(crate) fn stderr_tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Asks the process group to stop: SIGTERM now, SIGKILL if the process is still running
    /// `grace` later (sent by [`Self::poll`]). Asking again changes nothing.
    pub(crate) fn ask_to_stop(&mut self, grace: Duration) {
        if self.kill_at.is_some() || self.poll().is_some() {
            return;
        }
        tracing::info!(role = self.role, "sending SIGTERM");
        signal_group(self.child.id(), Signal::Term);
        self.kill_at = Some(Instant::now() + grace);
    }

    /// Whether [`Self::ask_to_stop`] was called.
    pub(crate) fn stop_asked(&self) -> bool {
        self.kill_at.is_some()
    }

    /// Whether the group had to be killed: it did not stop within its grace.
    pub(crate) fn was_killed(&self) -> bool {
        self.killed
    }

    /// The exit status once the process exited (without blocking). Sends the SIGKILL of a stop
    /// whose grace ran out; once a stopped process exited, kills what is left of its group.
    pub(crate) fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
            if self.status.is_some() {
                unregister(self.child.id());
                if self.kill_at.is_some() {
                    // What the process started and left behind goes with it.
                    signal_group(self.child.id(), Signal::Kill);
                }
            } else if self.kill_at.is_some_and(|t| Instant::now() >= t) && !self.killed {
                tracing::warn!(
                    role = self.role,
                    "still running after its grace: sending SIGKILL"
                );
                signal_group(self.child.id(), Signal::Kill);
                self.killed = true;
            }
        }
        self.status
    }

    /// Asks the process group to stop (SIGTERM), then kills it after `grace`; blocks until it
    /// exited.
    pub(crate) fn terminate(&mut self, grace: Duration) {
        self.ask_to_stop(grace);
        while self.poll().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for exit and for its stderr to be read to the end.
    pub(crate) fn wait(&mut self) -> Result<ExitStatus, String> {
        let status = self
            .child
            .wait()
            .map_err(|e| format!("waiting for the {} failed: {e}", self.role))?;
        unregister(self.child.id());
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        Ok(status)
    }
}

impl Drop for Proc {
    /// A process dropped while still running stays registered, so that [`stop_all`] can still
    /// reach it.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            unregister(self.child.id());
        }
    }
}

pub(crate) enum Signal {
    Term,
    Kill,
}

/// A child `singer` started and has not yet seen exit.
#[derive(Clone, Copy)]
struct Live {
    pid: u32,
    /// Its own process group (tap and target), else a plain child in `singer`'s group.
    group: bool,
}

/// Every child still running, across the runs of this process (`singer schedule` has several).
static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());

/// Lists a child for [`stop_all`]; `group` when it leads a process group of its own.
pub(crate) fn register(pid: u32, group: bool) {
    if let Ok(mut live) = LIVE.lock() {
        live.push(Live { pid, group });
    }
}

/// Forgets a child that exited.
pub(crate) fn unregister(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|l| l.pid != pid);
    }
}

/// Stops every registered child: SIGTERM to each (its whole group for taps and targets),
/// SIGKILL to those still running `grace` later, and to what remains of their groups. Used
/// before `singer` exits at once on a second signal; returns once all were signalled.
pub(crate) fn stop_all(grace: Duration) {
    let live: Vec<Live> = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    if live.is_empty() {
        return;
    }
    tracing::warn!(
        children = live.len(),
        "sending SIGTERM to every child, SIGKILL after {} s",
        grace.as_secs_f64()
    );
    for l in &live {
        send(*l, Signal::Term);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && live.iter().any(|l| running(l.pid)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for l in &live {
        send(*l, Signal::Kill);
    }
}

fn send(l: Live, sig: Signal) {
    if l.group {
        signal_group(l.pid, sig);
    } else if let Some(pid) = pid_of(l.pid) {
        let sig = match sig {
            Signal::Term => rustix::process::Signal::TERM,
            Signal::Kill => rustix::process::Signal::KILL,
        };
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Whether our child `pid` has not exited yet. It is not reaped here (`WNOWAIT`): the thread
/// that owns it still collects its status.
fn running(pid: u32) -> bool {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    let Some(p) = pid_of(pid) else {
        return false;
    };
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    // `None`: still running. An error (ECHILD): already reaped by its owner.
    matches!(waitid(WaitId::Pid(p), opts), Ok(None))
}

fn pid_of(pid: u32) -> Option<rustix::process::Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
}

/// Sends a signal to a whole process group.
pub(crate) fn signal_group(pgid: u32, sig: Signal) {
    let Some(pid) = pid_of(pgid) else {
        return;
    };
    let sig = match sig {
        Signal::Term => rustix::process::Signal::TERM,
        Signal::Kill => rustix::process::Signal::KILL,
    };
    let _ = rustix::process::kill_process_group(pid, sig);
}

/// `exit 0`, `exit 3` or `killed by signal 9`.
pub(crate) fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "not run".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "unknown".into(),
        },
    }
}
