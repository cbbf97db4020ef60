//! MariaDB for integration tests: a fresh database on the shared server (`SINGER_MYSQL_URL`,
//! default `mysql://root@127.0.0.1:3306/test`), or a private server with a row-based binlog,
//! started in a temporary directory on a free port and stopped on drop (for LOG_BASED tests,
//! which need server settings of their own). Used by tap-mysql's tests and by the
//! orchestrator's Meltano interop tests. Everything runs the `mariadb` client and the
//! `mariadbd`/`mariadb-install-db` binaries; every helper panics on failure, as tests do.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A database of one test, on some server.
pub struct Db {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// User (no password).
    pub user: String,
    /// The database, `tm_<tag>_<pid>_<n>`; dropped with this value.
    pub name: String,
}

impl Db {
    /// A fresh database on the shared server.
    pub fn shared(tag: &str) -> Self {
        let url = std::env::var("SINGER_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
        let rest = url
            .split("://")
            .nth(1)
            .expect("SINGER_MYSQL_URL is mysql://user@host:port/db");
        let (user, rest) = rest
            .split_once('@')
            .expect("SINGER_MYSQL_URL is mysql://user@host:port/db");
        let hostport = rest
            .split('/')
            .next()
            .expect("SINGER_MYSQL_URL is mysql://user@host:port/db");
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
        Self::create(
            host,
            port.parse().expect("SINGER_MYSQL_URL has a numeric port"),
            user,
            tag,
        )
    }

    fn create(host: &str, port: u16, user: &str, tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "tm_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let db = Self {
            host: host.into(),
            port,
            user: user.into(),
            name,
        };
        db.exec_admin(&format!(
            "DROP DATABASE IF EXISTS `{0}`; CREATE DATABASE `{0}` CHARACTER SET utf8mb4",
            db.name
        ));
        db
    }

    /// Tap config for this database.
    pub fn config(&self) -> Value {
        json!({"host": self.host, "port": self.port, "user": self.user, "filter_dbs": self.name})
    }

    /// `<db>-<table>`.
    pub fn stream(&self, table: &str) -> String {
        format!("{}-{table}", self.name)
    }

    fn client(&self) -> Command {
        let mut c = Command::new("mariadb");
        c.args([
            "--protocol=TCP",
            "--default-character-set=utf8mb4",
            "--batch",
            "--skip-column-names",
        ])
        .arg(format!("-h{}", self.host))
        .arg(format!("-P{}", self.port))
        .arg(format!("-u{}", self.user));
        c
    }

    fn exec_admin(&self, sql: &str) {
        let out = self
            .client()
            .arg("-e")
            .arg(sql)
            .output()
            .expect("cannot run the mariadb client");
        assert!(
            out.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL in this database (session time zone UTC, permissive sql_mode).
    pub fn exec(&self, sql: &str) {
        let full = format!("SET time_zone = '+00:00'; SET sql_mode = ''; {sql}");
        let out = self
            .client()
            .arg(&self.name)
            .arg("-e")
            .arg(&full)
            .output()
            .expect("cannot run the mariadb client");
        assert!(
            out.status.success(),
            "SQL failed: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Rows of a query as tab-separated text lines.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let out = self
            .client()
            .arg(&self.name)
            .arg("-e")
            .arg(sql)
            .output()
            .expect("cannot run the mariadb client");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("mariadb printed UTF-8")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self
            .client()
            .arg("-e")
            .arg(format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .stderr(Stdio::null())
            .output();
    }
}

/// A private MariaDB server with `log_bin`, `binlog_format=ROW` and the given
/// `binlog_row_metadata`, listening on 127.0.0.1 only.
pub struct PrivateServer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = PathBuf::from(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

impl PrivateServer {
    /// Starts a server; `full_metadata` sets `binlog_row_metadata=FULL` (else NO_LOG).
    pub fn start(full_metadata: bool) -> Self {
        Self::start_with(full_metadata, &[])
    }

    /// Starts a server with extra `mariadbd` arguments. A port taken between choosing and
    /// binding it (tests start servers in parallel) is retried with another one.
    pub fn start_with(full_metadata: bool, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let data = dir.path().join("data");
        // Each server keeps its temporary files to itself: bootstraps running in parallel
        // otherwise collide on temporary table names in /tmp.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("cannot create a temporary directory");
        let out = Command::new(tool("mariadb-install-db"))
            .env("TMPDIR", &tmp)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ])
            .output()
            .expect("cannot run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _ in 0..5 {
            let port = free_port();
            let d = dir.path();
            let mut child = Command::new(tool("mariadbd"))
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--tmpdir={}", tmp.display()))
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--socket={}", d.join("sock").display()))
                .arg(format!("--pid-file={}", d.join("pid").display()))
                .arg(format!("--log-error={}", d.join("error.log").display()))
                .arg(format!("--log-bin={}", d.join("binlog").display()))
                .args([
                    "--user=root",
                    "--binlog-format=ROW",
                    "--server-id=1",
                    "--skip-grant-tables",
                ])
                .args([
                    "--innodb-buffer-pool-size=16M",
                    "--character-set-server=utf8mb4",
                ])
                .arg(format!(
                    "--binlog-row-metadata={}",
                    if full_metadata { "FULL" } else { "NO_LOG" }
                ))
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start mariadbd");
            // Ready when the server answering on the port is this one (its data directory).
            let want = format!("{}/", data.display());
            let deadline = Instant::now() + Duration::from_secs(60);
            let ready = loop {
                if child
                    .try_wait()
                    .expect("cannot wait for mariadbd")
                    .is_some()
                {
                    break false; // exited: most likely the port was taken
                }
                let out = Command::new("mariadb")
                    .args(["--protocol=TCP", "-h127.0.0.1", "-uroot", "-N", "-B"])
                    .arg(format!("-P{port}"))
                    .args(["-e", "SELECT @@datadir"])
                    .stderr(Stdio::null())
                    .output();
                if out.is_ok_and(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == want
                }) {
                    break true;
                }
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
                    panic!("private MariaDB did not start:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            if ready {
                return Self {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        panic!("private MariaDB did not start after 5 ports:\n{log}");
    }

    /// A fresh database on this server.
    pub fn db(&self, tag: &str) -> Db {
        Db::create("127.0.0.1", self.port, "root", tag)
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("cannot bind a free port")
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}
