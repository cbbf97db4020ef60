//! # singer-core
//!
//! The Singer specification as Rust types, and a small SDK for writing taps and targets.
//!
//! | module | what it holds |
//! |---|---|
//! | [`message`] | SCHEMA, RECORD, STATE, ACTIVATE_VERSION, BATCH; parsing and the wire format |
//! | [`batch`] | BATCH files: Arrow columns of a stream, JSONL and Parquet writers and readers |
//! | [`catalog`] | catalogs, metadata breadcrumbs, selection rules |
//! | [`state`] | state documents, bookmarks, merging |
//! | [`schema`] | the JSON Schema subset compiled into a typed property model |
//! | [`validate`] | optional record validation, compiled once per schema |
//! | [`dates`] | the `date` and `date-time` formats: RFC 3339, plus expanded and BC years and infinity |
//! | [`moment`] | dates, times and date-times read exactly from text, and written back |
//! | [`io`] | bounded line readers and the only stdout writer |
//! | [`metrics`] | `INFO METRIC` lines on stderr |
//! | [`secret`] | a string that never prints itself |
//! | [`sdk`] | (feature `sdk`) CLI, logging and the tap and target runtimes |
//! | [`testing`] | (feature `testing`) the conformance corpus runner, and a harness that runs taps in tests |
//!
//! The spec in prose lives in `specs/` at the root of the repository; every MUST there has a
//! vector in `specs/conformance/` that this crate's tests run.

pub mod batch;
pub mod catalog;
pub mod check;
pub mod dates;
pub mod error;
pub mod io;
pub mod message;
pub mod metrics;
pub mod moment;
pub mod record;
pub mod schema;
pub mod secret;
pub mod state;
pub mod validate;

#[cfg(feature = "sdk")]
pub mod sdk;

#[cfg(feature = "testing")]
pub mod testing;

pub use catalog::{Catalog, CatalogEntry, ReplicationMethod};
pub use error::{Classify, ErrorClass};
pub use message::{Message, MessageKind, MessageRef, RecordRef, parse_line};
pub use schema::{JsonType, Property, StreamSchema};
pub use secret::Secret;
pub use state::State;
