//! Test servers and databases: the shared PostgreSQL server (`SINGER_PG_URL`), or a private
//! instance with `wal_level=logical`, initialised in a temporary directory, listening on a free
//! port of 127.0.0.1 and stopped on drop. Every test works in a database of its own.
//!
//! PostgreSQL refuses to run as root: when the tests do, `initdb` and `postgres` run as the
//! `postgres` OS user (the temporary directory, under `/tmp`, is handed to it). A small watchdog
//! shell stops a private server and removes its directory when the test process dies without
//! unwinding (nextest timeout, Ctrl-C).

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the postmaster is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL server tests can use.
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The database administrative connections use.
    admin_db: String,
    /// Set for a private instance.
    private: Option<Private>,
}

/// A private instance: its directory (`data/`, the socket, `server.log`) and processes.
struct Private {
    bin: PathBuf,
    /// `(uid, gid)` of the `postgres` OS user when the tests run as root.
    owner: Option<(u32, u32)>,
    procs: Mutex<Procs>,
    dir: tempfile::TempDir,
}

struct Procs {
    postmaster: Child,
    /// `sh` waiting for EOF on its stdin, which only the death of this process brings.
    watchdog: Option<(Child, ChildStdin)>,
}

const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Server>();
};

impl Server {
    /// The shared server from `SINGER_PG_URL` (default `postgresql://postgres@127.0.0.1:5432/test`),
    /// trust auth.
    pub fn shared() -> Server {
        let url = std::env::var("SINGER_PG_URL")
            .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into());
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let (auth, rest) = rest.split_once('@').unwrap_or(("postgres", rest));
        let user = auth.split(':').next().unwrap();
        let (hostport, db) = rest.split_once('/').unwrap_or((rest, ""));
        let db = db.split('?').next().unwrap();
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
        Server {
            host: host.into(),
            port: port.parse().unwrap(),
            user: user.into(),
            admin_db: if db.is_empty() { "postgres" } else { db }.into(),
            private: None,
        }
    }

    /// A private instance with `wal_level=logical`, on a free port of 127.0.0.1. Each call starts
    /// its own; it is stopped and its directory removed on drop.
    pub fn logical() -> Server {
        let bin = bin_dir();
        let owner = if running_as_root() {
            Some(postgres_user())
        } else {
            None
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix("tap-pg-");
        // The `postgres` user must reach the directory: not through root's own TMPDIR.
        let mut dir = match owner {
            Some(_) => builder.tempdir_in("/tmp"),
            None => builder.tempdir(),
        }
        .unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let mut watchdog = spawn_watchdog(dir.path());
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
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
            .current_dir(dir.path());
        as_owner(&mut initdb, owner);
        let out = initdb.output().unwrap();
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // TLS with a certificate for 127.0.0.1 from a throwaway CA (`ca.crt` beside the data
        // directory), so tests can verify the chain and the name.
        make_certificates(dir.path(), &data, owner);
        let mut conf = OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        write!(
            conf,
            "\n# tap-postgres test server\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             wal_level = logical\n\
             max_replication_slots = 20\n\
             max_wal_senders = 20\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 16MB\n\
             timezone = 'UTC'\n\
             ssl = on\n\
             logging_collector = off\n",
            dir.path().display()
        )
        .unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             local replication all trust\n\
             host all all 127.0.0.1/32 trust\n\
             host replication all 127.0.0.1/32 trust\n",
        )
        .unwrap();

        // A port taken between choosing and binding it (servers start in parallel) is retried
        // with another one.
        for _ in 0..5 {
            let port = free_port();
            let postmaster = spawn_postmaster(&bin, dir.path(), port, owner);
            let server = Server {
                host: "127.0.0.1".into(),
                port,
                user: "postgres".into(),
                admin_db: "postgres".into(),
                private: Some(Private {
                    bin: bin.clone(),
                    owner,
                    procs: Mutex::new(Procs {
                        postmaster,
                        watchdog: watchdog.take(),
                    }),
                    dir,
                }),
            };
            match server.try_ready() {
                Ok(()) => return server,
                Err(Failure::Exited) if server.log_tail().contains("already in use") => {
                    // Take the directory and the watchdog back; the postmaster is gone (reaped).
                    let mut server = server;
                    let private = server.private.take().unwrap();
                    dir = private.dir;
                    watchdog = private.procs.into_inner().unwrap().watchdog;
                }
                Err(e) => server.fail(e),
            }
        }
        panic!("private PostgreSQL did not start: no free port after 5 tries");
    }

    /// The CA that signed a private server's certificate (for 127.0.0.1).
    pub fn ca_cert(&self) -> PathBuf {
        let p = self.private.as_ref().expect("a private server");
        p.dir.path().join("ca.crt")
    }

    /// The shared server if it already has `wal_level=logical`, else a private one.
    pub fn for_logical() -> Server {
        static SHARED_LOGICAL: OnceLock<bool> = OnceLock::new();
        let shared = Server::shared();
        let logical = *SHARED_LOGICAL.get_or_init(|| {
            let out = shared
                .psql(&shared.admin_db)
                .env("PGCONNECT_TIMEOUT", "5")
                .args(["-At", "-c", "SHOW wal_level"])
                .stderr(Stdio::null())
                .output();
            out.is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"logical")
        });
        if logical { shared } else { Server::logical() }
    }

    /// Stops the private instance immediately (like a crash: `pg_ctl stop -m immediate`) and
    /// starts it again on the same port and data directory, which then runs crash recovery.
    /// Panics for the shared server.
    pub fn restart(&self) {
        let private = self
            .private
            .as_ref()
            .expect("restart() needs a private server, not the shared one");
        stop(&mut private.procs.lock().unwrap().postmaster, "QUIT");
        // The port is free once the postmaster has exited (it waits for its children), but retry
        // in case something else grabbed it meanwhile.
        for attempt in 0.. {
            private.procs.lock().unwrap().postmaster =
                spawn_postmaster(&private.bin, private.dir.path(), self.port, private.owner);
            match self.try_ready() {
                Ok(()) => return,
                Err(Failure::Exited)
                    if attempt < 10 && self.log_tail().contains("already in use") =>
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => self.fail(e),
            }
        }
    }

    /// Waits until the server accepts connections (30 s at most); panics with the tail of the
    /// server log if it does not, or if a private server exits.
    pub fn wait_ready(&self) {
        if let Err(e) = self.try_ready() {
            self.fail(e);
        }
    }

    fn try_ready(&self) -> Result<(), Failure> {
        // A private server is asked on its own socket: answering there proves it is the one
        // that bound the TCP port (it gives up when it cannot).
        let host = match &self.private {
            Some(p) => p.dir.path().to_str().unwrap().to_string(),
            None => self.host.clone(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(p) = &self.private
                && p.procs
                    .lock()
                    .unwrap()
                    .postmaster
                    .try_wait()
                    .unwrap()
                    .is_some()
            {
                return Err(Failure::Exited);
            }
            let ok = Command::new(self.tool("pg_isready"))
                .args(["-q", "-t", "2", "-h", &host])
                .arg(format!("-p{}", self.port))
                .args(["-U", &self.user, "-d", &self.admin_db])
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Failure::Timeout);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn fail(&self, e: Failure) -> ! {
        let what = match e {
            Failure::Exited => "exited during startup",
            Failure::Timeout => "did not accept connections within 30 s",
        };
        panic!(
            "PostgreSQL on {}:{} {what}; server log tail:\n{}",
            self.host,
            self.port,
            self.log_tail()
        );
    }

    /// The last lines of a private server's log.
    fn log_tail(&self) -> String {
        let Some(p) = &self.private else {
            return "(shared server: no log)".into();
        };
        let log = std::fs::read_to_string(p.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn tool(&self, name: &str) -> PathBuf {
        match &self.private {
            Some(p) => p.bin.join(name),
            None => bin_dir().join(name),
        }
    }

    /// `psql` connected to `db` of this server.
    fn psql(&self, db: &str) -> Command {
        psql(&self.host, self.port, &self.user, db)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(private) = &self.private else {
            return;
        };
        let mut procs = private.procs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((mut watchdog, stdin)) = procs.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            drop(stdin);
        }
        stop(&mut procs.postmaster, "INT");
        // The temporary directory goes with `private`.
    }
}

enum Failure {
    Exited,
    Timeout,
}

/// A database of one test.
pub struct Db {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub name: String,
    /// Where to connect to drop this database.
    admin_db: String,
}

impl Db {
    /// A fresh database `tp_<tag>_<pid>_<counter>` on `server`.
    pub fn create(server: &Server, tag: &str) -> Db {
        static N: AtomicU32 = AtomicU32::new(0);
        let suffix = format!(
            "_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        // Lower case, and within PostgreSQL's 63 bytes (it would truncate silently).
        let tag: String = tag
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(63 - 3 - suffix.len())
            .collect();
        let name = format!("tp_{tag}{suffix}");
        let out = server
            .psql(&server.admin_db)
            .args([
                "-c",
                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            ])
            .args(["-c", &format!("CREATE DATABASE \"{name}\"")])
            .output()
            .unwrap();
        check(&out, "CREATE DATABASE");
        Db {
            host: server.host.clone(),
            port: server.port,
            user: server.user.clone(),
            name,
            admin_db: server.admin_db.clone(),
        }
    }

    /// Tap config for this database.
    pub fn config(&self) -> Value {
        json!({"host": self.host, "port": self.port, "user": self.user, "dbname": self.name})
    }

    /// Runs SQL (several statements, each in its own transaction unless the SQL says otherwise)
    /// in this database with TimeZone UTC; panics with psql's stderr on failure.
    pub fn exec(&self, sql: &str) {
        let mut child = self
            .psql()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = sql.to_string();
        // Written from another thread: psql may fill its output pipe before reading it all.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        check(&out, sql);
    }

    /// Rows of a query as text lines, fields separated by `|` (NULL is empty). A value with a
    /// line break spans lines.
    pub fn query(&self, sql: &str) -> Vec<String> {
        self.select(sql).lines().map(str::to_string).collect()
    }

    /// One value (the whole output, without its final line break).
    pub fn scalar(&self, sql: &str) -> String {
        let mut out = self.select(sql);
        if out.ends_with('\n') {
            out.pop();
        }
        out
    }

    fn select(&self, sql: &str) -> String {
        let out = self
            .psql()
            .args(["-At", "-F", "|", "-c", sql])
            .output()
            .unwrap();
        check(&out, sql);
        String::from_utf8(out.stdout).unwrap()
    }

    fn psql(&self) -> Command {
        psql(&self.host, self.port, &self.user, &self.name)
    }
}

impl Drop for Db {
    /// Best effort: replication slots of the database would block dropping it.
    fn drop(&mut self) {
        let lit = self.name.replace('\'', "''");
        // Separate commands: DROP DATABASE cannot run in a transaction block.
        let terminate = format!(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE database = '{lit}' AND active_pid IS NOT NULL"
        );
        let drop_slots = format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE database = '{lit}' AND NOT active"
        );
        let drop_db = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        for _ in 0..5 {
            let out = psql(&self.host, self.port, &self.user, &self.admin_db)
                .env("PGCONNECT_TIMEOUT", "5")
                .args(["-c", &terminate, "-c", &drop_slots, "-c", &drop_db])
                .stdout(Stdio::null())
                .output();
            match out {
                Ok(o)
                    if !o.status.success()
                        && !String::from_utf8_lossy(&o.stderr).contains("connection to server") =>
                {
                    // A terminated walsender may still hold its slot for a moment.
                    std::thread::sleep(Duration::from_millis(200));
                }
                _ => return, // done, or the server is gone
            }
        }
    }
}

/// `psql` without `~/.psqlrc`, quiet, stopping at the first error, session time zone UTC.
fn psql(host: &str, port: u16, user: &str, db: &str) -> Command {
    let mut c = Command::new(bin_dir().join("psql"));
    c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host])
        .arg(format!("-p{port}"))
        .args(["-U", user, "-d", db])
        .env("PGTZ", "UTC")
        .env("PGCLIENTENCODING", "UTF8")
        .stdin(Stdio::null());
    c
}

fn check(out: &Output, sql: &str) {
    assert!(
        out.status.success(),
        "SQL failed: {sql}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `bin` directory of the highest PostgreSQL version in `/usr/lib/postgresql`, or an empty
/// path (the tools are then looked up on `PATH`).
fn bin_dir() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("postgres").exists().then_some((version, bin))
            })
            .max()
            .map(|(_, bin)| bin)
            .unwrap_or_default()
    })
    .clone()
}

fn running_as_root() -> bool {
    // /proc/self belongs to the effective user of this process.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `(uid, gid)` of the `postgres` OS user.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == "postgres").then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(u, g)| Some((u?, g?)))
        .expect("tests run as root, and PostgreSQL refuses to: no `postgres` OS user found")
}

fn as_owner(cmd: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        // std drops root's supplementary groups too.
        cmd.gid(gid).uid(uid);
    }
}

/// Starts `postgres` on `dir/data`, logging to `dir/server.log`, in a process group of its own
/// (a Ctrl-C meant for the tests must not reach it first).
fn spawn_postmaster(bin: &Path, dir: &Path, port: u16, owner: Option<(u32, u32)>) -> Child {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
    as_owner(&mut cmd, owner);
    cmd.spawn().unwrap()
}

/// A shell that, once this process is gone (its stdin reaches EOF), stops the server (its pid
/// read from `postmaster.pid`, so it survives restarts) and removes `dir`. None if `sh` fails.
/// The postmaster removes `postmaster.pid` on exit; `kill -0` alone would not tell, as the
/// orphan may stay a zombie for a while.
fn spawn_watchdog(dir: &Path) -> Option<(Child, ChildStdin)> {
    const SCRIPT: &str = r#"trap '' INT TERM HUP
read -r _
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; then
  i=0
  while [ -e "$1/data/postmaster.pid" ] && kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i+1))
  done
  kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$1""#;
    let mut child = Command::new("sh")
        .args(["-c", SCRIPT, "watchdog"])
        .arg(dir)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

/// Sends `signal` to the postmaster (INT: fast shutdown, QUIT: immediate) and waits for it to
/// exit, killing it after [`STOP_TIMEOUT`].
fn stop(postmaster: &mut Child, signal: &str) {
    if postmaster.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(postmaster.id().to_string())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if postmaster.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = postmaster.kill();
    let _ = postmaster.wait();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `ca.crt` into `dir` and a server key and certificate for 127.0.0.1, signed by it, into
/// `data`, readable only by the server's user.
fn make_certificates(dir: &Path, data: &Path, owner: Option<(u32, u32)>) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("openssl: {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=tap-postgres test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    for name in ["server.key", "server.crt"] {
        let target = data.join(name);
        std::fs::rename(dir.join(name), &target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&target, Some(uid), Some(gid)).unwrap();
        }
    }
}
