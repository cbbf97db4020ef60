//! # target-postgres (in progress)

pub mod encode;
pub mod names;
pub mod types;
pub mod values;
