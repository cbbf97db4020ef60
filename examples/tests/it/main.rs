#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

//! tap-pages against a real local HTTP server (demo-api), and its output accepted by our
//! target-jsonl and by the Python target-jsonl from PyPI.

mod interop;
mod tap;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A running demo-api, killed on drop.
pub struct Api {
    child: Child,
    pub url: String,
}

impl Api {
    pub fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo-api"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        Self {
            child,
            url: line.trim().to_string(),
        }
    }

    pub fn post(&self, path: &str) {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a JSON file into `dir`.
pub fn write_json(dir: &Path, name: &str, v: &serde_json::Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

/// Runs tap-pages with a config (and optional state).
pub fn tap(config: &Path, state: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tap-pages"));
    cmd.arg("--config").arg(config);
    if let Some(s) = state {
        cmd.arg("--state").arg(s);
    }
    cmd.output().unwrap()
}

/// The RECORD lines of a tap's output, parsed.
pub fn records(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|m| m["type"] == "RECORD")
        .map(|m| m["record"].clone())
        .collect()
}

pub use singer_core::testing::run_with_stdin as pipe_into;
