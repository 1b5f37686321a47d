//! Tollhouse's byte-crunching core: token counting, redaction, policy matching and cost
//! arithmetic. The modules take and return plain Rust types; the PyO3 bindings live in
//! `py/` and are compiled only with the `python` feature.

pub mod cost;
pub mod error;
pub mod policy;
pub mod redact;
pub mod tokens;

#[cfg(feature = "python")]
mod py;

pub use error::CoreError;
