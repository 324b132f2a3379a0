//! Converting between JSON (what the command line speaks) and msgpack values (what the wire
//! carries). JSON has no bytes and only string keys, so:
//!
//! - bytes (msgpack bin) are written `{"$bin": "<base64>"}`, in arguments and results alike;
//! - msgpack ext values are written `{"$ext": [<type>, "<base64>"]}`;
//! - non-string map keys are written as their JSON text;
//! - integers must fit in i64 (PROTOCOL.md section 3: anything else is an error on the wire),
//!   or in u64 with `--allow-u64`; a longer integer is refused rather than sent as a float.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use multifrost::Value;
use serde_json::{Map, Number, Value as Json};

/// An argument from the command line: JSON when it parses, otherwise the plain string. An
/// integer literal anywhere in the JSON that does not fit in i64 (or in u64, when
/// `allow_u64`) is an error, rather than a float that is not the number written.
pub fn parse_arg(text: &str, allow_u64: bool) -> Result<Value, String> {
    match serde_json::from_str::<Json>(text) {
        Ok(json) => {
            check_integers(text, allow_u64)?;
            Ok(from_json(json))
        }
        Err(_) => Ok(Value::from(text)),
    }
}

/// Checks every integer literal of a valid JSON text against the range allowed: serde_json
/// would read one beyond u64 as a float (`1e+23`), losing digits without a word.
fn check_integers(text: &str, allow_u64: bool) -> Result<(), String> {
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '"' => {
                // Skip the string, escapes included.
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '-' | '0'..='9' => {
                let mut end = start + c.len_utf8();
                while let Some(&(at, c)) = chars.peek() {
                    if !matches!(c, '0'..='9' | '-' | '+' | '.' | 'e' | 'E') {
                        break;
                    }
                    end = at + c.len_utf8();
                    chars.next();
                }
                let literal = &text[start..end];
                if literal.contains(['.', 'e', 'E']) {
                    continue;
                }
                check_integer(literal, allow_u64)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_integer(literal: &str, allow_u64: bool) -> Result<(), String> {
    if literal.parse::<i64>().is_ok() {
        return Ok(());
    }
    if literal.parse::<u64>().is_ok() {
        if allow_u64 {
            return Ok(());
        }
        return Err(format!(
            "the integer {literal} is above i64::MAX ({}), which other languages refuse; \
             pass --allow-u64 to send it as a msgpack uint64, or quote it to send a string",
            i64::MAX
        ));
    }
    Err(format!(
        "the integer {literal} does not fit in 64 bits; quote it to send it as a string \
         ('\"{literal}\"')"
    ))
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

    fn parse(text: &str) -> Value {
        parse_arg(text, false).unwrap()
    }

    #[test]
    fn integers_outside_i64_are_refused_unless_u64_is_allowed() {
        let max = i64::MAX.to_string();
        let min = i64::MIN.to_string();
        assert_eq!(parse(&max), Value::from(i64::MAX));
        assert_eq!(parse(&min), Value::from(i64::MIN));
        let above = (i64::MAX as u64 + 1).to_string();
        let err = parse_arg(&above, false).unwrap_err();
        assert!(err.contains("--allow-u64"), "{err}");
        assert_eq!(
            parse_arg(&above, true).unwrap(),
            Value::from(i64::MAX as u64 + 1)
        );
        for huge in [
            "100000000000000000000000",
            "-9223372036854775809",
            "[1, {\"a\": 18446744073709551616}]",
        ] {
            let err = parse_arg(huge, true).unwrap_err();
            assert!(err.contains("does not fit in 64 bits"), "{huge}: {err}");
        }
        // Digits inside strings and floats are not integers.
        assert_eq!(
            parse("\"100000000000000000000000\""),
            Value::from("100000000000000000000000")
        );
        assert_eq!(parse("1e23"), Value::F64(1e23));
        assert_eq!(
            parse(r#"{"k\"1": "99999999999999999999", "x": 2.5}"#),
            Value::Map(vec![
                (Value::from("k\"1"), Value::from("99999999999999999999")),
                (Value::from("x"), Value::F64(2.5)),
            ])
        );
    }

    #[test]
    fn arguments_are_json_or_else_plain_strings() {
        assert_eq!(parse("42"), Value::from(42));
        assert_eq!(parse("\"42\""), Value::from("42"));
        assert_eq!(parse("hello"), Value::from("hello"));
        assert_eq!(
            parse("[1, null]"),
            Value::Array(vec![Value::from(1), Value::Nil])
        );
        assert_eq!(parse(r#"{"$bin": "AP8="}"#), Value::Binary(vec![0, 255]));
    }

    #[test]
    fn bytes_round_trip_through_their_json_form() {
        let value = Value::Binary(vec![0, 1, 255]);
        assert_eq!(from_json(to_json(&value)), value);
        assert_eq!(to_json(&value).to_string(), r#"{"$bin":"AAH/"}"#);
    }
}
