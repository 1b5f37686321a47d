//! Bindings for `crate::cost`: `PriceTable` and `Price`, frozen and shareable.
//!
//! Override mappings are read here (field names and Python types); the numbers are
//! checked in the core, so both raise `ConfigError` naming `pricing.<model>.<field>`.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyMapping};

use crate::cost::{self, FieldValue, Override, Usage};
use crate::CoreError;

/// One model's prices in micro-dollars per million tokens.
#[pyclass(frozen, get_all, eq, module = "tollhouse._core")]
#[derive(Clone, PartialEq, Eq)]
pub struct Price {
    input_micros_per_mtok: u64,
    output_micros_per_mtok: u64,
    cached_input_micros_per_mtok: u64,
    cache_write_micros_per_mtok: u64,
    max_output_tokens: Option<u64>,
}

#[pymethods]
impl Price {
    fn __repr__(&self) -> String {
        format!(
            "Price(input_micros_per_mtok={}, output_micros_per_mtok={}, \
             cached_input_micros_per_mtok={}, cache_write_micros_per_mtok={}, \
             max_output_tokens={})",
            self.input_micros_per_mtok,
            self.output_micros_per_mtok,
            self.cached_input_micros_per_mtok,
            self.cache_write_micros_per_mtok,
            self.max_output_tokens
                .map_or_else(|| "None".to_owned(), |n| n.to_string()),
        )
    }
}

impl From<&cost::Price> for Price {
    fn from(p: &cost::Price) -> Self {
        Price {
            input_micros_per_mtok: p.input,
            output_micros_per_mtok: p.output,
            cached_input_micros_per_mtok: p.cached_input,
            cache_write_micros_per_mtok: p.cache_write,
            max_output_tokens: p.max_output_tokens,
        }
    }
}

/// The shipped price table plus config overrides. Immutable.
#[pyclass(frozen, module = "tollhouse._core")]
pub struct PriceTable {
    inner: Arc<cost::PriceTable>,
}

fn field_value(model: &str, field: &str, value: &Bound<'_, PyAny>) -> PyResult<FieldValue> {
    if !value.is_instance_of::<PyBool>() {
        if value.is_instance_of::<PyInt>() {
            return match value.extract::<i128>() {
                Ok(i) => Ok(FieldValue::Int(i)),
                Err(_) => Ok(FieldValue::Float(f64::INFINITY)),
            };
        }
        if value.is_instance_of::<PyFloat>() {
            return Ok(FieldValue::Float(value.extract::<f64>()?));
        }
    }
    let type_name = value.get_type().name()?;
    Err(CoreError::config(
        format!("pricing.{model}.{field}"),
        format!("expected a number, got {type_name}"),
    )
    .into())
}

fn read_overrides(overrides: &Bound<'_, PyAny>) -> PyResult<Vec<Override>> {
    let not_mapping = |what: &str| -> PyErr {
        CoreError::config(what.to_owned(), "expected a mapping".to_owned()).into()
    };
    let outer = overrides
        .downcast::<PyMapping>()
        .map_err(|_| not_mapping("pricing"))?;
    let mut out = Vec::new();
    for item in outer.items()?.iter() {
        let (key, entry): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let model: String = key
            .extract()
            .map_err(|_| not_mapping("pricing (model names)"))?;
        let entry = entry
            .downcast::<PyMapping>()
            .map_err(|_| not_mapping(&format!("pricing.{model}")))?;
        let mut fields = Vec::new();
        for field_item in entry.items()?.iter() {
            let (fkey, fval): (Bound<'_, PyAny>, Bound<'_, PyAny>) = field_item.extract()?;
            let field: String = fkey
                .extract()
                .map_err(|_| not_mapping(&format!("pricing.{model} (field names)")))?;
            let value = field_value(&model, &field, &fval)?;
            fields.push((field, value));
        }
        out.push((model, fields));
    }
    Ok(out)
}

fn tokens(name: &str, value: i64) -> PyResult<u64> {
    u64::try_from(value).map_err(|_| PyValueError::new_err(format!("{name} must be >= 0")))
}

#[pymethods]
impl PriceTable {
    #[new]
    #[pyo3(signature = (overrides = None))]
    fn new(overrides: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let overrides = match overrides {
            Some(o) if !o.is_none() => read_overrides(o)?,
            _ => Vec::new(),
        };
        Ok(PriceTable {
            inner: Arc::new(cost::PriceTable::with_overrides(overrides)?),
        })
    }

    fn has(&self, model: &str) -> bool {
        self.inner.has(model)
    }

    fn models(&self) -> Vec<String> {
        self.inner.models()
    }

    fn price(&self, model: &str) -> Option<Price> {
        self.inner.get(model).map(Price::from)
    }

    #[pyo3(signature = (model, prompt_tokens, completion_tokens, cached_tokens = 0, cache_write_tokens = 0))]
    fn cost(
        &self,
        model: &str,
        prompt_tokens: i64,
        completion_tokens: i64,
        cached_tokens: i64,
        cache_write_tokens: i64,
    ) -> PyResult<Option<u64>> {
        let usage = Usage {
            prompt: tokens("prompt_tokens", prompt_tokens)?,
            completion: tokens("completion_tokens", completion_tokens)?,
            cached: tokens("cached_tokens", cached_tokens)?,
            cache_write: tokens("cache_write_tokens", cache_write_tokens)?,
        };
        Ok(self.inner.cost(model, usage))
    }

    #[pyo3(signature = (model, prompt_tokens, max_output_tokens = None))]
    fn worst_case(
        &self,
        model: &str,
        prompt_tokens: i64,
        max_output_tokens: Option<i64>,
    ) -> PyResult<Option<u64>> {
        let prompt = tokens("prompt_tokens", prompt_tokens)?;
        let max_out = max_output_tokens
            .map(|m| tokens("max_output_tokens", m))
            .transpose()?;
        Ok(self.inner.worst_case(model, prompt, max_out))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __contains__(&self, model: &str) -> bool {
        self.inner.has(model)
    }

    fn __repr__(&self) -> String {
        format!("PriceTable({} models)", self.inner.len())
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Price>()?;
    m.add_class::<PriceTable>()?;
    Ok(())
}
