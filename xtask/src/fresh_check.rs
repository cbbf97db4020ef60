//! `cargo xtask fresh-check`: the README's commands on a bare Debian 12 root, as a new
//! contributor would run them on a fresh machine, to prove the install path of `services`
//! (apt-get install of the servers, their first start, roles and databases) and of `interop`.
//!
//! Each run starts from the same bare root (`debootstrap --variant=minbase bookworm`, the
//! content of Debian's official container image, cached under `target/fresh-check/bare`),
//! copied anew, and takes from the host only:
//! - the Rust toolchain (rustup's home and cargo's `bin`, mounted read-only; cargo's registry
//!   cache is the root's own `~/.cargo`), which the README names as the one prerequisite, and
//!   `~/.cargo/env` sourced from the shell profile as rustup's installer sets it up;
//! - the repository, cloned from the host's committed `HEAD` (uncommitted changes are not in it);
//! - how this machine reaches the package registries: the CA certificates it adds for its
//!   egress (`/usr/local/share/ca-certificates`, trusted once `ca-certificates` is installed,
//!   and a bundle for pip, whose own bundle lacks them) and proxy variables if any are set.
//!
//! The commands are read from README.md's "The two commands" section (every line of its `sh`
//! blocks, `sudo` dropped as the sandbox runs as root, rustup's download skipped as the
//! toolchain comes from the host) and run in order by a root login shell in the clone. Like in
//! Debian's container image, `/usr/sbin/policy-rc.d` forbids package scripts to start
//! services, so the servers run only if xtask starts them. See [`crate::fresh_root`] for the
//! namespaces and the network.
//!
//! Logs (every line stamped with seconds since its step began) and `report.md` are written to
//! `target/fresh-check/logs/`; the root stays in `target/fresh-check/root` until the next run.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::apt::Apt;
use crate::fresh_root::{self, Sandbox};
use crate::process::{self, Cmd};
use crate::{Result, repo_root, target_dir};

/// Where the clone goes inside the root (root's home, as a user would clone it).
const CLONE_INSIDE: &str = "/root/singer-rs";
const SUITE: &str = "bookworm";
/// The README section whose `sh` blocks are run.
const SECTION: &str = "## The two commands";
/// Host programs the check needs, and the Debian package of each.
const HOST_TOOLS: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("slirp4netns", "slirp4netns"),
    ("nsenter", "util-linux"),
    ("unshare", "util-linux"),
    ("ip", "iproute2"),
    ("git", "git"),
];

struct Options {
    rebuild_root: bool,
    skip_test: bool,
    /// `--again CMD`: run CMD in the root the last run left (not a fresh check: for
    /// looking into a failure without building everything again).
    again: Option<String>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        rebuild_root: false,
        skip_test: false,
        again: None,
    };
    for (i, arg) in args.iter().enumerate() {
        match arg.as_str() {
            "--rebuild-root" => options.rebuild_root = true,
            "--skip-test" => options.skip_test = true,
            "--again" if i + 1 < args.len() => {
                options.again = Some(args[i + 1..].join(" "));
                break;
            }
            other => {
                return Err(format!(
                    "unknown option `{other}` for `cargo xtask fresh-check`"
                ));
            }
        }
    }
    Ok(options)
}

/// One line of the report.
struct Outcome {
    name: String,
    seconds: f64,
    result: Result<String>,
    log: Option<PathBuf>,
    /// `xtask: ` lines of the step's output with their offsets in seconds.
    milestones: Vec<(f64, String)>,
}

pub(crate) fn run(args: &[String]) -> Result {
    let options = parse(args)?;
    if !process::is_root() {
        return Err(
            "`cargo xtask fresh-check` needs root (debootstrap, namespaces, mounts)".into(),
        );
    }
    let dir = target_dir().join("fresh-check");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // One check at a time: they share the root and the network namespace's name. The lock
    // goes with the process, however it ends; whoever holds it may clear what a dead run left.
    let lock_path = dir.join(".lock");
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => format!(
            "another `cargo xtask fresh-check` is running (it holds {})",
            lock_path.display()
        ),
        std::fs::TryLockError::Error(e) => format!("{}: {e}", lock_path.display()),
    })?;
    let logs = dir.join(if options.again.is_some() {
        "logs-again"
    } else {
        "logs"
    });
    if logs.exists() {
        std::fs::remove_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    }
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let commands = match &options.again {
        Some(command) => vec![command.clone()],
        None => readme_commands(&repo_root().join("README.md"), options.skip_test)?,
    };
    let mut outcomes = Vec::new();
    let root = dir.join("root");
    let toolchain = Toolchain::find();
    let ok = if options.again.is_some() {
        let clone = root.join(CLONE_INSIDE.trim_start_matches('/'));
        push(
            &mut outcomes,
            timed("reuse the last root (not a fresh check)", || {
                if !clone.is_dir() || !fresh_root::mounts_under(&root).is_empty() {
                    return Err(format!("no root with {} left by a run", clone.display()));
                }
                // The clone moves to the host's committed HEAD; its build stays.
                let git = || Cmd::new("git").arg("-C").arg(&clone);
                git()
                    .args(["fetch", "--quiet"])
                    .arg(repo_root())
                    .arg("HEAD")
                    .output()?;
                git()
                    .args(["checkout", "--quiet", "--detach", "FETCH_HEAD"])
                    .output()?;
                git().args(["log", "-1", "--format=HEAD %h"]).output()
            }),
        )
    } else {
        fresh_root_steps(&mut outcomes, &options, &dir, &logs, &toolchain)
    };
    if ok {
        run_in_sandbox(&mut outcomes, &root, &logs, toolchain?, &commands);
    }
    let report = report(&outcomes, &commands);
    print!("{report}");
    let path = logs.join("report.md");
    std::fs::write(&path, &report).map_err(|e| format!("{}: {e}", path.display()))?;
    step!("fresh-check: report in {}", path.display());
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.name.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("fresh check failed: {}", failed.join(", ")))
    }
}

/// Host tools, the cached bare root, a fresh copy of it, and what goes into it before it runs.
fn fresh_root_steps(
    outcomes: &mut Vec<Outcome>,
    options: &Options,
    dir: &Path,
    logs: &Path,
    toolchain: &Result<Toolchain>,
) -> bool {
    let host = timed("host tools", || host_tools().map(|()| "present".to_owned()));
    let ok = push(outcomes, host);
    let bare = dir.join("bare");
    let ok = ok && {
        let log = logs.join("debootstrap.log");
        let mut outcome = timed("debootstrap (bare root)", || {
            bare_root(&bare, options.rebuild_root, &log)
        });
        outcome.log = Some(log);
        push(outcomes, outcome)
    };
    let root = dir.join("root");
    let ok = ok
        && push(
            outcomes,
            timed("copy bare root", || {
                fresh_copy(&bare, &root).map(|()| root.display().to_string())
            }),
        );
    ok && push(
        outcomes,
        timed("prepare root, clone", || {
            let toolchain = toolchain.clone()?;
            prepare_root(&root, &toolchain)
        }),
    )
}

/// Starts the sandbox over `root`, runs `commands` in it in order, and tears it down.
fn run_in_sandbox(
    outcomes: &mut Vec<Outcome>,
    root: &Path,
    logs: &Path,
    toolchain: Toolchain,
    commands: &[String],
) {
    let sandbox_log = logs.join("sandbox.log");
    let started = Instant::now();
    match Sandbox::start(root, toolchain.mounts(), toolchain.env(), &sandbox_log) {
        Err(e) => {
            outcomes.push(Outcome {
                name: "start sandbox".into(),
                seconds: started.elapsed().as_secs_f64(),
                result: Err(e),
                log: Some(sandbox_log.clone()),
                milestones: Vec::new(),
            });
        }
        Ok(sandbox) => {
            outcomes.push(Outcome {
                name: "start sandbox".into(),
                seconds: started.elapsed().as_secs_f64(),
                result: Ok("netns + slirp4netns, pid/mount namespaces".into()),
                log: Some(sandbox_log.clone()),
                milestones: Vec::new(),
            });
            for (i, command) in commands.iter().enumerate() {
                let log = logs.join(format!("{}-{}.log", i + 1, slug(command)));
                step!(
                    "fresh-check: running `{command}` inside (log: {})",
                    log.display()
                );
                let outcome = run_inside(&sandbox, command, &log);
                push(outcomes, outcome);
            }
            let started = Instant::now();
            drop(sandbox);
            let leaked = fresh_root::mounts_under(root);
            outcomes.push(Outcome {
                name: "teardown".into(),
                seconds: started.elapsed().as_secs_f64(),
                result: if leaked.is_empty() {
                    Ok("servers stopped, namespaces gone".into())
                } else {
                    Err(format!("still mounted: {}", leaked.join(", ")))
                },
                log: Some(sandbox_log),
                milestones: Vec::new(),
            });
        }
    }
}

/// Adds `outcome` to the list, echoing a failure; returns whether it succeeded.
fn push(outcomes: &mut Vec<Outcome>, outcome: Outcome) -> bool {
    let ok = outcome.result.is_ok();
    if let Err(e) = &outcome.result {
        step!("fresh-check: {} failed: {e}", outcome.name);
    }
    outcomes.push(outcome);
    ok
}

fn timed(name: &str, f: impl FnOnce() -> Result<String>) -> Outcome {
    step!("fresh-check: {name}");
    let started = Instant::now();
    let result = f();
    Outcome {
        name: name.to_owned(),
        seconds: started.elapsed().as_secs_f64(),
        result,
        log: None,
        milestones: Vec::new(),
    }
}

/// The commands of README.md's quick-start section, in order.
fn readme_commands(readme: &Path, skip_test: bool) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(readme)
        .map_err(|e| format!("failed to read {}: {e}", readme.display()))?;
    let section = text
        .split_once(SECTION)
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(rest))
        .ok_or_else(|| format!("no `{SECTION}` section in {}", readme.display()))?;
    let mut commands = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_block = !in_block && trimmed == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let command = trimmed.split(" #").next().unwrap_or("").trim();
        let command = command.strip_prefix("sudo ").unwrap_or(command);
        // The toolchain is the host's: rustup's download is not repeated.
        if command.is_empty() || command.starts_with('#') || command.contains("rustup.rs") {
            continue;
        }
        if skip_test && command == "cargo xtask test" {
            continue;
        }
        commands.push(command.to_owned());
    }
    if !commands.iter().any(|c| c.starts_with("cargo xtask")) {
        return Err(format!(
            "found no `cargo xtask` command in the `sh` blocks of `{SECTION}` in {}",
            readme.display()
        ));
    }
    Ok(commands)
}

fn host_tools() -> Result {
    let missing: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(program, _)| process::which(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Apt::new().install(&missing, "the fresh-machine check")
}

/// The bare root: built once with debootstrap, reused until `--rebuild-root`.
fn bare_root(bare: &Path, rebuild: bool, log: &Path) -> Result<String> {
    let complete = bare.with_extension("complete");
    if complete.is_file() && bare.is_dir() && !rebuild {
        let built = std::fs::read_to_string(&complete).unwrap_or_default();
        return Ok(format!("cached: {}", built.trim()));
    }
    let partial = bare.with_extension("partial");
    for old in [bare, &partial] {
        if old.exists() {
            std::fs::remove_dir_all(old).map_err(|e| format!("{}: {e}", old.display()))?;
        }
    }
    let _ = std::fs::remove_file(&complete);
    step!(
        "fresh-check: debootstrap --variant=minbase {SUITE} (log: {})",
        log.display()
    );
    let started = Instant::now();
    Cmd::new("debootstrap")
        .args(["--variant=minbase", SUITE])
        .arg(&partial)
        .run_logged(log)?;
    std::fs::rename(&partial, bare).map_err(|e| format!("{}: {e}", bare.display()))?;
    let built = format!(
        "debootstrap --variant=minbase {SUITE} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&complete, &built).map_err(|e| format!("{}: {e}", complete.display()))?;
    Ok(built)
}

/// Replaces `root` with a copy of `bare`.
fn fresh_copy(bare: &Path, root: &Path) -> Result {
    let mounted = fresh_root::mounts_under(root);
    if !mounted.is_empty() {
        return Err(format!(
            "{} is still mounted on the host; unmount it first",
            mounted.join(", ")
        ));
    }
    if root.exists() {
        step!("fresh-check: removing the previous root {}", root.display());
        std::fs::remove_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
    }
    Cmd::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(bare)
        .arg(root)
        .output()
        .map(drop)
}

/// The host's rustup toolchain, as mounted into the root.
#[derive(Clone)]
struct Toolchain {
    rustup_home: PathBuf,
    /// The directory of rustup's proxies (`cargo`, `rustc`, ...): `$CARGO_HOME/bin`.
    bin: PathBuf,
}

impl Toolchain {
    fn find() -> Result<Self> {
        let rustup = process::which("rustup").ok_or(
            "no `rustup` on PATH: the fresh check mounts the host's rustup toolchain into the root",
        )?;
        let bin = rustup
            .parent()
            .ok_or("rustup has no parent directory")?
            .to_path_buf();
        let rustup_home = PathBuf::from(Cmd::new(&rustup).args(["show", "home"]).output()?);
        Ok(Self { rustup_home, bin })
    }

    fn mounts(&self) -> Vec<PathBuf> {
        vec![self.rustup_home.clone(), self.bin.clone()]
    }

    /// The environment of every command inside: a root login's, plus the machine's proxies.
    fn env(&self) -> Vec<String> {
        let mut env: Vec<String> = [
            "HOME=/root",
            "USER=root",
            "LOGNAME=root",
            "SHELL=/bin/bash",
            "TERM=dumb",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.rustup_home != Path::new("/root/.rustup") {
            env.push(format!("RUSTUP_HOME={}", self.rustup_home.display()));
        }
        for key in [
            "http_proxy",
            "https_proxy",
            "no_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
        ] {
            if let Ok(value) = std::env::var(key) {
                env.push(format!("{key}={value}"));
            }
        }
        if !local_ca_certificates().is_empty() {
            env.push(format!("PIP_CERT={PIP_BUNDLE}"));
        }
        env
    }
}

/// Where pip's CA bundle goes inside, when the host adds CAs of its own.
const PIP_BUNDLE: &str = "/etc/ssl/fresh-check-pip-ca.pem";

/// The CA certificates the host adds to Debian's (`/usr/local/share/ca-certificates`).
fn local_ca_certificates() -> Vec<PathBuf> {
    let dir = Path::new("/usr/local/share/ca-certificates");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "crt"))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes what a fresh installed Debian has and debootstrap leaves out, the machine's way to
/// the registries, rustup's shell set-up, and the clone.
fn prepare_root(root: &Path, toolchain: &Toolchain) -> Result<String> {
    let write = |path: &str, text: &str| {
        let file = root.join(path.trim_start_matches('/'));
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))
    };
    let append = |path: &str, text: &str| -> Result {
        let file = root.join(path.trim_start_matches('/'));
        let mut f = std::fs::File::options()
            .append(true)
            .create(true)
            .open(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        f.write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", file.display()))
    };
    write(
        "/etc/hosts",
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    )?;
    // slirp4netns's DNS forwarder.
    write("/etc/resolv.conf", "nameserver 10.0.2.3\n")?;
    // Debian's container image: package scripts may not start services.
    write("/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n")?;
    set_mode(&root.join("usr/sbin/policy-rc.d"), 0o755)?;
    // The host's Debian sources (with updates and security, as an installed system has),
    // replacing debootstrap's single line; other vendors' sources stay on the host.
    let sources = Path::new("/etc/apt/sources.list.d/debian.sources");
    if sources.is_file() {
        let text =
            std::fs::read_to_string(sources).map_err(|e| format!("{}: {e}", sources.display()))?;
        write("/etc/apt/sources.list.d/debian.sources", &text)?;
        let _ = std::fs::remove_file(root.join("etc/apt/sources.list"));
    }
    let cas = local_ca_certificates();
    for ca in &cas {
        let name = ca.file_name().map(|n| n.to_string_lossy().into_owned());
        let text = std::fs::read_to_string(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        write(
            &format!(
                "/usr/local/share/ca-certificates/{}",
                name.unwrap_or_default()
            ),
            &text,
        )?;
    }
    if !cas.is_empty() {
        let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
        let text =
            std::fs::read_to_string(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
        write(PIP_BUNDLE, &text)?;
    }
    // What rustup's installer leaves: ~/.cargo/env, sourced by the shell profiles.
    write(
        "/root/.cargo/env",
        &format!(
            "#!/bin/sh\ncase \":${{PATH}}:\" in\n    *:\"{bin}\":*) ;;\n    *) export PATH=\"{bin}:$PATH\" ;;\nesac\n",
            bin = toolchain.bin.display()
        ),
    )?;
    for profile in ["/root/.profile", "/root/.bashrc"] {
        append(profile, ". \"$HOME/.cargo/env\"\n")?;
    }
    let clone = root.join(CLONE_INSIDE.trim_start_matches('/'));
    Cmd::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(repo_root())
        .arg(&clone)
        .output()?;
    let head = Cmd::new("git")
        .arg("-C")
        .arg(&clone)
        .args(["log", "-1", "--format=%h %s"])
        .output()?;
    let head: String = head.chars().take(72).collect();
    Ok(format!("HEAD {head}"))
}

fn set_mode(path: &Path, mode: u32) -> Result {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs one README command in the clone inside the sandbox; its output goes to `log`, each
/// line stamped, and its `xtask:` lines are echoed as progress.
fn run_inside(sandbox: &Sandbox, command: &str, log: &Path) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        name: format!("`{command}`"),
        seconds: 0.0,
        result: Ok(String::new()),
        log: Some(log.to_path_buf()),
        milestones: Vec::new(),
    };
    let result = (|| -> Result<Vec<(f64, String)>> {
        let script = format!("cd {CLONE_INSIDE} && {command}");
        let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let writer2 = writer.try_clone().map_err(|e| format!("pipe: {e}"))?;
        let mut file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut milestones = Vec::new();
            for line in BufReader::new(reader).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line).trim_end().to_owned();
                let at = started.elapsed().as_secs_f64();
                let _ = writeln!(file, "[{at:7.1}] {line}");
                if line.starts_with("xtask: ") || line.starts_with("error: ") {
                    eprintln!("  [{}] {line}", clock(at));
                    milestones.push((at, line));
                }
            }
            let _ = tx.send(milestones);
        });
        let (mut child, shown) =
            sandbox
                .shell(&script)?
                .spawn(Stdio::null(), writer.into(), writer2.into())?;
        let status = child
            .wait()
            .map_err(|e| format!("waiting for `{shown}`: {e}"))?;
        let milestones = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| {
                vec![(
                    started.elapsed().as_secs_f64(),
                    "(a process started by this command still holds its output open)".to_owned(),
                )]
            });
        if status.success() {
            Ok(milestones)
        } else {
            let last = milestones
                .iter()
                .rev()
                .find(|(_, line)| line.starts_with("error: "))
                .map_or(String::new(), |(_, line)| format!(": {line}"));
            outcome.milestones = milestones;
            Err(format!("exited with {status}{last}"))
        }
    })();
    outcome.seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(milestones) => {
            outcome.milestones = milestones;
            outcome.result = Ok("passed".into());
        }
        Err(e) => outcome.result = Err(e),
    }
    outcome
}

fn slug(command: &str) -> String {
    let slug: String = command
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    slug.split('-')
        .filter(|part| !part.is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join("-")
}

fn clock(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    format!("{}:{:02}", whole / 60, whole % 60)
}

fn report(outcomes: &[Outcome], commands: &[String]) -> String {
    let mut out = String::from("# Fresh-machine check\n\n");
    out.push_str(&format!(
        "A bare Debian {SUITE} root (debootstrap minbase) in its own namespaces, the host's Rust \
         toolchain mounted read-only; README commands run: {}.\n\n",
        commands
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str("| step | wall time | result |\n|---|---:|---|\n");
    for outcome in outcomes {
        let result = match &outcome.result {
            Ok(text) => format!("ok: {text}"),
            Err(e) => format!("**FAILED**: {}", e.lines().next().unwrap_or("")),
        };
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            outcome.name,
            clock(outcome.seconds),
            result.replace('|', "\\|")
        ));
    }
    for outcome in outcomes.iter().filter(|o| !o.milestones.is_empty()) {
        out.push_str(&format!("\n## {}\n\n", outcome.name));
        if let Some(log) = &outcome.log {
            out.push_str(&format!("Log: `{}`\n\n", log.display()));
        }
        out.push_str("```\n");
        for (at, line) in &outcome.milestones {
            out.push_str(&format!("{:>7} {line}\n", clock(*at)));
        }
        out.push_str("```\n");
    }
    for outcome in outcomes.iter() {
        if let (Err(e), Some(log)) = (&outcome.result, &outcome.log) {
            out.push_str(&format!(
                "\n{} failed: {}\n(log: `{}`)\n",
                outcome.name,
                e,
                log.display()
            ));
        }
    }
    out
}
