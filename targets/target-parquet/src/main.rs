//! `target-parquet`: see the crate README.

/// Arrow builders and Parquet encoders grow and free buffers of several MiB per chunk, on two
/// threads. glibc's malloc served those with fresh mappings and unmapped them on free: page
/// faults and TLB shoot-downs took 0.5 s of kernel time per million bench rows (14% of the
/// CPU). jemalloc reuses them: 2.98 s became 2.70 s for the bench input at the same peak RSS.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    singer_core::sdk::target::run_target::<target_parquet::ParquetTarget>()
}
