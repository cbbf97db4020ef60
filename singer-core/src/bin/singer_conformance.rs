//! `singer-conformance`: runs the conformance corpus against any Singer executable.
//!
//! ```text
//! singer-conformance target -- <command> [args...]   # feed every corpus stream to a target
//! singer-conformance check [FILE]                     # check a message stream (a tap's output)
//! ```
//! Exit code 0 when everything conforms, 1 otherwise. Set `SINGER_CONFORMANCE_DIR` to use a
//! corpus other than this repository's `specs/conformance`.

use std::io::{BufReader, Write};
use std::process::{Command, ExitCode};

use singer_core::check::check_stream;
use singer_core::testing::{judge_target, prepare_batch_files, run_target, stream_cases};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    match args.first().map(String::as_str) {
        Some("target") => {
            let cmd: Vec<&String> = args.iter().skip(1).skip_while(|a| *a == "--").collect();
            let Some((program, rest)) = cmd.split_first() else {
                return usage();
            };
            prepare_batch_files();
            let (mut passed, mut failed) = (0, 0);
            for case in stream_cases() {
                let mut c = Command::new(program);
                c.args(rest);
                match judge_target(&case, &run_target(c, &case)) {
                    Ok(()) => passed += 1,
                    Err(why) => {
                        failed += 1;
                        let _ = writeln!(out, "FAIL {}: {why}", case.name);
                    }
                }
            }
            let _ = writeln!(out, "{passed} passed, {failed} failed");
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some("check") => {
            let result = match args.get(1) {
                Some(path) if path != "-" => match std::fs::File::open(path) {
                    Ok(f) => check_stream(BufReader::new(f), true),
                    Err(e) => {
                        let _ = writeln!(std::io::stderr(), "error: cannot open {path}: {e}");
                        return ExitCode::from(2);
                    }
                },
                _ => check_stream(std::io::stdin().lock(), true),
            };
            match result {
                Ok(report) => {
                    let _ = writeln!(
                        out,
                        "ok: {} messages; records per stream: {}",
                        report.messages,
                        serde_json::Value::Object(report.records)
                    );
                    ExitCode::SUCCESS
                }
                Err(v) => {
                    let _ = writeln!(out, "error: {v}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    let _ = writeln!(
        std::io::stderr(),
        "usage: singer-conformance target -- <command> [args...]\n       singer-conformance check [FILE]"
    );
    ExitCode::from(2)
}
