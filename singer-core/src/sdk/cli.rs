//! Command-line arguments shared by every tap and target.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Output format of `--about`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AboutFormat {
    /// Pretty JSON (default).
    Json,
    /// Markdown with a settings table.
    Markdown,
    /// A Meltano plugin definition (YAML) for `meltano add <type> <name> --from-ref FILE`.
    Meltano,
}

/// Flags every connector has.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Config file (JSON object); repeat to merge several, later files win.
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Print name, version, capabilities and the settings schema, then exit.
    #[arg(long)]
    pub about: bool,
    /// Format of `--about`.
    #[arg(long, value_enum, default_value = "json", requires = "about")]
    pub format: AboutFormat,
}

/// The command line of a tap.
#[derive(Debug, clap::Parser)]
pub struct TapArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// State file from an earlier run.
    #[arg(short = 's', long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Catalog file selecting streams and replication settings.
    #[arg(long, value_name = "FILE", conflicts_with = "properties")]
    pub catalog: Option<PathBuf>,
    /// Legacy name of `--catalog`.
    #[arg(short = 'p', long, value_name = "FILE")]
    pub properties: Option<PathBuf>,
    /// Write the catalog of available streams to stdout and exit.
    #[arg(short = 'd', long)]
    pub discover: bool,
}

/// The command line of a target.
#[derive(Debug, clap::Parser)]
pub struct TargetArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Read messages from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
}

/// Parses the command line with the connector's name and version.
pub(crate) fn parse<A: clap::Parser>(name: &'static str, version: &'static str) -> A {
    let cmd = A::command().name(name).version(version);
    let matches = cmd.get_matches();
    match A::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    }
}
