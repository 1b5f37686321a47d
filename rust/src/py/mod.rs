//! Thin PyO3 bindings over the pure Rust core. Only `tollhouse.native` imports them.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::CoreError;

mod cost;
mod policy;
mod redact;
mod tokens;

create_exception!(
    _core,
    ConfigError,
    PyValueError,
    "A rule, pattern or price entry is invalid."
);

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> PyErr {
        match err {
            CoreError::Config { .. } => ConfigError::new_err(err.to_string()),
            CoreError::Input(msg) => PyValueError::new_err(msg),
        }
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    tokens::register(m)?;
    redact::register(m)?;
    policy::register(m)?;
    cost::register(m)?;
    Ok(())
}
