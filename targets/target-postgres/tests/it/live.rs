//! A target process fed and watched while it runs: input written in steps, each echoed state
//! seen as it arrives, signals sent, the exit awaited with a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running target.
pub(crate) struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    states: Receiver<Value>,
    seen: Vec<Value>,
    stderr: JoinHandle<String>,
}

/// How a target ended.
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    /// Every state it echoed, in order.
    pub(crate) states: Vec<Value>,
    pub(crate) stderr: String,
    /// From the call to [`Running::wait`] to the exit.
    pub(crate) waited: Duration,
}

impl Running {
    /// Starts `cmd`; `on_state` sees each echoed state the moment it is read.
    pub(crate) fn spawn(
        mut cmd: Command,
        mut on_state: impl FnMut(&Value) + Send + 'static,
    ) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (tx, states) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let state: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                on_state(&state);
                if tx.send(state).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        Self {
            stdin: child.stdin.take(),
            child,
            states,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Writes input; false once the target stopped reading (a broken pipe).
    pub(crate) fn write(&mut self, text: &str) -> bool {
        let Some(stdin) = self.stdin.as_mut() else {
            return false;
        };
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .is_ok()
    }

    /// Ends the input.
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `timeout` for the next echoed state.
    pub(crate) fn next_state(&mut self, timeout: Duration) -> Option<Value> {
        let state = self.states.recv_timeout(timeout).ok()?;
        self.seen.push(state.clone());
        Some(state)
    }

    /// Sends a signal (`TERM`, `INT`) to the target.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Whether the target is still running.
    pub(crate) fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the exit; kills the target and fails the test after `timeout`.
    pub(crate) fn wait(mut self, timeout: Duration) -> Finished {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the target did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr.join().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let waited = start.elapsed();
        let stderr = self.stderr.join().unwrap();
        let mut states = std::mem::take(&mut self.seen);
        states.extend(self.states.iter());
        Finished {
            status,
            states,
            stderr,
            waited,
        }
    }
}
