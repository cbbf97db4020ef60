//! A private PostgreSQL instance for benchmarks that need settings the shared server lacks
//! (`wal_level = logical`): a fresh cluster in a directory of its own under `/tmp`, listening
//! on a free port of 127.0.0.1 with trust auth (replication too), stopped and removed on drop.
//!
//! PostgreSQL refuses to run as root: when xtask does, `initdb` and `postgres` run as the
//! `postgres` OS user, who owns the directory. The server shares xtask's process group, so a
//! Ctrl-C reaches it too (SIGINT is its fast shutdown); a watchdog shell, which ignores those
//! signals and waits for xtask to go away, stops the server and removes the directory when xtask
//! dies without unwinding.

use std::fs::File;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use crate::Result;
use crate::process::{self, Cmd};

/// How long the server may take to accept connections, and to shut down.
const READY: Duration = Duration::from_secs(60);
const SHUTDOWN: Duration = Duration::from_secs(60);

pub(crate) struct PrivatePg {
    pub(crate) port: u16,
    dir: PathBuf,
    postmaster: Option<Child>,
    /// `sh` reading its stdin, which reaches EOF only when xtask is gone.
    watchdog: Option<(Child, ChildStdin)>,
}

impl PrivatePg {
    /// Initialises a cluster and starts it with `settings` added to `postgresql.conf`.
    pub(crate) fn start(settings: &[(&str, &str)]) -> Result<Self> {
        let version = crate::postgres::installed_version()
            .ok_or("no PostgreSQL server under /usr/lib/postgresql; run `cargo xtask services`")?;
        let bin = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        let owner = if process::is_root() {
            Some(postgres_ids()?)
        } else {
            None
        };
        let dir = PathBuf::from(format!("/tmp/xtask-pg-{}", std::process::id()));
        if dir.exists() {
            // Left by an earlier xtask with our process id; nothing can be using it.
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        let watchdog = spawn_watchdog(&dir);
        let data = dir.join("data");
        step!(
            "pg: initialising a private PostgreSQL {version} cluster in {}",
            dir.display()
        );
        let as_owner = |cmd: Cmd| match owner {
            Some((uid, gid)) => cmd.run_as(uid, gid),
            None => cmd,
        };
        as_owner(Cmd::new(bin.join("initdb")))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ])
            .current_dir(&dir)
            .run_logged(&dir.join("initdb.log"))?;
        let mut conf = format!(
            "\n# cargo xtask: private benchmark server\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n",
            dir.display()
        );
        for (key, value) in settings {
            conf.push_str(&format!("{key} = '{value}'\n"));
        }
        append(&data.join("postgresql.conf"), &conf)?;
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nlocal replication all trust\n\
             host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n",
        )
        .map_err(|e| format!("{}: {e}", data.display()))?;

        // From here on, dropping `server` stops whatever runs and removes the directory.
        let mut server = Self {
            port: 0,
            dir,
            postmaster: None,
            watchdog,
        };
        // A port taken between choosing and binding it is retried with another one.
        for _ in 0..5 {
            server.port = free_port()?;
            let log = File::options()
                .create(true)
                .append(true)
                .open(server.dir.join("server.log"))
                .map_err(|e| format!("{}: {e}", server.dir.display()))?;
            let err = log.try_clone().map_err(|e| e.to_string())?;
            let (postmaster, _) = as_owner(Cmd::new(bin.join("postgres")))
                .arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(server.port.to_string())
                .current_dir(&server.dir)
                .spawn(Stdio::null(), Stdio::from(log), Stdio::from(err))?;
            server.postmaster = Some(postmaster);
            match server.wait_ready() {
                Ok(()) => {
                    step!("pg: private server ready on 127.0.0.1:{}", server.port);
                    return Ok(server);
                }
                Err(e) if e.contains("already in use") => continue,
                Err(e) => return Err(e),
            }
        }
        Err("the private PostgreSQL found no free port in 5 tries".into())
    }

    fn wait_ready(&mut self) -> Result {
        let deadline = Instant::now() + READY;
        loop {
            if let Some(Ok(Some(status))) = self.postmaster.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "the private PostgreSQL exited ({status}); server log:\n{}",
                    self.log_tail()
                ));
            }
            // Asked on its own socket: an answer there proves it is ours that bound the port.
            let ready = Cmd::new("pg_isready")
                .args(["-q", "-t", "2", "-U", "postgres", "-h"])
                .arg(&self.dir)
                .arg(format!("--port={}", self.port))
                .succeeds();
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the private PostgreSQL did not accept connections within {} s; server log:\n{}",
                    READY.as_secs(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// CPU seconds (user + system) used so far by the server's exited processes: the backends
    /// and walsenders of finished sessions. Waits first until no other session runs, so that
    /// the difference of two calls around a client's run is the server's work for it (plus a
    /// few milliseconds of these checks).
    pub(crate) fn exited_sessions_cpu_secs(&mut self) -> Result<f64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let others = crate::bench::psql_at(self.port, "postgres")
                .arg("-c")
                .arg(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
                     AND backend_type IN ('client backend', 'walsender')",
                )
                .output()?;
            if others == "0" {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{others} sessions still run on the private server"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // The postmaster adds a child's times to its own when it reaps it, just after it exits.
        std::thread::sleep(Duration::from_millis(200));
        let pid = self.postmaster.as_ref().ok_or("no postmaster")?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
        // After the command name, in parentheses: state is field 3, cutime and cstime 16 and 17.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks: f64 = [13, 14]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
            .sum();
        Ok(ticks / clock_ticks())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for PrivatePg {
    /// Fast shutdown (killed if it takes longer than a minute), then the directory goes.
    fn drop(&mut self) {
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            drop(stdin);
        }
        if let Some(postmaster) = &mut self.postmaster
            && matches!(postmaster.try_wait(), Ok(None))
        {
            let _ = Cmd::new("kill")
                .args(["-INT", &postmaster.id().to_string()])
                .succeeds();
            let deadline = Instant::now() + SHUTDOWN;
            while matches!(postmaster.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = postmaster.kill();
            let _ = postmaster.wait();
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => step!(
                "pg: private server on port {} stopped and removed",
                self.port
            ),
            Err(e) => step!("pg: could not remove {}: {e}", self.dir.display()),
        }
    }
}

/// `(uid, gid)` of the `postgres` OS user.
fn postgres_ids() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        Cmd::new("id")
            .args([flag, "postgres"])
            .output()?
            .parse()
            .map_err(|e| format!("`id {flag} postgres`: {e}"))
    };
    Ok((id("-u")?, id("-g")?))
}

fn append(path: &Path, text: &str) -> Result {
    File::options()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Clock ticks per second of /proc times (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    Cmd::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(100.0)
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// Waits for EOF on stdin (xtask gone), then stops the server whose pid `postmaster.pid` holds
/// and removes the directory. INT, TERM and HUP are ignored: they are meant for xtask.
const WATCHDOG: &str = r#"trap '' INT TERM HUP
while read -r _; do :; done
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ]; then
  kill -INT "$pid" 2>/dev/null
  n=0
  while [ -e "$1/data/postmaster.pid" ] && kill -0 "$pid" 2>/dev/null && [ "$n" -lt 600 ]; do
    sleep 0.1
    n=$((n + 1))
  done
  [ -e "$1/data/postmaster.pid" ] && kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$1""#;

/// The watchdog of `dir`; None if `sh` cannot start (the server is then only stopped on drop).
fn spawn_watchdog(dir: &Path) -> Option<(Child, ChildStdin)> {
    let (mut child, _) = Cmd::new("sh")
        .args(["-c", WATCHDOG, "xtask-pg-watchdog"])
        .arg(dir)
        .current_dir("/")
        .spawn(Stdio::piped(), Stdio::null(), Stdio::null())
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}
