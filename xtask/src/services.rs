//! `cargo xtask services`: make this machine ready to build and test the workspace.
//!
//! Idempotent: every check prints one line, and only what is missing or stopped is installed or
//! started. On a machine where everything already runs it is a fast no-op.

use crate::apt::Apt;
use crate::process::Cmd;
use crate::{Result, mariadb, postgres};

/// Debian packages needed to build the workspace (openssl-sys for native-tls).
const BUILD_PACKAGES: &[&str] = &["pkg-config", "libssl-dev"];

pub(crate) fn run() -> Result {
    let mut apt = Apt::new();
    prerequisites(&mut apt)?;
    postgres::ensure(&mut apt)?;
    mariadb::ensure(&mut apt)?;
    step!("services: ready");
    Ok(())
}

fn prerequisites(apt: &mut Apt) -> Result {
    let mut missing = Vec::new();
    for package in BUILD_PACKAGES {
        if Apt::is_installed(package) {
            step!("build: {package} installed");
        } else {
            step!("build: {package} missing");
            missing.push(*package);
        }
    }
    // `python3 -m venv` needs ensurepip, which Debian ships separately in python3-venv.
    if python_can_venv() {
        step!("build: python3 with venv support present");
    } else {
        step!("build: python3 with venv support missing");
        missing.extend(["python3", "python3-venv"]);
    }
    // pipelinewise-tap-postgres, a peer `test` measures ours against, pins psycopg2-binary
    // 2.9.3, which has no wheel for Python 3.11: pip builds it, with Python's headers and
    // libpq's (postgresql-common's `pg_config` is there without them, so ask dpkg).
    if python_headers_present() {
        step!("build: Python headers present");
    } else {
        step!("build: Python headers missing");
        missing.push("python3-dev");
    }
    if Apt::is_installed("libpq-dev") {
        step!("build: libpq-dev installed");
    } else {
        step!("build: libpq-dev missing");
        missing.push("libpq-dev");
    }
    if missing.is_empty() {
        return Ok(());
    }
    apt.install(&missing, "building and testing the workspace")?;
    if !python_can_venv() {
        return Err(
            "`python3 -c 'import venv, ensurepip'` still fails after installing \
                    python3-venv; check which python3 is first on PATH"
                .to_owned(),
        );
    }
    Ok(())
}

/// Whether `Python.h` is where the first `python3` on PATH builds extensions from.
fn python_headers_present() -> bool {
    Cmd::new("python3")
        .args([
            "-c",
            "import os, sys, sysconfig; \
             sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))",
        ])
        .succeeds()
}

fn python_can_venv() -> bool {
    Cmd::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .succeeds()
}
