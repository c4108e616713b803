//! A JSON-safe value for `extra_globals`, so the policy crate needs no serde_json.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A plain data value: what JSON can carry (TOML datetimes are rejected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Array(Vec<Value>),
    Table(BTreeMap<String, Value>),
}
