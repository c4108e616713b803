//! `Json`: validated JSON text carried verbatim, so that numbers of any size and precision
//! cross the host unchanged (Python ints are unbounded; `serde_json::Value` is not).
//!
//! serde_json's `arbitrary_precision` feature would do the same for `Value`, but it is
//! workspace-wide through feature unification and breaks internally tagged, untagged and
//! flattened deserialization; `RawValue` (the `raw_value` feature) has no such reach.

use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Structures nested deeper than this are not walked by [`Json::to_value`] and
/// `PartialEq` (the walk recurses). Python's own JSON encoder stops near 1000 levels.
const WALK_DEPTH_LIMIT: usize = 1024;

/// One JSON value, kept as the text it was written in.
///
/// Serializing emits the text verbatim (with serde_json; other serializers see
/// serde_json's private raw-value struct), and deserializing with serde_json captures it,
/// so `10**30` stays `1000000000000000000000000000000` rather than becoming `1e30`.
///
/// Deserialization only works where serde_json drives the field directly: a plain struct,
/// a map, a sequence. A `Json` inside an internally tagged, untagged or flattened type
/// fails to deserialize, because serde buffers those bodies and the text is lost.
///
/// Equality compares values, not text: whitespace and string escapes do not matter,
/// integers (no `.`, `e` or `E`) compare exactly at any size, other numbers compare as
/// `f64`, and an integer never equals a non-integer (as with `serde_json::Value`).
#[derive(Clone)]
pub struct Json(Box<RawValue>);

/// The type of a [`Json`] value, read off its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonKind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonKind {
    /// The kind with its article, as error messages say it: "null", "a boolean",
    /// "a number", "a string", "an array", "an object".
    pub fn describe(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        }
    }
}

impl Json {
    /// `null`.
    pub fn null() -> Json {
        Json(RawValue::NULL.to_owned())
    }

    /// The compact text of `value` (exact for every number a `Value` can hold).
    pub fn from_value(value: &serde_json::Value) -> Json {
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => Json(raw),
            // A Value has string keys and finite numbers only, so serde_json cannot
            // refuse it; keep a total function rather than a panic path anyway.
            Err(_) => Json::null(),
        }
    }

    /// Validate `text` as exactly one JSON value (surrounding whitespace is dropped).
    /// Numbers are checked for syntax, not range: `1e400` and `10**400` are accepted.
    pub fn from_text(text: String) -> Result<Json, serde_json::Error> {
        RawValue::from_string(text).map(Json)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The JSON text (the name `RawValue` uses).
    pub fn get(&self) -> &str {
        self.0.get()
    }

    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }

    pub fn into_raw(self) -> Box<RawValue> {
        self.0
    }

    /// Parse the text into `T`.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }

    /// The value as a `serde_json::Value`. Lossy where `Value` cannot follow: an
    /// integer beyond `u64`/`i64` becomes the nearest `f64`, a number beyond the `f64`
    /// range becomes `null`, a string with a lone surrogate escape gets U+FFFD, and
    /// what lies deeper than 1024 levels becomes `null`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.get()).unwrap_or_else(|_| lossy_value(&self.0, 0))
    }

    pub fn kind(&self) -> JsonKind {
        kind_of(self.get())
    }

    pub fn is_null(&self) -> bool {
        self.kind() == JsonKind::Null
    }

    pub fn is_object(&self) -> bool {
        self.kind() == JsonKind::Object
    }

    /// How deeply arrays and objects nest: 0 for a scalar, 1 for `[]` or `{"a": 1}`.
    /// A byte scan, no parse.
    pub fn nesting_depth(&self) -> usize {
        let (mut depth, mut deepest) = (0usize, 0usize);
        for_each_outside_strings(self.get(), |_, b| match b {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        });
        deepest
    }

    /// The same value when a strict reader can read it back, else its lossy
    /// [`Json::to_value`]. Text from outside (a worker's report) may hold a lone surrogate
    /// escape (`"\udcff"`): valid JSON syntax that serde_json, and so every Rust client,
    /// refuses to read. Text without a `\ud` escape is returned as it is, unparsed.
    pub fn readable(self) -> Json {
        if has_lone_surrogate_escape(self.get()) {
            Json::from_value(&self.to_value())
        } else {
            self
        }
    }

    /// The same value without insignificant whitespace; numbers and strings keep their
    /// exact text.
    pub fn compact(&self) -> Json {
        let text = self.get();
        let mut out = String::new();
        let mut start = 0;
        for_each_outside_strings(text, |i, b| {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                out.push_str(&text[start..i]);
                start = i + 1;
            }
        });
        if start == 0 {
            return self.clone();
        }
        out.push_str(&text[start..]);
        // Dropping whitespace between tokens keeps the text valid; fall back to the
        // original rather than panic if that ever failed.
        Json::from_text(out).unwrap_or_else(|_| self.clone())
    }
}

/// Call `f(index, byte)` for every byte of `text` that is not inside a string literal
/// (the quotes themselves are inside). Every byte it reports is ASCII, so `index` is a
/// char boundary.
fn for_each_outside_strings(text: &str, mut f: impl FnMut(usize, u8)) {
    let (mut in_string, mut escaped) = (false, false);
    for (i, &b) in text.as_bytes().iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else {
            f(i, b);
        }
    }
}

fn kind_of(text: &str) -> JsonKind {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => JsonKind::Object,
        Some(b'[') => JsonKind::Array,
        Some(b'"') => JsonKind::String,
        Some(b't' | b'f') => JsonKind::Bool,
        Some(b'n') | None => JsonKind::Null,
        Some(_) => JsonKind::Number,
    }
}

/// A JSON string decoded to WTF-8 bytes: serde_json refuses a lone surrogate escape
/// as a Rust `String` but decodes it as bytes, and JSON text may carry one.
struct WtfString(Vec<u8>);

impl<'de> Deserialize<'de> for WtfString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl de::Visitor<'_> for Bytes {
            type Value = WtfString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WtfString, E> {
                Ok(WtfString(v.as_bytes().to_vec()))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<WtfString, E> {
                Ok(WtfString(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<WtfString, E> {
                Ok(WtfString(v))
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

impl WtfString {
    /// Each lone surrogate becomes one U+FFFD.
    fn lossy(self) -> String {
        String::from_utf8(self.0).unwrap_or_else(|e| {
            let mut bytes = e.into_bytes();
            // WTF-8 writes a surrogate as ED A0..=BF 80..=BF, three bytes like U+FFFD;
            // `from_utf8_lossy` alone would make three replacement characters of it.
            let mut i = 0;
            while i + 2 < bytes.len() {
                if bytes[i] == 0xED && (0xA0..=0xBF).contains(&bytes[i + 1]) {
                    bytes[i..i + 3].copy_from_slice("\u{FFFD}".as_bytes());
                    i += 3;
                } else {
                    i += 1;
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }
}

fn decode_string(raw: &RawValue) -> Option<Vec<u8>> {
    serde_json::from_str::<WtfString>(raw.get())
        .ok()
        .map(|s| s.0)
}

fn elements(raw: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_str(raw.get()).ok()
}

/// Members of an object; a repeated key keeps its last value, as `Value` does.
fn members(raw: &RawValue) -> Option<BTreeMap<Vec<u8>, &RawValue>> {
    let pairs: BTreeMap<WtfKey, &RawValue> = serde_json::from_str(raw.get()).ok()?;
    Some(pairs.into_iter().map(|(k, v)| (k.0, v)).collect())
}

/// [`WtfString`] as a map key (ordered, so it can key a `BTreeMap`).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct WtfKey(Vec<u8>);

impl<'de> Deserialize<'de> for WtfKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WtfString::deserialize(d).map(|s| WtfKey(s.0))
    }
}

fn is_integer(number: &str) -> bool {
    !number.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

fn same_number(a: &str, b: &str) -> bool {
    match (is_integer(a), is_integer(b)) {
        (true, true) => a == b || matches!((a, b), ("-0", "0") | ("0", "-0")),
        (false, false) => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        },
        _ => false,
    }
}

fn same_value(a: &RawValue, b: &RawValue, depth: usize) -> bool {
    let (ta, tb) = (a.get(), b.get());
    if ta == tb {
        return true;
    }
    let kind = kind_of(ta);
    if kind != kind_of(tb) {
        return false;
    }
    if depth >= WALK_DEPTH_LIMIT {
        return Json(a.to_owned()).compact().get() == Json(b.to_owned()).compact().get();
    }
    match kind {
        JsonKind::Null => true,
        JsonKind::Bool => ta.trim() == tb.trim(),
        JsonKind::Number => same_number(ta.trim(), tb.trim()),
        JsonKind::String => decode_string(a) == decode_string(b),
        JsonKind::Array => match (elements(a), elements(b)) {
            (Some(xs), Some(ys)) => {
                xs.len() == ys.len() && xs.iter().zip(&ys).all(|(x, y)| same_value(x, y, depth + 1))
            }
            _ => false,
        },
        JsonKind::Object => match (members(a), members(b)) {
            (Some(xs), Some(ys)) => {
                xs.len() == ys.len()
                    && xs
                        .iter()
                        .zip(&ys)
                        .all(|((kx, x), (ky, y))| kx == ky && same_value(x, y, depth + 1))
            }
            _ => false,
        },
    }
}

/// Whether JSON text holds a `\uXXXX` escape of a UTF-16 surrogate that is not half of
/// a pair. Escaped backslashes are skipped, so `"\\ud800"` (a backslash, then text) is
/// not one.
fn has_lone_surrogate_escape(text: &str) -> bool {
    fn unit(b: &[u8]) -> Option<u16> {
        let hex = std::str::from_utf8(b.get(..4)?).ok()?;
        u16::from_str_radix(hex, 16).ok()
    }
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        if b.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        match b.get(i + 2..).and_then(unit) {
            Some(0xD800..=0xDBFF) => {
                let paired = b.get(i + 6..i + 8) == Some(b"\\u".as_slice())
                    && matches!(b.get(i + 8..).and_then(unit), Some(0xDC00..=0xDFFF));
                if !paired {
                    return true;
                }
                i += 12;
            }
            Some(0xDC00..=0xDFFF) => return true,
            _ => i += 6,
        }
    }
    false
}

/// [`Json::to_value`] for text that `Value` cannot parse whole.
fn lossy_value(raw: &RawValue, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    let text = raw.get().trim();
    let deeper = depth < WALK_DEPTH_LIMIT;
    match kind_of(text) {
        JsonKind::Null => Value::Null,
        JsonKind::Bool => Value::Bool(text == "true"),
        JsonKind::Number => serde_json::Number::from_str(text)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        JsonKind::String => serde_json::from_str::<WtfString>(text)
            .map(|s| Value::String(s.lossy()))
            .unwrap_or(Value::Null),
        JsonKind::Array if deeper => match elements(raw) {
            Some(xs) => Value::Array(xs.iter().map(|x| lossy_value(x, depth + 1)).collect()),
            None => Value::Null,
        },
        JsonKind::Object if deeper => match members(raw) {
            Some(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (WtfString(k).lossy(), lossy_value(v, depth + 1)))
                    .collect(),
            ),
            None => Value::Null,
        },
        JsonKind::Array | JsonKind::Object => Value::Null,
    }
}

impl Default for Json {
    fn default() -> Self {
        Json::null()
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Json")
            .field(&format_args!("{}", self.get()))
            .finish()
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl FromStr for Json {
    type Err = serde_json::Error;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Json::from_text(text.to_owned())
    }
}

impl From<serde_json::Value> for Json {
    fn from(value: serde_json::Value) -> Self {
        Json::from_value(&value)
    }
}

impl From<&serde_json::Value> for Json {
    fn from(value: &serde_json::Value) -> Self {
        Json::from_value(value)
    }
}

impl From<Box<RawValue>> for Json {
    fn from(raw: Box<RawValue>) -> Self {
        Json(raw)
    }
}

impl From<&RawValue> for Json {
    fn from(raw: &RawValue) -> Self {
        Json(raw.to_owned())
    }
}

impl From<Json> for Box<RawValue> {
    fn from(json: Json) -> Self {
        json.0
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        same_value(&self.0, &other.0, 0)
    }
}

impl PartialEq<serde_json::Value> for Json {
    fn eq(&self, other: &serde_json::Value) -> bool {
        *self == Json::from_value(other)
    }
}

impl PartialEq<Json> for serde_json::Value {
    fn eq(&self, other: &Json) -> bool {
        other == self
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(Json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn j(text: &str) -> Json {
        text.parse().unwrap()
    }

    #[test]
    fn text_round_trips_through_serde_json_verbatim() {
        let big = "123456789012345678901234567890";
        #[derive(Serialize, serde::Deserialize)]
        struct Holder {
            value: Json,
        }
        let text = format!(r#"{{"value":{{"n": {big}, "f": 1e-300, "neg": -{big}.5}}}}"#);
        let holder: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!(
            holder.value.get(),
            format!(r#"{{"n": {big}, "f": 1e-300, "neg": -{big}.5}}"#)
        );
        assert_eq!(serde_json::to_string(&holder).unwrap(), text);
        assert_eq!(
            j(&format!("  {big}\n")).get(),
            big,
            "outer whitespace dropped"
        );
    }

    #[test]
    fn invalid_text_is_refused() {
        for bad in ["", "nope", "{", "[1,]", "1 2", "NaN", "{'a': 1}"] {
            assert!(Json::from_text(bad.into()).is_err(), "{bad:?}");
        }
        assert!(
            Json::from_text("1e400".into()).is_ok(),
            "range is not syntax"
        );
    }

    #[test]
    fn equality_is_by_value_and_exact_for_integers() {
        assert_eq!(
            j(r#"{"a": [1, 2.5], "b": "x"}"#),
            j(r#"{"b":"x","a":[1,2.5]}"#)
        );
        assert_eq!(j(r#""\u0041""#), j(r#""A""#));
        assert_eq!(j("1e16"), j("1e+16"));
        assert_eq!(j("-0"), j("0"));
        assert_ne!(j("1"), j("1.0"), "an integer is not a float, as with Value");
        assert_ne!(
            j("100000000000000000000000000001"),
            j("100000000000000000000000000000"),
            "beyond f64 integers still differ"
        );
        assert_ne!(j("[1, 2]"), j("[1, 2, 3]"));
        assert_ne!(j(r#"{"a": 1}"#), j(r#"{"a": 1, "b": 2}"#));
        assert_ne!(j("null"), j("false"));
        assert_eq!(
            j(r#"{"a": 1, "a": 2}"#),
            j(r#"{"a": 2}"#),
            "the last key wins"
        );
        assert_eq!(
            j(r#""\ud800""#),
            j(r#""\uD800""#),
            "lone surrogates compare too"
        );
    }

    #[test]
    fn it_compares_with_serde_json_values() {
        assert_eq!(j("4"), json!(4));
        assert_eq!(j("9.0"), json!(9.0));
        assert_eq!(json!([1, "a"]), j(r#"[1, "a"]"#));
        assert_ne!(j("1000000000000000000000000000000"), json!(1e30));
        assert_eq!(j("null"), serde_json::Value::Null);
    }

    #[test]
    fn kinds_are_read_off_the_first_byte() {
        for (text, kind) in [
            ("null", JsonKind::Null),
            ("true", JsonKind::Bool),
            ("false", JsonKind::Bool),
            ("-1", JsonKind::Number),
            ("7", JsonKind::Number),
            (r#""s""#, JsonKind::String),
            ("[]", JsonKind::Array),
            (" {}", JsonKind::Object),
        ] {
            assert_eq!(j(text).kind(), kind, "{text}");
        }
        assert!(j(r#" {"x": 1}"#).is_object());
        assert!(!j("[{}]").is_object());
        assert!(Json::null().is_null() && Json::default().is_null());
        assert_eq!(JsonKind::Array.describe(), "an array");
    }

    #[test]
    fn to_value_is_exact_where_value_can_be_and_lossy_beyond() {
        assert_eq!(
            j(r#"{"a": [1, -2, 0.5]}"#).to_value(),
            json!({"a": [1, -2, 0.5]})
        );
        assert_eq!(
            j("18446744073709551617").to_value(),
            json!(18446744073709551617.0)
        );
        assert_eq!(
            j(&format!(r#"[1, "\ud800", 1{}]"#, "0".repeat(400))).to_value(),
            json!([1, "\u{fffd}", null])
        );
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        assert!(j(&deep).to_value().is_array());
    }

    #[test]
    fn compact_drops_whitespace_outside_strings_only() {
        let v = j("{ \"a b\" : [ 1 ,\n 2.50 ] , \"c\":\"x \\\" y\" }");
        assert_eq!(v.compact().get(), r#"{"a b":[1,2.50],"c":"x \" y"}"#);
        assert_eq!(v.nesting_depth(), 2);
        assert_eq!(j(r#""[[[""#).nesting_depth(), 0);
        assert_eq!(j("3").compact().get(), "3");
    }

    #[test]
    fn readable_replaces_lone_surrogates_and_keeps_everything_else() {
        assert_eq!(
            j(r#"["\udcff", "a\ud800"]"#).readable().get(),
            "[\"\u{fffd}\",\"a\u{fffd}\"]"
        );
        for text in [
            r#""\ud83d\ude00""#,
            r#""back\\ud800slash""#,
            "10000000000000000000000",
            r#"{"a": 1}"#,
        ] {
            assert_eq!(j(text).readable().get(), text);
        }
        // Pairs alone are never re-parsed: deep nesting and big integers stay exact.
        let deep = format!(
            "{}[10000000000000000000000, \"\\ud83d\\ude00\"]{}",
            "[".repeat(300),
            "]".repeat(300)
        );
        assert_eq!(j(&deep).readable().get(), deep);
        assert_eq!(
            j(r#""\uDBFF\uDFFF x \ud800""#).readable().get(),
            "\"\u{10ffff} x \u{fffd}\""
        );
    }

    #[test]
    fn debug_and_display_show_the_text() {
        let v = j("[1, 2]");
        assert_eq!(format!("{v}"), "[1, 2]");
        assert_eq!(format!("{v:?}"), "Json([1, 2])");
        assert_eq!(v.parse::<Vec<u8>>().unwrap(), vec![1, 2]);
        assert_eq!(Json::from(json!({"k": true})).get(), r#"{"k":true}"#);
    }
}
