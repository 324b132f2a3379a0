//! Converting between JSON (what the command line speaks) and msgpack values (what the wire
//! carries). JSON has no bytes and only string keys, so:
//!
//! - bytes (msgpack bin) are written `{"$bin": "<base64>"}`, in arguments and results alike;
//! - msgpack ext values are written `{"$ext": [<type>, "<base64>"]}`;
//! - non-string map keys are written as their JSON text.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use multifrost::Value;
use serde_json::{Map, Number, Value as Json};

/// An argument from the command line: JSON when it parses, otherwise the plain string.
pub fn parse_arg(text: &str) -> Value {
    match serde_json::from_str::<Json>(text) {
        Ok(json) => from_json(json),
        Err(_) => Value::from(text),
    }
}

/// JSON to a msgpack value.
pub fn from_json(json: Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s),
        Json::Array(items) => Value::Array(items.into_iter().map(from_json).collect()),
        Json::Object(map) => {
            if map.len() == 1 {
                if let Some(Json::String(b64)) = map.get("$bin") {
                    if let Ok(bytes) = BASE64.decode(b64) {
                        return Value::Binary(bytes);
                    }
                }
            }
            Value::Map(
                map.into_iter()
                    .map(|(k, v)| (Value::from(k), from_json(v)))
                    .collect(),
            )
        }
    }
}

/// A msgpack value to JSON.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => i
            .as_i64()
            .map(Json::from)
            .or_else(|| i.as_u64().map(Json::from))
            .unwrap_or(Json::Null),
        Value::F32(f) => Number::from_f64(*f as f64).map_or(Json::Null, Json::Number),
        Value::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => match s.as_str() {
            Some(text) => Json::from(text),
            None => Json::from(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        },
        Value::Binary(bytes) => tagged("$bin", Json::from(BASE64.encode(bytes))),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k.as_str() {
                        Some(text) => text.to_owned(),
                        None => to_json(k).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Ext(kind, data) => tagged(
            "$ext",
            Json::Array(vec![Json::from(*kind), Json::from(BASE64.encode(data))]),
        ),
    }
}

fn tagged(tag: &str, value: Json) -> Json {
    let mut map = Map::new();
    map.insert(tag.to_owned(), value);
    Json::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_json_or_else_plain_strings() {
        assert_eq!(parse_arg("42"), Value::from(42));
        assert_eq!(parse_arg("\"42\""), Value::from("42"));
        assert_eq!(parse_arg("hello"), Value::from("hello"));
        assert_eq!(
            parse_arg("[1, null]"),
            Value::Array(vec![Value::from(1), Value::Nil])
        );
        assert_eq!(
            parse_arg(r#"{"$bin": "AP8="}"#),
            Value::Binary(vec![0, 255])
        );
    }

    #[test]
    fn bytes_round_trip_through_their_json_form() {
        let value = Value::Binary(vec![0, 1, 255]);
        assert_eq!(from_json(to_json(&value)), value);
        assert_eq!(to_json(&value).to_string(), r#"{"$bin":"AAH/"}"#);
    }
}
