//! Bindings for `crate::tokens`. Parsed request objects (orjson output: dict, list, str,
//! int, float, bool, None) are copied into `serde_json::Value` once; counting then runs
//! without the GIL when the text is large.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use crate::tokens::{self, Encoding};

/// Texts at least this long are counted with the GIL released.
const DETACH_BYTES: usize = 8 * 1024;
/// Deeper nesting (or a self-containing list) is cut off and counted as null.
const MAX_DEPTH: usize = 64;

fn run_detached<T: Send>(py: Python<'_>, size: usize, f: impl FnOnce() -> T + Send) -> T {
    if size >= DETACH_BYTES {
        py.detach(f)
    } else {
        f()
    }
}

/// Copies a Python object into JSON; `size` accumulates the string bytes seen.
fn to_value(obj: &Bound<'_, PyAny>, depth: usize, size: &mut usize) -> Value {
    if depth > MAX_DEPTH || obj.is_none() {
        return Value::Null;
    }
    if let Ok(s) = obj.downcast::<PyString>() {
        let s = s.to_string_lossy().into_owned();
        *size += s.len();
        return Value::String(s);
    }
    if let Ok(d) = obj.downcast::<PyDict>() {
        let mut map = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = match k.downcast::<PyString>() {
                Ok(s) => s.to_string_lossy().into_owned(),
                Err(_) => k
                    .str()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let value = to_value(&v, depth + 1, size);
            map.insert(key, value);
        }
        return Value::Object(map);
    }
    if let Ok(l) = obj.downcast::<PyList>() {
        return Value::Array(l.iter().map(|v| to_value(&v, depth + 1, size)).collect());
    }
    if let Ok(t) = obj.downcast::<PyTuple>() {
        return Value::Array(t.iter().map(|v| to_value(&v, depth + 1, size)).collect());
    }
    if let Ok(b) = obj.downcast::<PyBool>() {
        return Value::Bool(b.is_true());
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Value::Number(u.into());
        }
    }
    if let Ok(f) = obj.downcast::<PyFloat>() {
        return Number::from_f64(f.value()).map_or(Value::Null, Value::Number);
    }
    if let Ok(b) = obj.downcast::<PyBytes>() {
        let s = String::from_utf8_lossy(b.as_bytes()).into_owned();
        *size += s.len();
        return Value::String(s);
    }
    // Anything else (big ints, custom objects) counts as its text.
    let s = obj
        .str()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    *size += s.len();
    Value::String(s)
}

/// `"o200k_base"`, `"cl100k_base"`, `"estimate:anthropic"` or `"estimate:gemini"`.
#[pyfunction]
fn encoding_for_model(model: &str) -> &'static str {
    tokens::encoding_for_model(model)
}

/// Tokens of a plain text as `model` counts them.
#[pyfunction]
fn count_text_tokens(py: Python<'_>, model: &str, text: &str) -> usize {
    run_detached(py, text.len(), || tokens::count_text(model, text))
}

fn encoding(name: &str) -> PyResult<Encoding> {
    Encoding::from_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("unknown encoding {name:?}")))
}

/// Exact tokens of `text` in an encoding (`"o200k_base"` or `"cl100k_base"`).
#[pyfunction]
fn count_encoding_tokens(py: Python<'_>, encoding_name: &str, text: &str) -> PyResult<usize> {
    let enc = encoding(encoding_name)?;
    Ok(run_detached(py, text.len(), || enc.count(text)))
}

/// The same count from the unmodified reference encoder (tiktoken-rs), for tests.
#[pyfunction]
fn count_encoding_tokens_reference(
    py: Python<'_>,
    encoding_name: &str,
    text: &str,
) -> PyResult<usize> {
    let enc = encoding(encoding_name)?;
    Ok(run_detached(py, text.len(), || enc.reference_count(text)))
}

/// Prompt tokens of parsed chat `messages` (+ `tools`); ValueError if not a list.
#[pyfunction]
#[pyo3(signature = (model, messages, tools=None))]
fn count_messages_tokens(
    py: Python<'_>,
    model: &str,
    messages: &Bound<'_, PyAny>,
    tools: Option<&Bound<'_, PyAny>>,
) -> PyResult<usize> {
    if !messages.is_instance_of::<PyList>() {
        return Err(PyValueError::new_err("messages must be a list"));
    }
    let mut size = 0;
    let messages = to_value(messages, 0, &mut size);
    let tools = tools.map(|t| to_value(t, 0, &mut size));
    let count = run_detached(py, size, || {
        tokens::count_messages(model, &messages, tools.as_ref())
    })?;
    Ok(count)
}

/// Prompt tokens of a raw chat request body; ValueError if it is not a JSON object
/// with a `messages` list.
#[pyfunction]
fn count_chat_tokens(py: Python<'_>, model: &str, body: &[u8]) -> PyResult<usize> {
    Ok(run_detached(py, body.len(), || {
        tokens::count_chat_body(model, body)
    })?)
}

/// Loads the vocabularies now instead of on the first request.
#[pyfunction]
fn warm_up_tokenizers(py: Python<'_>) {
    py.detach(tokens::warm_up);
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encoding_for_model, m)?)?;
    m.add_function(wrap_pyfunction!(count_text_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(count_encoding_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(count_encoding_tokens_reference, m)?)?;
    m.add_function(wrap_pyfunction!(count_messages_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(count_chat_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(warm_up_tokenizers, m)?)?;
    Ok(())
}
