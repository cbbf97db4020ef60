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
