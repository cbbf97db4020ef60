//! `cargo xtask bench pipeline --python [--rows N] [--runs K]`: the case a buffer between tap
//! and target is for. pipelinewise-target-postgres stops reading while it flushes a batch, so
//! in a shell pipe pipelinewise-tap-mysql stalls with it; `singer run` with `buffer` lets the
//! tap keep extracting. Measures the shell pipe, `singer run` (zero-copy) and `singer run` with
//! a 256 MiB buffer, in turn, on the same table (N rows, default 200,000, plus 10,000 small).

use std::fmt::Write as _;

use crate::bench::{flag_u64, median, psql};
use crate::bench_e2e::{drop_schema, sh_pipefail};
use crate::bench_mysql::timed;
use crate::bench_peers::{PEER_SCHEMA, PeerBench};
use crate::{Result, bench_mysql, services};

const MODES: [&str; 3] = [
    "shell pipe: pipelinewise-tap-mysql | pipelinewise-target-postgres",
    "singer run (zero-copy)",
    "singer run, buffer = \"256MiB\"",
];

pub(crate) fn run(args: &[String]) -> Result {
    let rows = flag_u64(args, "--rows", 200_000)?;
    let runs = flag_u64(args, "--runs", 3)?.max(1);
    services::run()?;
    let (dir, bin) = crate::bench::prepare("pipeline-python", &["singer"])?;
    bench_mysql::seed(rows)?;
    crate::bench_e2e::seed_small()?;
    let peers = PeerBench::prepare(&dir)?;
    let project = dir.join("singer.toml");
    std::fs::write(
        &project,
        peers.pipelinewise_project(
            "[pipelines.plain]\ntap = \"pw\"\ntarget = \"pw\"\n\
             [pipelines.buffered]\ntap = \"pw\"\ntarget = \"pw\"\nbuffer = \"256MiB\"\n",
        ),
    )
    .map_err(|e| format!("{}: {e}", project.display()))?;
    let singer = |pipeline: &str| {
        vec![
            bin.join("singer").display().to_string(),
            "--project".into(),
            project.display().to_string(),
            "run".into(),
            pipeline.into(),
        ]
    };
    let commands = [
        sh_pipefail(&peers.pipelinewise_pipe()),
        singer("plain"),
        singer("buffered"),
    ];
    let mut secs: [Vec<f64>; 3] = Default::default();
    for i in 0..runs as usize {
        // Rotate the order, so no mode always follows the same one.
        for k in 0..3 {
            let m = (i + k) % 3;
            drop_schema(PEER_SCHEMA)?;
            let _ = std::fs::remove_dir_all(dir.join(".singer"));
            step!("bench: run {}/{runs}: {}", i + 1, MODES[m]);
            secs[m].push(timed(&commands[m])?.0);
            verify(rows + 10_000)?;
        }
    }
    drop_schema(PEER_SCHEMA)?;

    let medians: Vec<f64> = secs.iter().map(|s| median(s)).collect();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "| {rows} + 10000 rows, pipelinewise-tap-mysql → pipelinewise-target-postgres (median of {runs}) | seconds | rows/s | vs pipe |\n|---|---|---|---|"
    );
    for (m, name) in MODES.iter().enumerate() {
        let _ = writeln!(
            report,
            "| {} | {:.2} | {:.0} | {:.0}% |",
            name.replace('|', "\\|"),
            medians[m],
            (rows + 10_000) as f64 / medians[m],
            100.0 * medians[0] / medians[m]
        );
    }
    let _ = writeln!(report, "\nruns (s): {secs:.2?}");
    let path = dir.join("report.md");
    std::fs::write(&path, &report).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("\n{report}");
    step!("bench: report written to {}", path.display());
    Ok(())
}

/// Both tables landed whole (the peers' types differ from ours, so counts only).
fn verify(want: u64) -> Result {
    let n = psql()
        .arg("-c")
        .arg(format!(
            "SELECT (SELECT count(*) FROM {PEER_SCHEMA}.mixed) + (SELECT count(*) FROM {PEER_SCHEMA}.small)"
        ))
        .output()?;
    if n != want.to_string() {
        return Err(format!("{PEER_SCHEMA} holds {n} rows, expected {want}"));
    }
    Ok(())
}
