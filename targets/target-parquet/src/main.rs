//! `target-parquet`: see the crate README.

fn main() -> std::process::ExitCode {
    singer_core::sdk::target::run_target::<target_parquet::ParquetTarget>()
}
