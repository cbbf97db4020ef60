//! PostgreSQL on 127.0.0.1:5432 with trust auth, roles `root` and `postgres`, database `test`.
//!
//! Debian's cluster tools run it (`pg_ctlcluster`); there is no systemd, so starts use
//! `--skip-systemctl-redirect`.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::apt::Apt;
use crate::process::{self, Cmd};

const HOST: &str = "127.0.0.1";
const PORT: &str = "5432";
/// Written first in pg_hba.conf so that they win over Debian's peer/scram defaults.
const TRUST_LINES: [&str; 3] = [
    "local all all trust",
    "host all all 127.0.0.1/32 trust",
    "host all all ::1/128 trust",
];
const DATABASES: [&str; 2] = ["test", "root"];

pub(crate) fn ensure(apt: &mut Apt) -> Result {
    let version = match installed_version() {
        Some(version) => {
            step!("postgres: server {version} installed");
            version
        }
        None => {
            step!("postgres: server not installed");
            apt.install(&["postgresql"], "PostgreSQL")?;
            installed_version().ok_or(
                "installed the postgresql package but found no server under /usr/lib/postgresql",
            )?
        }
    };
    if is_ready() {
        step!("postgres: accepting connections on {HOST}:{PORT}");
    } else {
        start(&version)?;
    }
    ensure_trust(&version)?;
    ensure_root_role()?;
    for database in DATABASES {
        ensure_database(database)?;
    }
    Ok(())
}

/// The server version to use: one with a cluster in /etc/postgresql if any, else the newest
/// installed. `None` when the server or Debian's cluster tools are missing.
pub(crate) fn installed_version() -> Option<String> {
    process::which("pg_ctlcluster")?;
    let mut versions: Vec<(u32, String)> = subdirs(Path::new("/usr/lib/postgresql"))
        .into_iter()
        .filter(|v| {
            Path::new("/usr/lib/postgresql")
                .join(v)
                .join("bin/postgres")
                .is_file()
        })
        .filter_map(|v| Some((v.parse().ok()?, v)))
        .collect();
    versions.sort();
    let with_cluster = versions
        .iter()
        .rev()
        .find(|(_, v)| cluster_conf(v).is_file());
    with_cluster.or(versions.last()).map(|(_, v)| v.clone())
}

fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect()
}

fn cluster_conf(version: &str) -> PathBuf {
    PathBuf::from(format!("/etc/postgresql/{version}/main/postgresql.conf"))
}

fn is_ready() -> bool {
    Cmd::new("pg_isready")
        .args(["-q", "-h", HOST, "-p", PORT])
        .succeeds()
}

fn start(version: &str) -> Result {
    let log = std::env::temp_dir().join("xtask-postgres-start.log");
    if !cluster_conf(version).is_file() {
        step!("postgres: no cluster {version}/main, creating it");
        Cmd::new("pg_createcluster")
            .args([version, "main"])
            .run_logged(&log)?;
    }
    step!("postgres: not accepting connections, starting cluster {version}/main");
    let started = Cmd::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", "start"])
        .run_logged(&log);
    if process::wait_until(60, is_ready) {
        step!("postgres: accepting connections on {HOST}:{PORT}");
        return Ok(());
    }
    started?;
    Err(format!(
        "PostgreSQL {version}/main started but is not accepting connections on {HOST}:{PORT} \
         after 60 s; see /var/log/postgresql/postgresql-{version}-main.log"
    ))
}

/// psql as `user` over TCP (or the local socket when `tcp` is false), never prompting.
fn psql(user: &str, tcp: bool) -> Cmd {
    let cmd = Cmd::new("psql").env("PGCONNECT_TIMEOUT", "5");
    let cmd = if tcp {
        cmd.args(["-h", HOST, "-p", PORT])
    } else {
        cmd
    };
    cmd.args([
        "-U",
        user,
        "-d",
        "postgres",
        "-w",
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
    ])
}

/// Runs SQL as the `postgres` superuser over TCP and returns the unaligned result.
fn query(sql: &str) -> Result<String> {
    psql("postgres", true).args(["-tA", "-c", sql]).output()
}

fn trust_works() -> bool {
    let select = ["-c", "select 1"];
    psql("postgres", true).args(select).succeeds()
        && psql("postgres", false).args(select).succeeds()
}

fn ensure_trust(version: &str) -> Result {
    if trust_works() {
        step!("postgres: trust auth for loopback TCP and the local socket");
        return Ok(());
    }
    let hba = hba_file(version);
    step!(
        "postgres: passwordless login failed, putting trust lines first in {}",
        hba.display()
    );
    let old = std::fs::read_to_string(&hba)
        .map_err(|e| format!("failed to read {}: {e}", hba.display()))?;
    let kept: Vec<&str> = old
        .lines()
        .filter(|line| !TRUST_LINES.contains(&line.trim()))
        .collect();
    let new = format!(
        "# added by `cargo xtask services`: trust local connections (development machine)\n{}\n{}\n",
        TRUST_LINES.join("\n"),
        kept.join("\n")
    );
    std::fs::write(&hba, new).map_err(|e| format!("failed to write {}: {e}", hba.display()))?;
    Cmd::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", "reload"])
        .output()?;
    if process::wait_until(10, trust_works) {
        step!("postgres: trust auth for loopback TCP and the local socket");
        Ok(())
    } else {
        Err(format!(
            "`psql -h {HOST} -U postgres -w` still needs a password after editing {}",
            hba.display()
        ))
    }
}

/// Asks the server where pg_hba.conf is (as the `postgres` OS user, via peer auth), falling
/// back to Debian's default location.
fn hba_file(version: &str) -> PathBuf {
    let asked = Cmd::new("su")
        .args(["postgres", "-c", "psql -X -tAc 'SHOW hba_file'"])
        .current_dir("/")
        .output();
    match asked {
        Ok(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(format!("/etc/postgresql/{version}/main/pg_hba.conf")),
    }
}

fn ensure_root_role() -> Result {
    let root = query("select rolcanlogin from pg_roles where rolname = 'root'")?;
    match root.as_str() {
        "t" => step!("postgres: role root can log in"),
        "f" => {
            step!("postgres: role root cannot log in, altering it");
            query("alter role root login superuser")?;
        }
        _ => {
            step!("postgres: role root missing, creating it");
            query("create role root superuser login")?;
        }
    }
    // `postgres` logging in is what `trust_works` checked.
    Ok(())
}

fn ensure_database(name: &str) -> Result {
    let exists = query(&format!(
        "select 1 from pg_database where datname = '{name}'"
    ))?;
    if exists == "1" {
        step!("postgres: database {name} exists");
    } else {
        step!("postgres: database {name} missing, creating it");
        query(&format!("create database \"{name}\""))?;
    }
    Ok(())
}
