//! Child processes: each tap and target runs in a process group of its own, so stopping it
//! stops whatever it started; the last lines of its stderr are kept for the report.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use std::os::unix::process::CommandExt;

/// How many stderr lines are kept for the failure report.
const TAIL_LINES: usize = 20;

/// A running tap or target.
pub(crate) struct Proc {
    pub(crate) role: &'static str,
    pub(crate) child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
    stderr_thread: Option<JoinHandle<()>>,
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
        })
    }

    /// The last stderr lines.
    pub(crate) fn stderr_tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Asks the process group to stop (SIGTERM), then kills it after `grace`.
    pub(crate) fn terminate(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pgid = self.child.id();
        signal_group(pgid, Signal::Term);
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                signal_group(pgid, Signal::Kill);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(pgid, Signal::Kill);
    }

    /// Waits for exit and for its stderr to be read to the end.
    pub(crate) fn wait(&mut self) -> Result<ExitStatus, String> {
        let status = self
            .child
            .wait()
            .map_err(|e| format!("waiting for the {} failed: {e}", self.role))?;
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        Ok(status)
    }
}

pub(crate) enum Signal {
    Term,
    Kill,
}

/// Sends a signal to a whole process group.
pub(crate) fn signal_group(pgid: u32, sig: Signal) {
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
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
