//! Bindings for `crate::policy`: `PolicyMatcher` (frozen) and `PolicyMatch`.
//!
//! Rule mappings are read here; a wrong key or type raises `ConfigError` naming the rule.
//! Checks of large texts run with the GIL released.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyMapping, PySequence, PyString};

use crate::policy::{self, Action, RuleSpec};
use crate::CoreError;

/// Texts at least this long are checked with the GIL released.
const DETACH_BYTES: usize = 16 * 1024;

const RULE_KEYS: [&str; 10] = [
    "id",
    "action",
    "keywords",
    "case_sensitive",
    "whole_word",
    "regex",
    "models_allow",
    "models_deny",
    "max_bytes",
    "max_tokens",
];

/// One rule that matched.
#[pyclass(frozen, get_all, eq, module = "tollhouse._core")]
#[derive(Clone, PartialEq, Eq)]
pub struct PolicyMatch {
    rule_id: String,
    action: String,
    kind: String,
    detail: String,
}

#[pymethods]
impl PolicyMatch {
    fn __repr__(&self) -> String {
        format!(
            "PolicyMatch(rule_id={:?}, action={:?}, kind={:?}, detail={:?})",
            self.rule_id, self.action, self.kind, self.detail
        )
    }
}

/// The compiled rule set. Immutable; a config reload builds a new one.
#[pyclass(frozen, module = "tollhouse._core")]
pub struct PolicyMatcher {
    inner: policy::PolicyMatcher,
}

struct RuleReader<'a, 'py> {
    entry: &'a Bound<'py, PyMapping>,
    name: String,
}

impl<'py> RuleReader<'_, 'py> {
    fn err(&self, message: impl Into<String>) -> PyErr {
        CoreError::config(self.name.clone(), message).into()
    }

    fn get(&self, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.entry.contains(key)? {
            let value = self.entry.get_item(key)?;
            if !value.is_none() {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    fn flag(&self, key: &str) -> PyResult<bool> {
        match self.get(key)? {
            None => Ok(false),
            Some(v) if v.is_instance_of::<PyBool>() => v.extract(),
            Some(_) => Err(self.err(format!("{key} must be true or false"))),
        }
    }

    fn strings(&self, key: &str) -> PyResult<Vec<String>> {
        let Some(value) = self.get(key)? else {
            return Ok(Vec::new());
        };
        let bad = || self.err(format!("{key} must be a list of strings"));
        if value.is_instance_of::<PyString>() {
            return Err(bad());
        }
        let seq = value.downcast::<PySequence>().map_err(|_| bad())?;
        let mut out = Vec::with_capacity(seq.len().unwrap_or(0));
        for item in seq.try_iter()? {
            let item = item?;
            if !item.is_instance_of::<PyString>() {
                return Err(bad());
            }
            out.push(item.extract::<String>()?);
        }
        Ok(out)
    }

    fn limit(&self, key: &str) -> PyResult<Option<u64>> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() => v
                .extract::<u64>()
                .map(Some)
                .map_err(|_| self.err(format!("{key} must be a whole number >= 0"))),
            Some(_) => Err(self.err(format!("{key} must be a whole number >= 0"))),
        }
    }
}

fn read_rule(index: usize, item: &Bound<'_, PyAny>) -> PyResult<RuleSpec> {
    let entry = item.downcast::<PyMapping>().map_err(|_| -> PyErr {
        CoreError::config(format!("policy rule #{index}"), "expected a mapping").into()
    })?;
    let id = match entry.contains("id")? {
        true => entry.get_item("id")?.extract::<String>().ok(),
        false => None,
    };
    let mut reader = RuleReader {
        entry,
        name: format!("policy rule #{index}"),
    };
    let Some(id) = id.filter(|s| !s.is_empty()) else {
        return Err(reader.err("id must be a non-empty string"));
    };
    reader.name = format!("policy rule '{id}'");
    for key in entry.keys()?.iter() {
        let key_name: String = key
            .extract()
            .map_err(|_| reader.err("keys must be strings"))?;
        if !RULE_KEYS.contains(&key_name.as_str()) {
            return Err(reader.err(format!(
                "unknown key {key_name:?} (expected one of: {})",
                RULE_KEYS.join(", ")
            )));
        }
    }
    let action = match reader.get("action")? {
        None => Action::Block,
        Some(v) => v
            .extract::<String>()
            .ok()
            .and_then(|s| Action::parse(&s))
            .ok_or_else(|| reader.err("action must be \"block\" or \"warn\""))?,
    };
    Ok(RuleSpec {
        id,
        action,
        keywords: reader.strings("keywords")?,
        case_sensitive: reader.flag("case_sensitive")?,
        whole_word: reader.flag("whole_word")?,
        regex: reader.strings("regex")?,
        models_allow: reader.strings("models_allow")?,
        models_deny: reader.strings("models_deny")?,
        max_bytes: reader.limit("max_bytes")?,
        max_tokens: reader.limit("max_tokens")?,
    })
}

#[pymethods]
impl PolicyMatcher {
    #[new]
    fn new(py: Python<'_>, rules: &Bound<'_, PyAny>) -> PyResult<Self> {
        let bad = || -> PyErr { CoreError::config("policies", "expected a list of rules").into() };
        if rules.is_instance_of::<PyString>() || rules.is_instance_of::<PyMapping>() {
            return Err(bad());
        }
        let seq = rules.downcast::<PySequence>().map_err(|_| bad())?;
        let mut specs = Vec::with_capacity(seq.len().unwrap_or(0));
        for (index, item) in seq.try_iter()?.enumerate() {
            specs.push(read_rule(index, &item?)?);
        }
        // Compiling thousands of keywords takes a while: let other threads run.
        let inner = py.detach(|| policy::PolicyMatcher::new(specs))?;
        Ok(PolicyMatcher { inner })
    }

    #[pyo3(signature = (text, model = None, tokens = None))]
    fn check(
        &self,
        py: Python<'_>,
        text: &str,
        model: Option<&str>,
        tokens: Option<i64>,
    ) -> PyResult<Vec<PolicyMatch>> {
        let tokens = tokens
            .map(u64::try_from)
            .transpose()
            .map_err(|_| PyValueError::new_err("tokens must be >= 0"))?;
        let hits = if text.len() >= DETACH_BYTES {
            py.detach(|| self.inner.check(text, model, tokens))
        } else {
            self.inner.check(text, model, tokens)
        };
        Ok(hits
            .into_iter()
            .map(|h| PolicyMatch {
                rule_id: self.inner.rule_id(h.rule).to_owned(),
                action: self.inner.action(h.rule).as_str().to_owned(),
                kind: h.kind.as_str().to_owned(),
                detail: h.detail,
            })
            .collect())
    }

    fn rule_count(&self) -> usize {
        self.inner.rule_count()
    }

    fn __repr__(&self) -> String {
        format!("PolicyMatcher({} rules)", self.inner.rule_count())
    }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PolicyMatch>()?;
    m.add_class::<PolicyMatcher>()?;
    Ok(())
}
