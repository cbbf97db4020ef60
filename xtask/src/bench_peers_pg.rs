//! `cargo xtask bench tap-postgres --peers`: the Python PostgreSQL taps Singer users run today,
//! pipelinewise-tap-postgres and meltanolabs-tap-postgres (from PyPI, in `target/interop`), on
//! the same table as ours.
//!
//! Each one discovers the database itself; its catalog then selects `public.mixed` for
//! FULL_TABLE with every column it supports. Ours and both peers run K times each, writing to a
//! file; the last files are compared record by record (`compare_records.py`), and every column
//! whose values differ from ours is reported as a finding, not a failure.

use std::fmt::Write as _;
use std::path::Path;

use crate::bench_e2e::sh_pipefail;
use crate::bench_mysql::timed_cpu;
use crate::bench_peers::{discover, select_streams};
use crate::bench_tap_pg::{Runs, STREAM, Source, write};
use crate::process::Cmd;
use crate::{Result, interop};

const COMPARE: &str = include_str!("compare_records.py");

struct Peer {
    name: &'static str,
    argv: Vec<String>,
    runs: Runs,
    /// Why it failed, if it did.
    failure: Option<String>,
}

/// Runs ours and the peers on `source`; returns the report's section.
pub(crate) fn run(dir: &Path, tap: &Path, source: &Source, rows: u64, runs: u64) -> Result<String> {
    let py = interop::pg_tap_peers()?;
    let (port, db) = (source.port, &source.db);
    let settings = [
        (
            "pipelinewise",
            &py.pipelinewise,
            format!(
                r#"{{"host":"127.0.0.1","port":{port},"user":"postgres","password":"unused","dbname":"{db}","filter_schemas":"public"}}"#
            ),
        ),
        (
            "meltano",
            &py.meltano,
            format!(
                r#"{{"host":"127.0.0.1","port":{port},"user":"postgres","password":"unused","database":"{db}","filter_schemas":["public"]}}"#
            ),
        ),
    ];
    let mut peers = vec![Peer {
        name: "tap-postgres (ours)",
        argv: source.tap_argv(tap, dir, "peer-ours", "FULL_TABLE")?,
        runs: Runs::default(),
        failure: None,
    }];
    for (short, program, config_text) in settings {
        let config = dir.join(format!("peer-{short}.json"));
        write(&config, &config_text)?;
        step!("bench: discovering with {short} tap-postgres");
        let discovered = dir.join(format!("peer-{short}-discovered.json"));
        discover(program, &config, &discovered)?;
        let catalog = dir.join(format!("peer-{short}-catalog.json"));
        select_streams(&py.python, &discovered, &catalog, &[STREAM])?;
        peers.push(Peer {
            name: if short == "pipelinewise" {
                "pipelinewise-tap-postgres 1.8.4"
            } else {
                "meltanolabs-tap-postgres 0.10.0"
            },
            argv: vec![
                program.display().to_string(),
                "--config".into(),
                config.display().to_string(),
                "--catalog".into(),
                catalog.display().to_string(),
            ],
            runs: Runs::default(),
            failure: None,
        });
    }

    let output = |i: usize| dir.join(format!("peer-output-{i}.jsonl"));
    for round in 1..=runs {
        for (i, peer) in peers.iter_mut().enumerate() {
            if peer.failure.is_some() {
                continue;
            }
            step!(
                "bench: peers run {round}/{runs}: {} FULL_TABLE of {rows} rows",
                peer.name
            );
            let log = dir.join(format!("peer-output-{i}.log"));
            let cmd = format!(
                "exec {} > {} 2> {}",
                peer.argv.join(" "),
                output(i).display(),
                log.display()
            );
            match timed_cpu(&sh_pipefail(&cmd)) {
                Ok(t) => peer.runs.push(t),
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(3).collect();
                    peer.failure = Some(format!("{e}: {}", tail.join(" / ")));
                }
            }
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Peers: FULL_TABLE of {rows} rows to a file (shared server, database `{db}`)\n\n| tap (median of {runs}) | seconds | rows/s | vs tap-postgres | CPU s | peak RSS |\n|---|---|---|---|---|---|"
    );
    let ours = peers[0].runs.secs();
    for p in &peers {
        if p.runs.0.is_empty() {
            let _ = writeln!(out, "| {} | failed | | | | |", p.name);
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.0} | {:.0}% | {:.2} | {:.1} MB |",
            p.name,
            p.runs.secs(),
            rows as f64 / p.runs.secs(),
            100.0 * ours / p.runs.secs(),
            p.runs.cpu(),
            p.runs.rss_mb()
        );
    }
    let _ = writeln!(
        out,
        "\nTheir values against ours, record by record (numbers by exact decimal value, strings as strings, date-times by instant, bytes by the bytes; each peer with its default settings):"
    );
    for (i, p) in peers.iter().enumerate().skip(1) {
        let _ = writeln!(out, "\n{}:", p.name);
        if let Some(f) = &p.failure {
            let _ = writeln!(out, "- **failed**: {}", f.replace('\n', " "));
            continue;
        }
        let found = Cmd::new(&py.python)
            .args(["-c", COMPARE])
            .arg(output(0))
            .arg(output(i))
            .arg("id")
            .output()?;
        let _ = writeln!(out, "{found}");
    }
    out.push('\n');
    Ok(out)
}
