//! `cargo xtask demo`: run the example pipeline end to end and show what it wrote.
//!
//! `demo-api` serves a paginated JSON API on a free loopback port, `tap-pages` reads it and
//! emits Singer messages, and `target-jsonl` writes one JSONL file per stream. The target's
//! stdout (the STATE it echoes once data is durable) is kept in `target/demo/state.json`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::process::Cmd;
use crate::{Result, cargo, json, services};

/// Lines shown from the head of each output file.
const HEAD_LINES: usize = 3;
/// Longest line shown in the summary, in characters.
const MAX_LINE: usize = 160;

pub(crate) fn run() -> Result {
    services::run()?;
    step!("demo: building tap-pages, demo-api and target-jsonl (release)");
    // Binaries are picked by name across the workspace: `-p A --bin x -p B --bin y` makes cargo
    // look for every `--bin` in one package only.
    cargo()
        .args(["build", "--release", "--locked"])
        .args([
            "--bin",
            "tap-pages",
            "--bin",
            "demo-api",
            "--bin",
            "target-jsonl",
        ])
        .run()?;
    let bin = crate::target_dir().join("release");
    let demo_dir = crate::repo_root().join("target/demo");
    let out_dir = demo_dir.join("out");
    let work_dir = demo_dir.join("config");
    // A fresh output directory each run, so the summary shows this run only.
    if out_dir.exists() {
        std::fs::remove_dir_all(&out_dir)
            .map_err(|e| format!("failed to remove {}: {e}", out_dir.display()))?;
    }
    for dir in [&out_dir, &work_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
    }

    let api = ApiServer::start(&bin.join("demo-api"))?;
    step!("demo: demo-api listening on {}", api.url);
    let tap_config = work_dir.join("tap-config.json");
    let target_config = work_dir.join("target-config.json");
    write(&tap_config, &json::object(&[("base_url", api.url.clone())]))?;
    let destination = out_dir.to_string_lossy().into_owned();
    write(
        &target_config,
        &json::object(&[("destination_path", destination)]),
    )?;
    let state_path = demo_dir.join("state.json");
    pipeline(&bin, &tap_config, &target_config, &state_path)?;
    drop(api);

    summary(&out_dir, &state_path)
}

/// The API server child; killed when dropped, whether the demo succeeded or not.
struct ApiServer {
    child: Child,
    url: String,
}

impl ApiServer {
    fn start(program: &Path) -> Result<Self> {
        let (mut child, shown) = Cmd::new(program)
            .args(["--port", "0", "--pages", "3", "--page-size", "5"])
            .spawn(Stdio::null(), Stdio::piped(), Stdio::inherit())?;
        let Some(stdout) = child.stdout.take() else {
            return Err(format!("`{shown}` has no stdout"));
        };
        // Read the first line on a thread so a silent server cannot hang the demo; the thread
        // then keeps draining stdout so the server never blocks on a full pipe.
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let read = reader.read_line(&mut first).map(|_| first);
            let _ = sender.send(read);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut server = Self {
            child,
            url: String::new(),
        };
        match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(line)) if line.trim().starts_with("http") => {
                server.url = line.trim().to_owned();
                Ok(server)
            }
            Ok(Ok(line)) => Err(format!(
                "`{shown}` printed {:?} instead of its URL as the first line",
                line.trim()
            )),
            Ok(Err(e)) => Err(format!("failed to read the URL from `{shown}`: {e}")),
            Err(_) => Err(format!("`{shown}` printed no URL within 30 s")),
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tap-pages --config TAP | target-jsonl --config TARGET > STATE`, both checked.
fn pipeline(bin: &Path, tap_config: &Path, target_config: &Path, state_path: &Path) -> Result {
    step!("demo: tap-pages | target-jsonl");
    let (mut tap, tap_shown) = Cmd::new(bin.join("tap-pages"))
        .arg("--config")
        .arg(tap_config)
        .spawn(Stdio::null(), Stdio::piped(), Stdio::inherit())?;
    let Some(tap_stdout) = tap.stdout.take() else {
        return Err(format!("`{tap_shown}` has no stdout"));
    };
    let state_file = std::fs::File::create(state_path)
        .map_err(|e| format!("failed to create {}: {e}", state_path.display()))?;
    let spawned = Cmd::new(bin.join("target-jsonl"))
        .arg("--config")
        .arg(target_config)
        .spawn(
            Stdio::from(tap_stdout),
            Stdio::from(state_file),
            Stdio::inherit(),
        );
    let (mut target, target_shown) = match spawned {
        Ok(started) => started,
        Err(e) => {
            let _ = tap.kill();
            let _ = tap.wait();
            return Err(e);
        }
    };
    let tap_status = tap
        .wait()
        .map_err(|e| format!("failed to wait for `{tap_shown}`: {e}"))?;
    let target_status = target
        .wait()
        .map_err(|e| format!("failed to wait for `{target_shown}`: {e}"))?;
    match (tap_status.success(), target_status.success()) {
        (true, true) => Ok(()),
        (false, _) => Err(format!("`{tap_shown}` failed ({tap_status})")),
        (true, false) => Err(format!("`{target_shown}` failed ({target_status})")),
    }
}

/// Prints the files written, with line counts and first lines, and the final state.
fn summary(out_dir: &Path, state_path: &Path) -> Result {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out_dir)
        .map_err(|e| format!("failed to read {}: {e}", out_dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "the pipeline wrote no files into {}",
            out_dir.display()
        ));
    }
    println!("Files written to {}:", out_dir.display());
    for file in &files {
        let text = read(file)?;
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        println!("\n  {name} ({} lines)", text.lines().count());
        for line in text.lines().take(HEAD_LINES) {
            println!("    {}", shorten(line));
        }
    }
    let state = read(state_path)?;
    let last = state.lines().rev().find(|line| !line.trim().is_empty());
    println!("\nFinal state ({}):", state_path.display());
    println!("  {}", last.map_or("(none emitted)".to_owned(), shorten));
    Ok(())
}

fn shorten(line: &str) -> String {
    if line.chars().count() <= MAX_LINE {
        line.to_owned()
    } else {
        let head: String = line.chars().take(MAX_LINE).collect();
        format!("{head}...")
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("failed to read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result {
    std::fs::write(path, text).map_err(|e| format!("failed to write {}: {e}", path.display()))
}
