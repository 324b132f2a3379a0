//! Values crossing the wire: encoding Rust values the way the other languages expect them, and
//! decoding received values into Rust types with the protocol's leniencies.

use bytes::Bytes;
use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;

use super::limits::{skip_value, DecodeError, Limits};

/// One msgpack-encoded value, ready to be placed in a message or decoded into a type.
///
/// Encoding writes structs as maps with field names (what Python and Node expect) and turns
/// NaN and infinities into nil, as every implementation does on the generic path.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedValue(Bytes);

impl EncodedValue {
    /// Encodes any `Serialize` value.
    pub fn encode<T: Serialize + ?Sized>(
        value: &T,
    ) -> Result<EncodedValue, rmp_serde::encode::Error> {
        let mut buf = Vec::with_capacity(16);
        value.serialize(&mut rmp_serde::Serializer::new(&mut buf).with_struct_map())?;
        Ok(EncodedValue(Bytes::from(sanitize_non_finite(buf))))
    }

    /// Encodes a dynamic value.
    pub fn from_value(value: &Value) -> EncodedValue {
        let mut buf = Vec::new();
        rmpv::encode::write_value(&mut buf, value).expect("Vec write");
        EncodedValue(Bytes::from(sanitize_non_finite(buf)))
    }

    /// The encoded nil.
    pub fn nil() -> EncodedValue {
        EncodedValue(Bytes::from_static(&[0xc0]))
    }

    /// Wraps bytes that hold exactly one msgpack value that was already validated.
    pub(crate) fn from_validated(bytes: Bytes) -> EncodedValue {
        EncodedValue(bytes)
    }

    /// Validates untrusted bytes as exactly one msgpack value within `limits`.
    pub fn from_bytes(bytes: Bytes, limits: &Limits) -> Result<EncodedValue, DecodeError> {
        let mut violation = None;
        let end = skip_value(&bytes, 0, 0, limits, &mut violation)?;
        if let Some(violation) = violation {
            return Err(violation);
        }
        if end != bytes.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(EncodedValue(bytes))
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_nil(&self) -> bool {
        self.0[..] == [0xc0]
    }

    /// Decodes into `T`.
    ///
    /// Integers may arrive as float64 holding an exact integer (Node encodes large integers that
    /// way): when the strict decode fails, such floats are read as integers and the decode is
    /// retried, so `i64` parameters accept `3.0` while `f64` ones still accept `3`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        match rmp_serde::from_slice::<T>(&self.0) {
            Ok(value) => Ok(value),
            Err(strict) => {
                let value = self.to_value();
                let mut relaxed = value.clone();
                if integral_floats_to_ints(&mut relaxed) {
                    if let Ok(decoded) = rmpv::ext::from_value::<T>(relaxed) {
                        return Ok(decoded);
                    }
                }
                Err(ValueError {
                    expected: short_type_name::<T>(),
                    got: describe(&value),
                    detail: strict.to_string(),
                })
            }
        }
    }

    /// Decodes into a dynamic value.
    pub fn to_value(&self) -> Value {
        decode_value(&self.0).unwrap_or(Value::Nil)
    }
}

impl fmt::Debug for EncodedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncodedValue({})", describe(&self.to_value()))
    }
}

/// A received value that does not fit the type asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// The type asked for, without module paths (`i64`, `Point`, `Vec<String>`).
    pub expected: String,
    /// What arrived: its msgpack type and a short rendering (`str "x"`).
    pub got: String,
    /// The decoder's own explanation, useful for nested mismatches.
    pub detail: String,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected {}, got {}", self.expected, self.got)?;
        // The decoder's explanation only adds something for a mismatch deeper inside the value
        // (a missing field, say); a plain type mismatch is already said above.
        let redundant = ["invalid type", "wrong msgpack marker"];
        if !self.detail.is_empty()
            && !redundant
                .iter()
                .any(|prefix| self.detail.starts_with(prefix))
        {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValueError {}

/// Decodes bytes that were already validated (or are trusted) into a dynamic value.
pub(crate) fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = bytes;
    rmpv::decode::read_value_with_max_depth(&mut reader, Limits::DEFAULT_MAX_DEPTH + 8)
        .map_err(|e| DecodeError::Unexpected(e.to_string()))
}

/// `std::any::type_name` without module paths: `alloc::vec::Vec<i64>` becomes `Vec<i64>`.
pub fn short_type_name<T: ?Sized>() -> String {
    let full = std::any::type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            out.push_str(segment.rsplit("::").next().unwrap_or(""));
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(segment.rsplit("::").next().unwrap_or(""));
    out
}

/// A short description of a received value for error messages: its type and a preview.
pub fn describe(value: &Value) -> String {
    const PREVIEW: usize = 40;
    match value {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => format!("bool {b}"),
        Value::Integer(i) => format!("int {i}"),
        Value::F32(v) => format!("float {v}"),
        Value::F64(v) => format!("float {v}"),
        Value::String(s) => match s.as_str() {
            Some(text) if text.chars().count() > PREVIEW => {
                let cut: String = text.chars().take(PREVIEW).collect();
                format!("str {cut:?}...")
            }
            Some(text) => format!("str {text:?}"),
            None => "str (invalid UTF-8)".into(),
        },
        Value::Binary(b) => format!("bin of {} bytes", b.len()),
        Value::Array(items) => format!("array of {} items", items.len()),
        Value::Map(entries) => format!("map of {} entries", entries.len()),
        Value::Ext(kind, data) => format!("ext type {kind} of {} bytes", data.len()),
    }
}

/// Turns float64 values that hold an exact integer in i64 range into integers, in place.
/// Returns whether anything changed.
fn integral_floats_to_ints(value: &mut Value) -> bool {
    match value {
        Value::F64(v)
            if v.fract() == 0.0
                && *v >= -9.223_372_036_854_776e18
                && *v < 9.223_372_036_854_776e18 =>
        {
            *value = Value::from(*v as i64);
            true
        }
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            integral_floats_to_ints(item) | changed
        }),
        Value::Map(entries) => entries.iter_mut().fold(false, |changed, (_, v)| {
            integral_floats_to_ints(v) | changed
        }),
        _ => false,
    }
}

/// Replaces NaN and infinities with nil. Only re-encodes when the value has one.
fn sanitize_non_finite(buf: Vec<u8>) -> Vec<u8> {
    if !has_non_finite(&buf) {
        return buf;
    }
    let Ok(mut value) = decode_value(&buf) else {
        return buf;
    };
    nan_to_nil(&mut value);
    let mut out = Vec::with_capacity(buf.len());
    rmpv::encode::write_value(&mut out, &value).expect("Vec write");
    out
}

fn nan_to_nil(value: &mut Value) {
    match value {
        Value::F64(v) if !v.is_finite() => *value = Value::Nil,
        Value::F32(v) if !v.is_finite() => *value = Value::Nil,
        Value::Array(items) => items.iter_mut().for_each(nan_to_nil),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| nan_to_nil(v)),
        _ => {}
    }
}

/// Scans encoded bytes for a non-finite float without decoding anything else.
fn has_non_finite(buf: &[u8]) -> bool {
    use super::limits::{read_header, Header};
    let mut pos = 0;
    while pos < buf.len() {
        let marker = buf[pos];
        let Ok(header) = read_header(buf, &mut pos) else {
            return false;
        };
        match (marker, header) {
            (0xca, _) => {
                let bits = u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap_or([0; 4]));
                if !f32::from_bits(bits).is_finite() {
                    return true;
                }
                pos += 4;
            }
            (0xcb, _) => {
                let bits = u64::from_be_bytes(buf[pos..pos + 8].try_into().unwrap_or([0; 8]));
                if !f64::from_bits(bits).is_finite() {
                    return true;
                }
                pos += 8;
            }
            (_, Header::Leaf { skip }) => pos += skip,
            (_, Header::Container { .. }) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Point {
        x: i64,
        y: f64,
    }

    #[test]
    fn structs_are_encoded_as_maps_with_field_names() {
        let encoded = EncodedValue::encode(&Point { x: 1, y: 2.5 }).unwrap();
        let value = encoded.to_value();
        let map = value.as_map().expect("a map");
        assert_eq!(map[0].0.as_str(), Some("x"));
        assert_eq!(encoded.decode::<Point>().unwrap(), Point { x: 1, y: 2.5 });
    }

    #[test]
    fn nan_and_infinity_become_nil() {
        let encoded = EncodedValue::encode(&vec![1.0, f64::NAN, f64::INFINITY]).unwrap();
        assert_eq!(
            encoded.to_value(),
            Value::Array(vec![Value::F64(1.0), Value::Nil, Value::Nil])
        );
    }

    #[test]
    fn integers_accept_exact_floats_but_not_fractions() {
        let exact = EncodedValue::encode(&3.0f64).unwrap();
        assert_eq!(exact.decode::<i64>().unwrap(), 3);
        let nested = EncodedValue::encode(&vec![1.0f64, 2.0]).unwrap();
        assert_eq!(nested.decode::<Vec<i64>>().unwrap(), vec![1, 2]);
        let fraction = EncodedValue::encode(&3.5f64).unwrap();
        assert!(fraction.decode::<i64>().is_err());
    }

    #[test]
    fn mismatch_names_expected_and_received() {
        let err = EncodedValue::encode("x")
            .unwrap()
            .decode::<i64>()
            .unwrap_err();
        assert_eq!(err.to_string(), "expected i64, got str \"x\"");
    }

    #[test]
    fn a_nested_mismatch_keeps_the_decoders_explanation() {
        let err = EncodedValue::encode(&std::collections::HashMap::from([("x", 1)]))
            .unwrap()
            .decode::<Point>()
            .unwrap_err();
        assert!(err.to_string().contains("missing field `y`"), "{err}");
    }

    #[test]
    fn u64_above_i64_is_not_clamped() {
        let big = EncodedValue::encode(&u64::MAX).unwrap();
        assert!(big.decode::<i64>().is_err());
        assert_eq!(big.decode::<u64>().unwrap(), u64::MAX);
    }

    #[test]
    fn type_names_lose_their_paths() {
        assert_eq!(short_type_name::<Vec<String>>(), "Vec<String>");
        assert_eq!(short_type_name::<Option<i64>>(), "Option<i64>");
    }
}
