//! `target-postgres` (in progress).

fn main() {}
