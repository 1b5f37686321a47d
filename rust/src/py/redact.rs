//! Bindings for `crate::redact`: `Redactor` (frozen, shareable), `StreamRedactor`,
//! `Span`, `Redaction`, and the validators the property tests hold against Python.
//! Offsets cross the boundary as Python `str` indices (code points), not UTF-8 bytes.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;

use crate::redact::{validate, Modes, Redacted, Redactor, Span, StreamRedactor};

/// Work above this many bytes runs with the GIL released.
const DETACH_BYTES: usize = 64 * 1024;

/// One detection: `text[start:end]` is the secret.
#[pyclass(frozen, eq, hash, module = "tollhouse._core", name = "Span", get_all)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PySpan {
    family: String,
    start: usize,
    end: usize,
}

#[pymethods]
impl PySpan {
    #[new]
    fn new(family: String, start: usize, end: usize) -> Self {
        PySpan { family, start, end }
    }

    fn __repr__(&self) -> String {
        format!(
            "Span(family={:?}, start={}, end={})",
            self.family, self.start, self.end
        )
    }
}

/// A masked text, how many secrets were masked and their families (sorted by name).
#[pyclass(frozen, module = "tollhouse._core", name = "Redaction", get_all)]
pub struct PyRedaction {
    text: String,
    count: usize,
    families: Vec<String>,
}

#[pymethods]
impl PyRedaction {
    fn __repr__(&self) -> String {
        format!(
            "Redaction(count={}, families={:?}, text=<{} chars>)",
            self.count,
            self.families,
            self.text.chars().count()
        )
    }
}

fn names(r: &Redactor, ids: &[u16]) -> Vec<String> {
    let mut out: Vec<String> = ids.iter().map(|&f| r.family_name(f).to_string()).collect();
    out.sort_unstable();
    out
}

fn to_py(r: &Redactor, red: Redacted) -> PyRedaction {
    PyRedaction {
        families: names(r, &red.families),
        text: red.text,
        count: red.count,
    }
}

/// Converts sorted, non-overlapping byte spans to code-point offsets in one pass.
fn char_spans(r: &Redactor, text: &str, spans: &[Span]) -> Vec<PySpan> {
    let ascii = text.is_ascii();
    let mut pos = 0;
    let mut chars = 0;
    let mut conv = |off: usize| -> usize {
        if ascii {
            return off;
        }
        if off >= pos {
            chars += text[pos..off].chars().count();
        } else {
            chars -= text[off..pos].chars().count();
        }
        pos = off;
        chars
    };
    spans
        .iter()
        .map(|s| {
            let start = conv(s.start);
            let end = conv(s.end);
            PySpan {
                family: r.family_name(s.family).to_string(),
                start,
                end,
            }
        })
        .collect()
}

/// The compiled redactor.
#[pyclass(frozen, module = "tollhouse._core", name = "Redactor")]
pub struct PyRedactor {
    inner: Arc<Redactor>,
}

impl PyRedactor {
    fn modes(&self, modes: Option<HashMap<String, String>>) -> PyResult<Modes> {
        match modes {
            None => Ok(Modes::default()),
            Some(m) => Ok(self
                .inner
                .modes(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))?),
        }
    }
}

#[pymethods]
impl PyRedactor {
    #[new]
    #[pyo3(signature = (families=None, custom=None, hash_salt=None))]
    fn new(
        families: Option<Vec<String>>,
        custom: Option<Vec<(String, String)>>,
        hash_salt: Option<String>,
    ) -> PyResult<Self> {
        let inner = Redactor::new(
            families.as_deref(),
            custom.as_deref().unwrap_or(&[]),
            hash_salt.as_deref(),
        )?;
        Ok(PyRedactor {
            inner: Arc::new(inner),
        })
    }

    /// All built-in family names.
    #[staticmethod]
    fn families() -> Vec<&'static str> {
        Redactor::builtin_names()
    }

    /// The families this redactor detects (built-in and custom).
    fn enabled(&self) -> Vec<String> {
        self.inner
            .enabled()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    fn scan(&self, py: Python<'_>, text: &str) -> Vec<PySpan> {
        let spans = if text.len() > DETACH_BYTES {
            py.detach(|| self.inner.scan(text))
        } else {
            self.inner.scan(text)
        };
        char_spans(&self.inner, text, &spans)
    }

    #[pyo3(signature = (text, modes=None))]
    fn redact(
        &self,
        py: Python<'_>,
        text: &str,
        modes: Option<HashMap<String, String>>,
    ) -> PyResult<PyRedaction> {
        let modes = self.modes(modes)?;
        let red = if text.len() > DETACH_BYTES {
            py.detach(|| self.inner.redact(text, &modes))
        } else {
            self.inner.redact(text, &modes)
        };
        Ok(to_py(&self.inner, red))
    }

    #[pyo3(signature = (texts, modes=None))]
    fn redact_many(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        modes: Option<HashMap<String, String>>,
    ) -> PyResult<Vec<PyRedaction>> {
        let modes = self.modes(modes)?;
        let total: usize = texts.iter().map(String::len).sum();
        let run =
            || -> Vec<Redacted> { texts.iter().map(|t| self.inner.redact(t, &modes)).collect() };
        let out = if total > DETACH_BYTES {
            py.detach(run)
        } else {
            run()
        };
        Ok(out.into_iter().map(|r| to_py(&self.inner, r)).collect())
    }

    /// Redacts the parts of one message as if joined (a secret split over parts is
    /// caught); returns one `Redaction` per part.
    #[pyo3(signature = (parts, modes=None))]
    fn redact_parts(
        &self,
        parts: Vec<String>,
        modes: Option<HashMap<String, String>>,
    ) -> PyResult<Vec<PyRedaction>> {
        let modes = self.modes(modes)?;
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        Ok(self
            .inner
            .redact_parts(&refs, &modes)
            .into_iter()
            .map(|r| to_py(&self.inner, r))
            .collect())
    }

    #[pyo3(signature = (modes=None))]
    fn stream(&self, modes: Option<HashMap<String, String>>) -> PyResult<PyStreamRedactor> {
        let modes = self.modes(modes)?;
        Ok(PyStreamRedactor {
            inner: StreamRedactor::new(Arc::clone(&self.inner), modes),
        })
    }

    fn __repr__(&self) -> String {
        format!("Redactor(enabled={:?})", self.inner.enabled())
    }
}

/// Chunk-by-chunk redaction of one stream.
#[pyclass(module = "tollhouse._core", name = "StreamRedactor")]
pub struct PyStreamRedactor {
    inner: StreamRedactor,
}

#[pymethods]
impl PyStreamRedactor {
    fn feed(&mut self, chunk: &str) -> String {
        self.inner.feed(chunk)
    }

    fn finish(&mut self) -> String {
        self.inner.finish()
    }

    #[getter]
    fn count(&self) -> usize {
        self.inner.count()
    }

    /// Families masked so far, sorted by name.
    #[getter]
    fn families(&self) -> Vec<String> {
        names(self.inner.redactor(), self.inner.families())
    }

    #[getter]
    fn held(&self) -> usize {
        self.inner.held()
    }
}

#[pyfunction]
fn luhn_valid(digits: &str) -> bool {
    validate::luhn_valid(digits.as_bytes())
}

#[pyfunction]
fn iban_valid(iban: &str) -> bool {
    validate::iban_valid(iban)
}

#[pyfunction]
fn ssn_valid(ssn: &str) -> bool {
    validate::ssn_valid(ssn)
}

#[pyfunction]
fn shannon_entropy(text: &str) -> f64 {
    validate::shannon_entropy(text.as_bytes())
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySpan>()?;
    m.add_class::<PyRedaction>()?;
    m.add_class::<PyRedactor>()?;
    m.add_class::<PyStreamRedactor>()?;
    m.add_function(wrap_pyfunction!(luhn_valid, m)?)?;
    m.add_function(wrap_pyfunction!(iban_valid, m)?)?;
    m.add_function(wrap_pyfunction!(ssn_valid, m)?)?;
    m.add_function(wrap_pyfunction!(shannon_entropy, m)?)?;
    Ok(())
}
