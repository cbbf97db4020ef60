//! Error classification shared by every crate of the toolkit.
//!
//! Each error type answers [`Classify::class`], so a runner can decide whether to retry,
//! skip the offending item or stop the run.

/// How a runner should react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The run cannot continue; state must not advance past the last durable commit.
    Fatal,
    /// A transient condition (a dropped connection, a lock timeout): retrying may succeed.
    Retriable,
    /// Only one item (a record, a stream) is affected; the rest may continue if policy allows.
    Skippable,
}

/// Implemented by every error type of the toolkit.
pub trait Classify {
    /// The class of this error.
    fn class(&self) -> ErrorClass;
}

/// Renders an error and its whole `source()` chain on one line, joined with `: `.
pub fn chain_to_string(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        // Some errors repeat their source in their own message; do not print it twice.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_is_one_line() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(chain_to_string(&e), "outer: inner");
    }
}
