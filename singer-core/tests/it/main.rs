#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

//! singer-core against the conformance corpus in specs/conformance.

mod batch;
mod batch_interop;
mod corpus_messages;
mod corpus_streams;
mod driver;
