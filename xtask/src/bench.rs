//! `cargo xtask bench [ARGS]`: the singer-core line-reader benchmark; ARGS go to `cargo bench`
//! unchanged (e.g. `cargo xtask bench -- --save-baseline main`).

use crate::{Result, cargo};

pub(crate) fn run(args: &[String]) -> Result {
    step!("bench: cargo bench -p singer-core --bench reader");
    cargo()
        .args(["bench", "-p", "singer-core", "--bench", "reader"])
        .args(args)
        .run()
}

/// The number after `--name` in `args`, or `default`.
pub(crate) fn flag_u64(args: &[String], name: &str, default: u64) -> Result<u64> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} takes a number")),
        None => Ok(default),
    }
}
