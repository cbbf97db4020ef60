//! MariaDB on 127.0.0.1:3306 where `root` logs in with an empty password, database `test`.
//!
//! There is no systemd: the server is started with `start-stop-daemon`, as the machine's own
//! start command does.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::Result;
use crate::apt::Apt;
use crate::process::{self, Cmd};

const HOST: &str = "127.0.0.1";
const PORT: u16 = 3306;
const PORT_ARG: &str = "3306";
const SERVER: &str = "/usr/sbin/mariadbd";
const DATADIR: &str = "/var/lib/mysql";
const RUN_DIR: &str = "/run/mysqld";

pub(crate) fn ensure(apt: &mut Apt) -> Result {
    if Path::new(SERVER).is_file() && process::which("mariadb").is_some() {
        step!("mariadb: server installed");
    } else {
        step!("mariadb: server not installed");
        apt.install(&["mariadb-server", "mariadb-client"], "MariaDB")?;
    }
    if is_alive() {
        step!("mariadb: listening on {HOST}:{PORT}");
    } else {
        start()?;
    }
    ensure_root_login()?;
    ensure_root_at_loopback()?;
    ensure_database("test")
}

/// Whether the server accepts TCP connections. Not `mariadb-admin ping`: that fails when the
/// server rejects the client's host (error 1130), which is a login problem, not a stopped server.
fn is_alive() -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], PORT));
    TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok()
}

fn start() -> Result {
    step!("mariadb: not listening, starting {SERVER}");
    Cmd::new("install")
        .args(["-d", "-o", "mysql", "-g", "mysql", RUN_DIR])
        .output()?;
    let log = std::env::temp_dir().join("xtask-mariadbd.log");
    let datadir_empty =
        std::fs::read_dir(DATADIR).map_or(true, |mut entries| entries.next().is_none());
    if datadir_empty {
        step!("mariadb: {DATADIR} is empty, initialising it");
        Cmd::new("mariadb-install-db")
            .args(["--user=mysql", &format!("--datadir={DATADIR}")])
            .run_logged(&log)?;
    }
    let log_arg = log.display().to_string();
    let logged_before = std::fs::metadata(&log).map_or(0, |m| m.len());
    // `--user=mysql`: Debian's own configuration leaves `user = mysql` commented out (its
    // systemd unit sets the user), and mariadbd started as root refuses to run without it.
    Cmd::new("start-stop-daemon")
        .args([
            "--start",
            "--oknodo",
            "--background",
            "--output",
            &log_arg,
            "--exec",
            SERVER,
            "--",
            "--user=mysql",
        ])
        .run_logged(&log)?;
    let aborted = || log_since(&log, logged_before).contains("[ERROR] Aborting");
    if process::wait_until(60, || is_alive() || aborted()) && is_alive() {
        step!("mariadb: listening on {HOST}:{PORT}");
        return Ok(());
    }
    let text = log_since(&log, logged_before);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join("\n");
    let what = if aborted() {
        "exited at start".to_owned()
    } else {
        format!("did not listen on {HOST}:{PORT} within 60 s")
    };
    Err(format!("MariaDB {what}; last lines of {log_arg}:\n{tail}"))
}

/// What `log` gained after its first `offset` bytes.
fn log_since(log: &Path, offset: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    String::from_utf8_lossy(text.get(start..).unwrap_or_default()).into_owned()
}

/// The client as `root` over TCP, empty password, never prompting.
fn tcp_client() -> Cmd {
    Cmd::new("mariadb").args([
        "--connect-timeout=5",
        "-h",
        HOST,
        "-P",
        PORT_ARG,
        "-uroot",
        "-N",
        "-B",
    ])
}

/// The client as `root` over the local socket (unix_socket auth as the OS user root).
fn socket_client() -> Cmd {
    Cmd::new("mariadb").args(["--connect-timeout=5", "-uroot", "-N", "-B"])
}

/// Creates root@127.0.0.1 with an empty password and all privileges; with `skip_name_resolve`
/// a TCP client from 127.0.0.1 matches only this account, never root@localhost.
const CREATE_ROOT_AT_LOOPBACK: &str = "CREATE USER IF NOT EXISTS root@'127.0.0.1' IDENTIFIED BY ''; \
     GRANT ALL PRIVILEGES ON *.* TO root@'127.0.0.1' WITH GRANT OPTION";

fn ensure_root_login() -> Result {
    if tcp_client().args(["-e", "select 1"]).succeeds() {
        step!("mariadb: root logs in over TCP with an empty password");
        return Ok(());
    }
    step!("mariadb: root cannot log in over TCP, allowing an empty password via the socket");
    let fix = format!(
        "ALTER USER root@localhost IDENTIFIED VIA unix_socket \
         OR mysql_native_password USING PASSWORD(''); {CREATE_ROOT_AT_LOOPBACK}"
    );
    socket_client().args(["-e", &fix]).output().map_err(|e| {
        format!("{e}\nhint: logging in as root over the local socket must work to fix this")
    })?;
    tcp_client().args(["-e", "select 1"]).output().map(drop)
}

fn ensure_root_at_loopback() -> Result {
    let count = tcp_client()
        .args([
            "-e",
            "select count(*) from mysql.user where user = 'root' and host = '127.0.0.1'",
        ])
        .output()?;
    if count == "1" {
        step!("mariadb: user root@127.0.0.1 exists");
        return Ok(());
    }
    step!("mariadb: user root@127.0.0.1 missing, creating it");
    tcp_client()
        .args(["-e", CREATE_ROOT_AT_LOOPBACK])
        .output()
        .map(drop)
}

fn ensure_database(name: &str) -> Result {
    let exists = tcp_client()
        .args(["-e", &format!("show databases like '{name}'")])
        .output()?;
    if exists == name {
        step!("mariadb: database {name} exists");
        Ok(())
    } else {
        step!("mariadb: database {name} missing, creating it");
        tcp_client()
            .args(["-e", &format!("create database if not exists `{name}`")])
            .output()
            .map(drop)
    }
}
