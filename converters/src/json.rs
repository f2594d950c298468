//! JSON side files (config, index, tokenizer config) read strictly: size cap, and duplicate keys
//! at any depth are an error instead of serde_json's silent last-wins.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result, malformed};
use crate::limits::MAX_JSON_FILE;

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(de::Error::custom(format_args!("duplicate key `{k}`")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses JSON text, rejecting duplicate keys anywhere.
pub fn parse_strict(text: &str) -> Result<Value> {
    serde_json::from_str::<Strict>(text)
        .map(|s| s.0)
        .map_err(|e| {
            let detail = e.to_string();
            if let Some(k) = detail
                .strip_prefix("duplicate key `")
                .and_then(|r| r.split('`').next())
            {
                return Error::new(ErrorKind::Duplicate {
                    what: "JSON key",
                    name: k.to_owned(),
                });
            }
            malformed("JSON", detail)
        })
}

/// Reads and strictly parses a JSON file of bounded size.
pub fn read_strict(path: &Path) -> Result<Value> {
    let text = read_text(path)?;
    parse_strict(&text).map_err(|e| e.in_file(path))
}

/// Reads a UTF-8 side file of bounded size.
pub fn read_text(path: &Path) -> Result<String> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::from(e).in_file(path))?
        .len();
    if len > MAX_JSON_FILE {
        return Err(Error::new(ErrorKind::TooLarge {
            what: "file size",
            value: len,
            cap: MAX_JSON_FILE,
        })
        .in_file(path));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::from(e).in_file(path))?;
    String::from_utf8(bytes).map_err(|e| {
        malformed("text", "invalid UTF-8")
            .at(e.utf8_error().valid_up_to() as u64)
            .in_file(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_rejected_at_any_depth() {
        assert!(parse_strict(r#"{"a":1,"b":{"c":1}}"#).is_ok());
        let e = parse_strict(r#"{"a":1,"b":{"c":1,"c":2}}"#).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Duplicate { name, .. } if name == "c"));
        assert!(matches!(
            parse_strict("[1,").unwrap_err().kind(),
            ErrorKind::Malformed { .. }
        ));
    }
}
