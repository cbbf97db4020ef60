//! Running external commands: one place that turns spawn failures and non-zero exits into
//! messages naming the command, so callers stay short.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::Result;

/// A command plus the text used to name it in messages.
pub(crate) struct Cmd {
    inner: Command,
    shown: String,
}

impl Cmd {
    pub(crate) fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref();
        let shown = program.to_string_lossy().into_owned();
        let mut inner = Command::new(program);
        // Tasks run in CI without a terminal: nothing may wait for input.
        inner.stdin(Stdio::null());
        Self { inner, shown }
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        let arg = arg.as_ref();
        self.shown.push(' ');
        self.shown.push_str(&arg.to_string_lossy());
        self.inner.arg(arg);
        self
    }

    pub(crate) fn args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, Self::arg)
    }

    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.inner.env(key, value);
        self
    }

    pub(crate) fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// Runs the command as another user and group (the caller must be root).
    pub(crate) fn run_as(mut self, uid: u32, gid: u32) -> Self {
        use std::os::unix::process::CommandExt as _;
        self.inner.uid(uid).gid(gid);
        self
    }

    /// Runs with stdout and stderr shown to the user; fails on a non-zero exit.
    pub(crate) fn run(mut self) -> Result {
        let status = self.inner.status().map_err(|e| self.spawn_error(&e))?;
        self.check(status)
    }

    /// Runs quietly and reports whether it exited 0 (a failure to start counts as `false`).
    pub(crate) fn succeeds(mut self) -> bool {
        self.inner.stdout(Stdio::null()).stderr(Stdio::null());
        self.inner.status().is_ok_and(|status| status.success())
    }

    /// Runs and returns trimmed stdout; on failure the error carries stderr.
    pub(crate) fn output(mut self) -> Result<String> {
        let out = self.inner.output().map_err(|e| self.spawn_error(&e))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "`{}` failed ({}): {}",
            self.shown,
            out.status,
            stderr.trim()
        ))
    }

    /// Runs with stdout and stderr appended to `log`; a failure shows the log's last lines.
    ///
    /// Used for commands that may start daemons (apt's maintainer scripts, server start
    /// commands): a daemon that inherited our stdout pipe would keep it open, and a CI runner
    /// reading that pipe would then never see it close.
    pub(crate) fn run_logged(mut self, log: &Path) -> Result {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
        }
        let open = || {
            File::options()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| format!("failed to open {}: {e}", log.display()))
        };
        self.inner.stdout(open()?).stderr(open()?);
        let status = self.inner.status().map_err(|e| self.spawn_error(&e))?;
        self.check(status).map_err(|message| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            format!("{message}\nlast lines of {}:\n{tail}", log.display())
        })
    }

    /// Starts the command with the given stdio and returns the child.
    pub(crate) fn spawn(
        mut self,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<(Child, String)> {
        self.inner.stdin(stdin).stdout(stdout).stderr(stderr);
        let child = self.inner.spawn().map_err(|e| self.spawn_error(&e))?;
        Ok((child, self.shown))
    }

    fn check(&self, status: ExitStatus) -> Result {
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` failed ({status})", self.shown))
        }
    }

    fn spawn_error(&self, err: &std::io::Error) -> String {
        format!("failed to start `{}`: {err}", self.shown)
    }
}

/// Finds `name` on `PATH`, like `command -v`.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Polls `ready` every 500 ms until it returns true or `seconds` pass.
pub(crate) fn wait_until(seconds: u64, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if ready() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Whether this process runs as root (needed for apt and for starting system services).
pub(crate) fn is_root() -> bool {
    Cmd::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|uid| uid == "0")
}
