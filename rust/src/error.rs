//! The one error type of the core. Every fallible function returns `CoreError`; the
//! bindings turn it into the Python `ConfigError` / `ValueError` in one place.

/// Errors raised by the core.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreError {
    /// A user-supplied rule, pattern or price entry is invalid; `rule` names it.
    #[error("invalid config for {rule}: {message}")]
    Config { rule: String, message: String },
    /// An input (a request body, an encoding name) cannot be processed.
    #[error("{0}")]
    Input(String),
}

impl CoreError {
    pub fn config(rule: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Config {
            rule: rule.into(),
            message: message.into(),
        }
    }
}
