//! `singer`: runs Singer pipelines (any tap, any target, ours or Python ones), keeps the state
//! targets confirm, schedules runs and spools batches. See `singer --help`.

mod catalog;
mod cli;
mod init;
mod k8s;
mod lock;
mod metrics;
mod project;
mod run;
mod schedule;
mod spool;
mod store;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
