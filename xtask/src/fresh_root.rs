//! The sandbox `fresh-check` runs a bare Debian root in: its own network, mount and PID
//! namespaces, entered with util-linux's `nsenter`, so that the servers it installs listen on
//! its own 127.0.0.1:5432 and :3306 beside the host's, and everything it starts dies with it.
//!
//! - **Network**: a named network namespace (`ip netns add`) with its own loopback, reaching
//!   the outside through `slirp4netns`: user-mode NAT in one host process, attached to the
//!   namespace as a tap device. The host gets no veth, no route, no firewall rule and no
//!   `ip_forward` change; the sandbox cannot reach the host's loopback (its servers) either
//!   (`--disable-host-loopback`). Its DNS server is slirp's forwarder, 10.0.2.3.
//! - **Mounts and processes**: `unshare --mount --pid --fork` under that network namespace
//!   starts a PID 1 chrooted into the root (bash waiting in a loop, so it reaps orphaned
//!   daemons). `/proc`, `/sys` (read-only), a `/dev` of a few device nodes, `/run` and the
//!   host's Rust toolchain (read-only) are mounted in that private mount namespace only, so the
//!   host never sees them and they vanish with the last process, even when xtask is killed.
//! - **Teardown** ([`Drop`]): stops the PostgreSQL clusters and MariaDB that run inside (as a
//!   clean shutdown), kills PID 1 (which kills every process left in the namespace), stops
//!   slirp4netns and deletes the network namespace. A run interrupted before that leaves at most
//!   the named namespace; the next run removes it first.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::Result;
use crate::process::{self, Cmd};

/// The network namespace's name; one fresh check runs at a time on a machine.
const NETNS: &str = "singer-fresh-check";
/// PATH of a root login shell on Debian, before `~/.cargo/env` prepends cargo's bin.
const DEBIAN_ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// PID 1 inside: reaps every child (bash's `wait` collects adopted orphans too) until killed.
const INIT_SCRIPT: &str = "trap 'exit 0' TERM; while :; do sleep 86400 & wait $!; done";

/// A running sandbox; dropping it tears everything down.
pub(crate) struct Sandbox {
    root: PathBuf,
    /// Host paths bind-mounted read-only at the same path inside.
    read_only: Vec<PathBuf>,
    /// `KEY=VALUE` pairs every command inside gets (nothing else of the host's environment).
    env: Vec<String>,
    log: PathBuf,
    netns_added: bool,
    slirp: Option<Child>,
    /// The `unshare` process; its only child is the namespace's PID 1.
    keeper: Option<Child>,
    /// PID 1 of the sandbox, as the host numbers it.
    init: Option<u32>,
}

impl Sandbox {
    /// Starts the namespaces over `root` (a prepared Debian root), mounting `read_only` host
    /// paths at the same paths inside. `log` collects the output of the plumbing commands.
    pub(crate) fn start(
        root: &Path,
        read_only: Vec<PathBuf>,
        env: Vec<String>,
        log: &Path,
    ) -> Result<Self> {
        remove_stale_netns()?;
        let mut sandbox = Self {
            root: root.to_path_buf(),
            read_only,
            env,
            log: log.to_path_buf(),
            netns_added: false,
            slirp: None,
            keeper: None,
            init: None,
        };
        // From here on every early return drops `sandbox`, which undoes what was done.
        sandbox.network()?;
        sandbox.namespaces()?;
        sandbox.mounts()?;
        Ok(sandbox)
    }

    fn network(&mut self) -> Result {
        Cmd::new("ip")
            .args(["netns", "add", NETNS])
            .run_logged(&self.log)?;
        self.netns_added = true;
        Cmd::new("ip")
            .args(["-n", NETNS, "link", "set", "lo", "up"])
            .run_logged(&self.log)?;
        let netns_path = format!("/run/netns/{NETNS}");
        let (slirp, _) = Cmd::new("slirp4netns")
            .args([
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                "--netns-type=path",
                &netns_path,
                "tap0",
            ])
            .spawn(Stdio::null(), self.log_file()?, self.log_file()?)?;
        self.slirp = Some(slirp);
        let configured = || {
            Cmd::new("ip")
                .args(["-n", NETNS, "-4", "-o", "addr", "show", "tap0"])
                .output()
                .is_ok_and(|out| out.contains("inet "))
        };
        if !process::wait_until(15, configured) {
            return Err(format!(
                "slirp4netns did not configure tap0 in network namespace {NETNS} within 15 s; \
                 see {}",
                self.log.display()
            ));
        }
        Ok(())
    }

    fn namespaces(&mut self) -> Result {
        let (keeper, _) = Cmd::new("nsenter")
            .arg(format!("--net=/run/netns/{NETNS}"))
            .args([
                "--",
                "unshare",
                "--mount",
                "--propagation=private",
                "--pid",
                "--fork",
                "--kill-child",
                "--",
                "chroot",
            ])
            .arg(&self.root)
            .args(["/bin/bash", "-c", INIT_SCRIPT])
            .spawn(Stdio::null(), self.log_file()?, self.log_file()?)?;
        let keeper_pid = keeper.id();
        self.keeper = Some(keeper);
        let mut init = None;
        let found = process::wait_until(10, || {
            init = child_of(keeper_pid);
            init.is_some()
        });
        match init {
            Some(pid) if found => {
                self.init = Some(pid);
                Ok(())
            }
            _ => Err(format!(
                "the sandbox's PID 1 did not start within 10 s; see {}",
                self.log.display()
            )),
        }
    }

    /// A host command run in the sandbox's mount, PID and network namespaces but with the
    /// host's root, so it can mount host paths under the sandbox root.
    fn host_side(&self, program: &str) -> Result<Cmd> {
        let init = self.init.ok_or("the sandbox is not running")?;
        Ok(Cmd::new("nsenter")
            .arg(format!("--target={init}"))
            .args(["--mount", "--pid", "--net", "--", program]))
    }

    fn mount(&self, args: &[&str], target: &str) -> Result {
        self.host_side("mount")?
            .args(args)
            .arg(self.root.join(target))
            .run_logged(&self.log)
    }

    fn mounts(&self) -> Result {
        self.mount(&["-t", "proc", "-o", "nosuid,nodev,noexec", "proc"], "proc")?;
        self.mount(
            &["-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs"],
            "sys",
        )?;
        self.mount(
            &["-t", "tmpfs", "-o", "nosuid,nodev,mode=0755", "run"],
            "run",
        )?;
        self.mount(&["-t", "tmpfs", "-o", "nosuid,mode=0755", "dev"], "dev")?;
        let dev = self.root.join("dev");
        for (name, major, minor) in [
            ("null", "1", "3"),
            ("zero", "1", "5"),
            ("full", "1", "7"),
            ("random", "1", "8"),
            ("urandom", "1", "9"),
            ("tty", "5", "0"),
        ] {
            self.host_side("mknod")?
                .args(["-m", "666"])
                .arg(dev.join(name))
                .args(["c", major, minor])
                .run_logged(&self.log)?;
        }
        self.host_side("mkdir")?
            .arg("-p")
            .args([dev.join("pts"), dev.join("shm"), self.root.join("run/lock")])
            .run_logged(&self.log)?;
        self.mount(
            &[
                "-t",
                "devpts",
                "-o",
                "newinstance,ptmxmode=0666,mode=0620,gid=5",
                "devpts",
            ],
            "dev/pts",
        )?;
        self.mount(
            &["-t", "tmpfs", "-o", "nosuid,nodev,mode=1777", "shm"],
            "dev/shm",
        )?;
        for (link, to) in [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            self.host_side("ln")?
                .args(["-s", to])
                .arg(dev.join(link))
                .run_logged(&self.log)?;
        }
        for path in &self.read_only {
            let inside = self.root.join(path.strip_prefix("/").unwrap_or(path));
            std::fs::create_dir_all(&inside)
                .map_err(|e| format!("failed to create {}: {e}", inside.display()))?;
            self.host_side("mount")?
                .arg("--bind")
                .arg(path)
                .arg(&inside)
                .run_logged(&self.log)?;
            self.host_side("mount")?
                .args(["-o", "remount,bind,ro"])
                .arg(&inside)
                .run_logged(&self.log)?;
        }
        Ok(())
    }

    /// `script` run inside by a root login shell (`bash -lc`), in the sandbox's namespaces
    /// and root, with only the sandbox's environment.
    pub(crate) fn shell(&self, script: &str) -> Result<Cmd> {
        let init = self.init.ok_or("the sandbox is not running")?;
        Ok(Cmd::new("nsenter")
            .arg(format!("--target={init}"))
            .args(["--mount", "--pid", "--net", "--root", "--wd", "--"])
            .args(["/usr/bin/env", "-i"])
            .arg(format!("PATH={DEBIAN_ROOT_PATH}"))
            .args(&self.env)
            .args(["/bin/bash", "-lc", script]))
    }

    /// Stops the database servers running inside, cleanly, before the namespace is killed.
    fn stop_servers(&self) {
        let clusters = self
            .shell("pg_lsclusters -h 2>/dev/null || true")
            .and_then(Cmd::output)
            .unwrap_or_default();
        for line in clusters.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [version, name, _port, status, ..] = fields[..]
                && status == "online"
            {
                step!("fresh-check: stopping PostgreSQL {version}/{name} inside");
                let stop = format!("pg_ctlcluster --skip-systemctl-redirect {version} {name} stop");
                if let Err(e) = self.shell(&stop).and_then(|cmd| cmd.run_logged(&self.log)) {
                    step!("fresh-check: {e}");
                }
            }
        }
        if self.root.join("run/mysqld/mysqld.sock").exists() || self.mariadb_runs() {
            step!("fresh-check: stopping MariaDB inside");
            let stop = "mariadb-admin --connect-timeout=5 -uroot shutdown";
            if let Err(e) = self.shell(stop).and_then(|cmd| cmd.run_logged(&self.log)) {
                step!("fresh-check: {e}");
            }
        }
    }

    fn mariadb_runs(&self) -> bool {
        self.shell("test -S /run/mysqld/mysqld.sock")
            .is_ok_and(Cmd::succeeds)
    }

    fn log_file(&self) -> Result<Stdio> {
        std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map(Stdio::from)
            .map_err(|e| format!("failed to open {}: {e}", self.log.display()))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.init.is_some() {
            self.stop_servers();
        }
        if let Some(init) = self.init.take() {
            // SIGKILL to a PID namespace's init kills every process in the namespace; the
            // mount namespace, and with it every mount made inside, goes with the last one.
            let _ = Cmd::new("kill").args(["-KILL", &init.to_string()]).output();
        }
        if let Some(mut keeper) = self.keeper.take() {
            let exited = process::wait_until(20, || keeper.try_wait().is_ok_and(|s| s.is_some()));
            if !exited {
                let _ = keeper.kill();
                let _ = keeper.wait();
            }
        }
        if let Some(mut slirp) = self.slirp.take() {
            let _ = slirp.kill();
            let _ = slirp.wait();
        }
        if self.netns_added {
            if let Err(e) = Cmd::new("ip").args(["netns", "delete", NETNS]).output() {
                step!("fresh-check: {e}");
            }
            self.netns_added = false;
        }
        let leaked = mounts_under(&self.root);
        if leaked.is_empty() {
            step!("fresh-check: torn down (namespaces gone, nothing mounted on the host)");
        } else {
            step!(
                "fresh-check: still mounted on the host: {}",
                leaked.join(", ")
            );
        }
    }
}

/// Removes the network namespace left by an interrupted run, killing what still runs in it.
fn remove_stale_netns() -> Result {
    if !Path::new("/run/netns").join(NETNS).exists() {
        return Ok(());
    }
    step!("fresh-check: removing network namespace {NETNS} left by an interrupted run");
    let pids = Cmd::new("ip")
        .args(["netns", "pids", NETNS])
        .output()
        .unwrap_or_default();
    for pid in pids.split_whitespace() {
        let _ = Cmd::new("kill").args(["-KILL", pid]).output();
    }
    std::thread::sleep(Duration::from_millis(500));
    Cmd::new("ip")
        .args(["netns", "delete", NETNS])
        .output()
        .map(drop)
}

/// The first process whose parent is `parent`, from `/proc/<pid>/stat`.
fn child_of(parent: u32) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The command name is in parentheses and may hold spaces: fields follow the last ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(parent)
        })
}

/// Mount points in the host's mount namespace at or below `root`.
pub(crate) fn mounts_under(root: &Path) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = root.to_string_lossy().into_owned();
    table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        .filter(|point| *point == prefix || point.starts_with(&format!("{prefix}/")))
        .map(str::to_owned)
        .collect()
}
