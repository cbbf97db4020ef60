#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

//! `singer` with real processes: our taps and targets (built beside it by the workspace test
//! run), Python ones from the interop venvs, and small scripted taps and targets that fail on
//! purpose; and Meltano running ours as custom plugins (`meltano`). Databases: the shared
//! MariaDB and PostgreSQL, a database or schema per test, and private MariaDB servers where a
//! test needs a binlog.

mod commands;
mod failures;
mod k8s;
mod meltano;
mod metrics;
mod object_storage;
mod pipelines;
mod schedule;
mod shared_state;
mod state_store;
mod stopping;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A binary of the workspace, built beside `singer`.
pub fn bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_singer")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace` or `cargo xtask test`)",
        p.display()
    );
    p
}

/// A project directory with a `singer.toml`.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("singer.toml"), toml).unwrap();
        Self { dir }
    }

    /// Replaces the project file.
    pub fn write(&self, toml: &str) {
        std::fs::write(self.path().join("singer.toml"), toml).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `singer <args>` in the project directory.
    pub fn singer(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_singer"));
        c.args(args).current_dir(self.path()).stdin(Stdio::null());
        c
    }

    /// Writes an executable script into the project directory; returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path().join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// The stored state of `id`, via `singer state get`.
    pub fn state(&self, id: &str) -> Option<serde_json::Value> {
        let out = self.singer(&["state", "get", id]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Past runs, via `singer runs --json`.
    pub fn runs(&self) -> Vec<serde_json::Value> {
        let out = self.singer(&["runs", "--json"]);
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A unique name for a test's database or schema.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "orc_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs SQL on the shared MariaDB.
pub fn mariadb(sql: &str) -> String {
    let out = Command::new("mariadb")
        .args([
            "--protocol=TCP",
            "-h127.0.0.1",
            "-uroot",
            "--default-character-set=utf8mb4",
            "-N",
            "-B",
            "-e",
        ])
        .arg(sql)
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

pub fn pg_url() -> String {
    std::env::var("SINGER_PG_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into())
}

/// Runs SQL on the shared PostgreSQL; rows as `|`-separated text.
pub fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            pg_url().as_str(),
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// A scripted tap: a one-stream catalog (`s`, selected) on `--discover`, else runs `body`.
pub fn tap_script(p: &Project, name: &str, body: &str) -> PathBuf {
    let script = format!(
        "#!/bin/sh\n\
         case \"$*\" in *--discover*) echo '{{\"streams\":[{{\"tap_stream_id\":\"s\",\"stream\":\"s\",\
         \"schema\":{{\"type\":\"object\",\"properties\":{{}}}},\"metadata\":[{{\"breadcrumb\":[],\
         \"metadata\":{{\"selected\":true}}}}]}}]}}'; exit 0;; esac\n{body}"
    );
    p.script(name, &script)
}

/// A fake tap: prints `lines` (one Singer message each), then exits with `code`.
pub fn fake_tap(p: &Project, name: &str, lines: &[&str], code: i32) -> PathBuf {
    let mut body = String::new();
    for l in lines {
        body.push_str(&format!("printf '%s\\n' '{l}'\n"));
    }
    body.push_str(&format!("echo 'tap says goodbye' >&2\nexit {code}\n"));
    tap_script(p, name, &body)
}
