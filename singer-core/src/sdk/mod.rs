//! The runtime for writing taps and targets (feature `sdk`).
//!
//! - [`tap`]: the [`Tap`](tap::Tap) trait and [`run_tap`](tap::run_tap), which handles the
//!   CLI (`--config`, `--state`, `--catalog`, `--properties`, `--discover`, `--about`,
//!   `--version`), emission, bookmarks and metrics.
//! - [`target`]: the [`Target`](target::Target) traits and [`run_target`](target::run_target),
//!   which own message order, batching, per-stream parallel loading and the rule that a STATE
//!   is echoed only after every record before it is durable.
//! - [`full_table`] and [`incremental`]: the bookmarks of a resumable FULL_TABLE copy in key
//!   order and of an INCREMENTAL read.
//! - [`about`]: `--about` output (JSON, Markdown, or a Meltano plugin definition for
//!   `meltano add --from-ref`). [`config`]: merged config files. [`logging`]: stderr logs.
//! - `signal`: SIGTERM and SIGINT as taps and targets share them (what the first signal means
//!   is in [`tap`] and [`target`]; a second one exits at once).

pub mod about;
pub mod cli;
pub mod config;
mod error;
pub mod full_table;
pub mod incremental;
pub mod logging;
mod meltano;
mod signal;
pub mod tap;
pub mod target;

pub use about::About;
pub use error::{ExitStatus, SdkError};
