//! Debian packages: check with dpkg, install with apt-get (running `apt-get update` once first,
//! since a fresh machine has no package lists).

use std::path::PathBuf;

use crate::Result;
use crate::process::{self, Cmd};

/// Installs packages; remembers whether the package lists were already refreshed.
pub(crate) struct Apt {
    updated: bool,
}

impl Apt {
    pub(crate) fn new() -> Self {
        Self { updated: false }
    }

    /// Whether dpkg reports the package as fully installed.
    pub(crate) fn is_installed(package: &str) -> bool {
        Cmd::new("dpkg-query")
            .args(["-W", "-f=${Status}", package])
            .output()
            .is_ok_and(|status| status == "install ok installed")
    }

    /// Installs `packages` non-interactively; `why` names what needs them, for messages.
    pub(crate) fn install(&mut self, packages: &[&str], why: &str) -> Result {
        let list = packages.join(" ");
        if process::which("apt-get").is_none() {
            return Err(format!(
                "{why} needs the Debian packages `{list}`, and apt-get is missing"
            ));
        }
        if !process::is_root() {
            return Err(format!(
                "{why} needs the Debian packages `{list}`; run `sudo apt-get install -y {list}` \
                 or run this task as root"
            ));
        }
        let log = log_path();
        if !self.updated {
            step!("apt: apt-get update (log: {})", log.display());
            apt_get().arg("update").run_logged(&log)?;
            self.updated = true;
        }
        step!("apt: installing {list} for {why} (log: {})", log.display());
        apt_get()
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .run_logged(&log)
    }
}

fn apt_get() -> Cmd {
    Cmd::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-o", "Dpkg::Use-Pty=0"])
}

fn log_path() -> PathBuf {
    crate::repo_root().join("target/xtask/apt.log")
}
