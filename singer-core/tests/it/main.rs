//! singer-core against the conformance corpus in specs/conformance.

mod corpus_messages;
mod corpus_streams;
mod driver;
