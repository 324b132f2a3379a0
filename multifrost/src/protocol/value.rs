//! Values crossing the wire: encoding Rust values the way the other languages expect them, and
//! decoding received values into Rust types with the protocol's leniencies.

use bytes::Bytes;
use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;

use super::depth_guard::DepthBudget;
use super::limits::{skip_value, DecodeError, Limits, Summary};

/// One msgpack-encoded value, ready to be placed in a message or decoded into a type.
///
/// Encoding writes structs as maps with field names (what Python and Node expect) and turns
/// NaN and infinities into nil, as every implementation does on the generic path. It applies
/// the receive limits of [`Limits::default`] (what every implementation can take), so a value
/// that no peer would accept fails here, with an error naming the limit, rather than on the
/// other side.
///
/// The scan that validates the bytes also records what the portable value contract
/// (PROTOCOL.md section 3) looks at, so sending checks a value without walking it again.
#[derive(Clone)]
pub struct EncodedValue {
    /// The encoding; for a bin built around bytes it did not copy, only its header.
    bytes: Buffer,
    summary: Summary,
    /// That bin's content (see [`EncodedValue::bin`]).
    tail: Option<Box<BinTail>>,
}

/// Where an encoding is kept: in a shared buffer (a slice of a received frame, a static, a
/// large value this process encoded), or, for a small one this process encoded, in the buffer
/// it was encoded into. Making a `Bytes` of that buffer would allocate a shared header (the
/// buffer has room left over) for a value that is mostly copied into a message and dropped:
/// each call's arguments and result. A small one is copied when cloned or sliced, a large one
/// is shared.
#[derive(Clone)]
enum Buffer {
    Shared(Bytes),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Buffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Buffer::Shared(bytes) => bytes,
            Buffer::Owned(buf) => buf,
        }
    }
}

/// The content of a large bin, kept apart from its header so that building the value copies
/// nothing; a message that carries it writes both parts, and [`EncodedValue::as_bytes`] joins
/// them (once) only when someone asks for the whole.
#[derive(Clone)]
struct BinTail {
    body: Bytes,
    joined: std::sync::OnceLock<Bytes>,
}

/// An encoding this process made shorter than this is kept in its own buffer (see [`Buffer`]).
const OWNED_MAX: usize = 256;

/// A bin at least this large is built around its bytes rather than copied.
const SHARED_BIN_MIN: usize = 16 * 1024;

impl PartialEq for EncodedValue {
    fn eq(&self, other: &Self) -> bool {
        // The summary is a function of the bytes.
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for EncodedValue {}

impl EncodedValue {
    /// Encodes any `Serialize` value, within the default [`Limits`] (the value on its own is
    /// level 1 of the depth limit).
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<EncodedValue, EncodeError> {
        let limits = Limits::default();
        let budget = DepthBudget::new(limits.max_depth);
        let mut buf = Vec::with_capacity(16);
        let mut serializer = rmp_serde::Serializer::new(&mut buf).with_struct_map();
        if let Err(err) = value.serialize(budget.guard(&mut serializer)) {
            if budget.exceeded() {
                return Err(EncodeError::Limit {
                    at: budget.top_index().map(ValuePath::index).unwrap_or_default(),
                    limit: DecodeError::TooDeep {
                        limit: limits.max_depth,
                    },
                });
            }
            return Err(EncodeError::Serialize(err.to_string()));
        }
        EncodedValue::checked(buf, &limits)
    }

    /// Encodes a dynamic value, within the default [`Limits`].
    pub fn from_value(value: &Value) -> Result<EncodedValue, EncodeError> {
        let limits = Limits::default();
        // rmpv's writer recurses once per level: refuse a value too deep for it first.
        if let Some(at) = deeper_than(value, limits.max_depth) {
            return Err(EncodeError::Limit {
                at,
                limit: DecodeError::TooDeep {
                    limit: limits.max_depth,
                },
            });
        }
        let mut buf = Vec::new();
        rmpv::encode::write_value(&mut buf, value).expect("Vec write");
        EncodedValue::checked(buf, &limits)
    }

    /// Validates bytes this process encoded, and turns NaN and infinities into nil.
    fn checked(buf: Vec<u8>, limits: &Limits) -> Result<EncodedValue, EncodeError> {
        let summary = scan(&buf, limits).map_err(|limit| {
            let at = locate_limit(&buf, &limit, 0, limits);
            EncodeError::Limit { at, limit }
        })?;
        let (buf, summary) = if summary.non_finite {
            let buf = sanitize_non_finite(&buf);
            let summary = scan(&buf, limits).map_err(|limit| EncodeError::Limit {
                at: ValuePath::default(),
                limit,
            })?;
            (buf, summary)
        } else {
            (buf, summary)
        };
        let bytes = if buf.len() < OWNED_MAX {
            Buffer::Owned(buf)
        } else {
            Buffer::Shared(Bytes::from(buf))
        };
        let value = EncodedValue {
            bytes,
            summary,
            tail: None,
        };
        if value.bytes.len() > limits.max_message_len {
            return Err(EncodeError::Limit {
                at: ValuePath::default(),
                limit: DecodeError::MessageTooLarge {
                    len: value.bytes.len(),
                    limit: limits.max_message_len,
                },
            });
        }
        Ok(value)
    }

    /// The encoded nil.
    pub fn nil() -> EncodedValue {
        EncodedValue::from_validated(Bytes::from_static(&[0xc0]), Summary::default())
    }

    /// Wraps bytes that hold exactly one msgpack value that was already validated, with what
    /// that validation found.
    pub(crate) fn from_validated(bytes: Bytes, summary: Summary) -> EncodedValue {
        EncodedValue {
            bytes: Buffer::Shared(bytes),
            summary,
            tail: None,
        }
    }

    /// A msgpack bin holding `body`: a large one is built around it (no copy), a small one
    /// copied after its header. Fails when no bin can be that long.
    pub(crate) fn bin(body: Bytes) -> Result<EncodedValue, String> {
        let len = body.len();
        let too_long = || format!("{len} bytes do not fit in a msgpack bin");
        let summary = Summary {
            str_bin_len: len.min(u32::MAX as usize) as u32,
            ..Summary::default()
        };
        // Sized exactly, so that a `Bytes` of it needs no shared header of its own.
        let header_len = match len {
            0..=0xff => 2,
            0x100..=0xffff => 3,
            _ => 5,
        };
        let body_len = if len < SHARED_BIN_MIN { len } else { 0 };
        let mut header = Vec::with_capacity(header_len + body_len);
        rmp::encode::write_bin_len(&mut header, u32::try_from(len).map_err(|_| too_long())?)
            .map_err(|_| too_long())?;
        if len < SHARED_BIN_MIN {
            header.extend_from_slice(&body);
            return Ok(EncodedValue::from_validated(header.into(), summary));
        }
        Ok(EncodedValue {
            bytes: Buffer::Shared(header.into()),
            summary,
            tail: Some(Box::new(BinTail {
                body,
                joined: std::sync::OnceLock::new(),
            })),
        })
    }

    /// Validates untrusted bytes as exactly one msgpack value within `limits`.
    pub fn from_bytes(bytes: Bytes, limits: &Limits) -> Result<EncodedValue, DecodeError> {
        let summary = scan(&bytes, limits)?;
        Ok(EncodedValue::from_validated(bytes, summary))
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.whole()
    }

    /// The encoding in one buffer (for a value built around a large bin, joined on first use).
    fn whole(&self) -> &[u8] {
        match &self.tail {
            None => &self.bytes,
            Some(tail) => self.joined(tail),
        }
    }

    /// The header and the body of a large bin in one buffer, joined on first use.
    fn joined<'a>(&'a self, tail: &'a BinTail) -> &'a Bytes {
        tail.joined.get_or_init(|| {
            let mut joined = Vec::with_capacity(self.bytes.len() + tail.body.len());
            joined.extend_from_slice(&self.bytes);
            joined.extend_from_slice(&tail.body);
            joined.into()
        })
    }

    /// The encoding as the one or two pieces it is kept in, to be written one after the other
    /// (see [`EncodedValue::bin`]); no copy, unlike [`as_bytes`](Self::as_bytes) for such a
    /// value.
    pub(crate) fn pieces(&self) -> [&[u8]; 2] {
        match &self.tail {
            None => [&self.bytes, &[]],
            Some(tail) => [&self.bytes, &tail.body],
        }
    }

    /// The length of the encoding.
    pub(crate) fn encoded_len(&self) -> usize {
        self.bytes.len() + self.tail.as_ref().map_or(0, |tail| tail.body.len())
    }

    /// A view of `range` of the encoded bytes, sharing their buffer (no copy) unless this
    /// process encoded them and they are small.
    pub(crate) fn shared_slice(&self, range: std::ops::Range<usize>) -> Bytes {
        match (&self.bytes, &self.tail) {
            (Buffer::Shared(bytes), None) => bytes.slice(range),
            // A small value this process encoded: its bytes are copied (a received one, the
            // usual case for a slice, is shared).
            (Buffer::Owned(buf), None) => Bytes::copy_from_slice(&buf[range]),
            (_, Some(tail)) => self.joined(tail).slice(range),
        }
    }

    /// Whether the value is nil.
    pub fn is_nil(&self) -> bool {
        self.tail.is_none() && self.bytes[..] == [0xc0]
    }

    /// What the validation of these bytes found.
    pub(crate) fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Checks that this value may be sent `level` levels deep in a message (1 for a call's
    /// `args` or a reply's `result`, 2 for a metadata value) to any peer: within `limits`,
    /// with str map keys only, and with integers within i64 unless `wide_integers` (only a
    /// Rust peer takes those). Costs nothing when the value passes: the summary says so; the
    /// error is worked out (where the value breaks the contract) only when it does not.
    pub(crate) fn check_sendable(
        &self,
        level: usize,
        limits: &Limits,
        wide_integers: bool,
    ) -> Result<(), EncodeError> {
        let summary = &self.summary;
        if let Err(limit) = summary.check(limits, level) {
            let at = locate_limit(self.as_bytes(), &limit, level, limits);
            return Err(EncodeError::Limit { at, limit });
        }
        if summary.non_string_key {
            return Err(locate_non_string_key(self.as_bytes()));
        }
        if summary.wide_integer && !wide_integers {
            return Err(locate_wide_integer(self.as_bytes()));
        }
        Ok(())
    }

    /// Decodes into `T`.
    ///
    /// Integers may arrive as float64 holding an exact integer (Node encodes large integers that
    /// way): when the strict decode fails, such floats are read as integers and the decode is
    /// retried, so `i64` parameters accept `3.0` while `f64` ones still accept `3`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        match rmp_serde::from_slice::<T>(self.as_bytes()) {
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
                    // The decoder quotes what it got (an unknown variant, a str): bound it, the
                    // text goes back to the peer in an error reply.
                    detail: quote(&strict.to_string(), 300).into_owned(),
                })
            }
        }
    }

    /// Decodes into a dynamic value.
    pub fn to_value(&self) -> Value {
        decode_value(self.as_bytes()).unwrap_or(Value::Nil)
    }
}

impl fmt::Debug for EncodedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncodedValue({})", describe(&self.to_value()))
    }
}

/// Validates `bytes` as exactly one value within `limits`, as a value on its own.
fn scan(bytes: &[u8], limits: &Limits) -> Result<Summary, DecodeError> {
    let mut violation = None;
    let mut summary = Summary::default();
    let end = skip_value(bytes, 0, 0, limits, &mut violation, &mut summary)?;
    if let Some(violation) = violation {
        return Err(violation);
    }
    if end != bytes.len() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(summary)
}

/// `text`, cut to about `max` bytes with an ellipsis and its full length when longer: for error
/// messages that quote received text, which must stay well within the receive limits.
pub(crate) fn quote(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &text[..cut], text.len()).into()
}

/// Why a value cannot be sent. Each variant says where in the value the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value's `Serialize` implementation failed.
    Serialize(String),
    /// The value breaks a limit that receivers enforce ([`Limits`]).
    Limit {
        /// Where in the value.
        at: ValuePath,
        /// The limit it breaks.
        limit: DecodeError,
    },
    /// An integer above i64::MAX: Python clamps it, Node never answers (PROTOCOL.md section
    /// 3). Only a Rust peer takes it, when the sender allows wide integers.
    WideInteger {
        /// Where in the value.
        at: ValuePath,
        /// The integer.
        value: u64,
    },
    /// A map key that is not a str: Python drops the whole message (PROTOCOL.md section 3).
    NonStringKey {
        /// Where in the value.
        at: ValuePath,
        /// The key, described (`int 1`).
        key: String,
    },
}

impl EncodeError {
    /// Where in the value the problem is (empty for the value itself, or when unknown).
    pub fn at(&self) -> Option<&ValuePath> {
        match self {
            EncodeError::Serialize(_) => None,
            EncodeError::Limit { at, .. }
            | EncodeError::WideInteger { at, .. }
            | EncodeError::NonStringKey { at, .. } => Some(at),
        }
    }

    fn problem(&self) -> String {
        match self {
            EncodeError::Serialize(reason) => reason.clone(),
            EncodeError::Limit { limit, .. } => limit.to_string(),
            EncodeError::WideInteger { value, .. } => format!(
                "integer {value} is outside i64, which Python, Node and Go peers cannot take:                  send it as a string or bin (a Rust peer takes it when wide integers are allowed)"
            ),
            EncodeError::NonStringKey { key, .. } => format!(
                "map key {key} is not a string; map keys must be strings for Python, Node and                  Go peers"
            ),
        }
    }

    /// The error as said of a call's positional arguments, which are the items of one
    /// array: `argument 2, at ["x"]: ...`.
    pub(crate) fn in_arguments(&self) -> String {
        match self.at().and_then(|at| at.0.split_first()) {
            Some((PathSegment::Index(index), [])) => {
                format!("argument {}: {}", index + 1, self.problem())
            }
            Some((PathSegment::Index(index), rest)) => format!(
                "argument {}, at {}: {}",
                index + 1,
                ValuePath(rest.to_vec()),
                self.problem()
            ),
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at() {
            Some(at) if !at.0.is_empty() => write!(f, "at {at}: {}", self.problem()),
            _ => f.write_str(&self.problem()),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Where a part of a value sits: `[0]["name"][2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValuePath(pub Vec<PathSegment>);

impl ValuePath {
    fn index(index: usize) -> ValuePath {
        ValuePath(vec![PathSegment::Index(index)])
    }
}

/// One step of a [`ValuePath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// An array item.
    Index(usize),
    /// The value under a str key.
    Key(String),
    /// The value under a key that is not a str, described (`int 1`).
    OtherKey(String),
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.0 {
            match segment {
                PathSegment::Index(index) => write!(f, "[{index}]")?,
                PathSegment::Key(key) => write!(f, "[{:?}]", quote(key, 40))?,
                PathSegment::OtherKey(key) => write!(f, "[{key}]")?,
            }
        }
        Ok(())
    }
}

/// The path to a container nested deeper than `max_depth` in `value`, found without recursion.
fn deeper_than(value: &Value, max_depth: usize) -> Option<ValuePath> {
    // (value, its container depth counting itself, the index of the top-level item it is in)
    let mut stack = vec![(value, 0usize, None::<usize>)];
    while let Some((value, above, top)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Map(entries) => Box::new(entries.iter().flat_map(|(k, v)| [k, v])),
            _ => continue,
        };
        let depth = above + 1;
        if depth > max_depth {
            return Some(top.map(ValuePath::index).unwrap_or_default());
        }
        let top_level = matches!(value, Value::Array(_)) && above == 0;
        for (index, child) in children.enumerate() {
            let top = if top_level { Some(index) } else { top };
            stack.push((child, depth, top));
        }
    }
    None
}

/// Finds the first part of `value` (depth first) for which `found` says something, with its
/// path. `found` gets each value with its container depth (1 for the items of the top-level
/// container), and each map key with `is_key`.
fn find<T>(
    value: &Value,
    found: &mut dyn FnMut(&Value, usize, bool) -> Option<T>,
) -> Option<(ValuePath, T)> {
    fn walk<T>(
        value: &Value,
        depth: usize,
        path: &mut Vec<PathSegment>,
        found: &mut dyn FnMut(&Value, usize, bool) -> Option<T>,
    ) -> Option<T> {
        if let Some(hit) = found(value, depth, false) {
            return Some(hit);
        }
        match value {
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    path.push(PathSegment::Index(index));
                    if let Some(hit) = walk(item, depth + 1, path, found) {
                        return Some(hit);
                    }
                    path.pop();
                }
            }
            Value::Map(entries) => {
                for (key, item) in entries {
                    if let Some(hit) = found(key, depth + 1, true) {
                        return Some(hit);
                    }
                    path.push(match key.as_str() {
                        Some(text) => PathSegment::Key(text.to_owned()),
                        None => PathSegment::OtherKey(describe(key)),
                    });
                    if let Some(hit) = walk(item, depth + 1, path, found) {
                        return Some(hit);
                    }
                    path.pop();
                }
            }
            _ => {}
        }
        None
    }
    // The bytes were validated: decoding is bounded by the depth limit (no deep recursion).
    let mut path = Vec::new();
    walk(value, 0, &mut path, found).map(|hit| (ValuePath(path), hit))
}

fn locate_limit(bytes: &[u8], limit: &DecodeError, level: usize, limits: &Limits) -> ValuePath {
    let Ok(value) = decode_value(bytes) else {
        return ValuePath::default();
    };
    let located = find(&value, &mut |part, depth, _| {
        let hit = match (limit, part) {
            (DecodeError::StrBinTooLong { .. }, Value::String(s)) => {
                s.as_bytes().len() > limits.max_str_bin_len
            }
            (DecodeError::StrBinTooLong { .. }, Value::Binary(b)) => {
                b.len() > limits.max_str_bin_len
            }
            (DecodeError::TooManyItems { .. }, Value::Array(items)) => {
                items.len() > limits.max_items
            }
            (DecodeError::TooManyItems { .. }, Value::Map(entries)) => {
                entries.len() > limits.max_items
            }
            (DecodeError::TooDeep { .. }, Value::Array(_) | Value::Map(_)) => {
                level + depth + 1 > limits.max_depth
            }
            _ => false,
        };
        hit.then_some(())
    });
    located.map(|(at, ())| at).unwrap_or_default()
}

fn locate_non_string_key(bytes: &[u8]) -> EncodeError {
    let value = decode_value(bytes).unwrap_or(Value::Nil);
    let located = find(&value, &mut |part, _, is_key| {
        (is_key && !part.is_str()).then(|| describe(part))
    });
    let (at, key) = located.unwrap_or_else(|| (ValuePath::default(), "(unknown)".into()));
    EncodeError::NonStringKey { at, key }
}

fn locate_wide_integer(bytes: &[u8]) -> EncodeError {
    let value = decode_value(bytes).unwrap_or(Value::Nil);
    let located = find(&value, &mut |part, _, _| match part {
        Value::Integer(int) if int.as_i64().is_none() => int.as_u64(),
        _ => None,
    });
    let (at, value) = located.unwrap_or((ValuePath::default(), u64::MAX));
    EncodeError::WideInteger { at, value }
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

/// Replaces NaN and infinities with nil (the caller's scan found one).
fn sanitize_non_finite(buf: &[u8]) -> Vec<u8> {
    let Ok(mut value) = decode_value(buf) else {
        return buf.to_vec();
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
    fn a_slice_reads_the_same_whether_the_value_was_encoded_here_received_or_built_around_a_bin() {
        for len in [OWNED_MAX / 2, OWNED_MAX * 2, SHARED_BIN_MIN + 3] {
            slice_reads_the_same(len);
        }
    }

    fn slice_reads_the_same(len: usize) {
        let body = vec![7u8; len];
        let encoded = EncodedValue::encode(serde_bytes::Bytes::new(&body)).unwrap();
        let received = EncodedValue::from_bytes(
            Bytes::copy_from_slice(encoded.as_bytes()),
            &Limits::default(),
        )
        .unwrap();
        let built = EncodedValue::bin(Bytes::from(body.clone())).unwrap();
        let header = encoded.encoded_len() - body.len();
        let range = header..header + body.len();
        for value in [&encoded, &received, &built] {
            assert_eq!(value.as_bytes(), encoded.as_bytes());
            assert_eq!(value.shared_slice(range.clone()), body);
        }
        // A received value's slice is a view into it, not a copy; so is a large encoded one's.
        for value in [&received, &built] {
            let view = value.shared_slice(range.clone());
            assert_eq!(view.as_ptr(), value.as_bytes()[header..].as_ptr());
        }
        let view = encoded.shared_slice(range.clone());
        let shared = view.as_ptr() == encoded.as_bytes()[header..].as_ptr();
        assert_eq!(shared, encoded.encoded_len() >= OWNED_MAX, "{len} bytes");
    }

    #[test]
    fn a_large_bin_is_kept_apart_from_its_header_and_reads_as_one_value() {
        let body: Vec<u8> = (0..100_000).map(|i| (i % 251) as u8).collect();
        let mut expected = Vec::new();
        rmp::encode::write_bin(&mut expected, &body).unwrap();

        let shared = Bytes::from(body.clone());
        let at = shared.as_ptr();
        let value = EncodedValue::bin(shared).unwrap();
        let [header, tail] = value.pieces();
        assert_eq!(header, &expected[..5], "bin32 header only");
        assert_eq!(tail.as_ptr(), at, "the body is not copied");
        assert_eq!(tail, &body[..]);
        assert_eq!(value.encoded_len(), expected.len());
        assert_eq!(value.as_bytes(), &expected[..]);
        assert_eq!(
            value.decode::<serde_bytes::ByteBuf>().unwrap().as_ref(),
            &body[..]
        );
        assert!(!value.is_nil());
        let contiguous = EncodedValue::from_bytes(expected.clone().into(), &Limits::default());
        assert!(contiguous.unwrap() == value);
        assert!(value.check_sendable(1, &Limits::default(), false).is_ok());
    }

    #[test]
    fn a_small_bin_is_one_piece() {
        let value = EncodedValue::bin(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(value.pieces(), [&[0xc4, 3, b'a', b'b', b'c'][..], &[]]);
        assert_eq!(value.encoded_len(), 5);
        assert_eq!(
            EncodedValue::bin(Bytes::new()).unwrap().as_bytes(),
            [0xc4, 0]
        );
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

    /// A value nested `levels` deep that costs nothing to build or drop: only serializing it
    /// recurses.
    struct Nested(usize);

    impl Serialize for Nested {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            if self.0 == 0 {
                return serializer.serialize_none();
            }
            let mut seq = serializer.serialize_seq(Some(1))?;
            seq.serialize_element(&Nested(self.0 - 1))?;
            seq.end()
        }
    }

    /// Dismantles a deep dynamic value level by level: its own drop would recurse.
    fn drop_deep(mut value: Value) {
        while let Value::Array(mut items) = value {
            match items.pop() {
                Some(inner) => value = inner,
                None => return,
            }
        }
    }

    fn nested_value(levels: usize) -> Value {
        let mut value = Value::Nil;
        for _ in 0..levels {
            value = Value::Array(vec![value]);
        }
        value
    }

    #[test]
    fn a_value_nested_30000_deep_fails_to_encode_instead_of_overflowing_the_stack() {
        // The test thread has a 2 MiB stack, as tokio's workers do.
        let err = EncodedValue::encode(&(1, Nested(30_000))).unwrap_err();
        assert_eq!(
            err.in_arguments(),
            "argument 2: nesting exceeds the depth limit of 256 levels"
        );
        let deep = nested_value(30_000);
        let err = EncodedValue::from_value(&deep).unwrap_err();
        assert!(
            matches!(
                err,
                EncodeError::Limit {
                    limit: DecodeError::TooDeep { limit: 256 },
                    ..
                }
            ),
            "{err:?}"
        );
        let err = EncodedValue::encode(&deep).unwrap_err();
        assert!(err.to_string().contains("depth limit of 256"), "{err}");
        drop_deep(deep);
        // Exactly at the limit is fine, and the summary knows the depth.
        let at_limit = EncodedValue::encode(&Nested(256)).unwrap();
        assert_eq!(at_limit.summary().depth, 256);
        assert!(EncodedValue::encode(&Nested(257)).is_err());
    }

    #[test]
    fn option_and_newtype_chains_are_bounded_too() {
        // No array or map at all, but one recursion per level.
        struct Chain(usize);
        impl Serialize for Chain {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self.0 {
                    0 => serializer.serialize_unit(),
                    n => serializer.serialize_newtype_struct("Chain", &Some(Chain(n - 1))),
                }
            }
        }
        assert!(EncodedValue::encode(&Chain(100)).is_ok());
        let err = EncodedValue::encode(&Chain(100_000)).unwrap_err();
        assert!(err.to_string().contains("depth limit"), "{err}");
    }

    #[test]
    fn enum_variants_count_the_levels_their_encoding_has() {
        #[derive(Serialize)]
        enum Shape {
            Unit,
            Newtype(i64),
            Tuple(i64, i64),
            Struct { w: i64 },
        }
        for (shape, depth) in [
            (Shape::Unit, 0),
            (Shape::Newtype(1), 1),
            (Shape::Tuple(1, 2), 2),
            (Shape::Struct { w: 1 }, 2),
        ] {
            let encoded = EncodedValue::encode(&shape).unwrap();
            let value = encoded.to_value();
            assert_eq!(encoded.summary().depth, depth, "{value}");
        }
    }

    #[test]
    fn ext_values_still_encode() {
        let ext = Value::Ext(5, vec![1, 2, 3]);
        assert_eq!(EncodedValue::encode(&ext).unwrap().to_value(), ext);
        assert_eq!(EncodedValue::from_value(&ext).unwrap().to_value(), ext);
    }

    #[test]
    fn the_summary_flags_wide_integers_and_non_string_keys() {
        let plain = EncodedValue::encode(&(i64::MAX, "x", vec![1.5])).unwrap();
        assert_eq!(
            *plain.summary(),
            Summary {
                depth: 2,
                items: 3,
                str_bin_len: 1,
                ..Summary::default()
            }
        );
        assert!(
            EncodedValue::encode(&u64::MAX)
                .unwrap()
                .summary()
                .wide_integer
        );
        assert!(
            !EncodedValue::encode(&(i64::MAX as u64))
                .unwrap()
                .summary()
                .wide_integer
        );
        let int_keys = std::collections::BTreeMap::from([(1, "a")]);
        assert!(
            EncodedValue::encode(&int_keys)
                .unwrap()
                .summary()
                .non_string_key
        );
        // A str *value* in a map is not a key.
        let str_keys = std::collections::BTreeMap::from([("a", 1)]);
        assert!(
            !EncodedValue::encode(&str_keys)
                .unwrap()
                .summary()
                .non_string_key
        );
    }

    #[test]
    fn sending_names_where_a_value_breaks_the_contract() {
        let limits = Limits::default();
        let nested = Value::Map(vec![(
            Value::from("scores"),
            Value::Array(vec![Value::from(1), Value::from(u64::MAX)]),
        )]);
        let args = EncodedValue::from_value(&Value::Array(vec![Value::from(0), nested])).unwrap();
        let err = args.check_sendable(1, &limits, false).unwrap_err();
        assert_eq!(
            err,
            EncodeError::WideInteger {
                at: ValuePath(vec![
                    PathSegment::Index(1),
                    PathSegment::Key("scores".into()),
                    PathSegment::Index(1)
                ]),
                value: u64::MAX
            }
        );
        assert!(
            err.in_arguments().starts_with(
                "argument 2, at [\"scores\"][1]: integer 18446744073709551615 is outside i64"
            ),
            "{}",
            err.in_arguments()
        );
        assert!(args.check_sendable(1, &limits, true).is_ok());
        let keys = EncodedValue::from_value(&Value::Array(vec![Value::Map(vec![(
            Value::from(1),
            Value::from("a"),
        )])]))
        .unwrap();
        let err = keys.check_sendable(1, &limits, true).unwrap_err();
        assert!(
            err.in_arguments()
                .starts_with("argument 1: map key int 1 is not a string"),
            "{}",
            err.in_arguments()
        );
    }

    #[test]
    fn the_depth_limit_counts_where_the_value_sits() {
        let limits = Limits::default();
        // 255 levels: fine as `args` (level 2 to 256), one too many as a metadata value.
        let value = EncodedValue::encode(&Nested(255)).unwrap();
        assert!(value.check_sendable(1, &limits, false).is_ok());
        let err = value.check_sendable(2, &limits, false).unwrap_err();
        assert!(
            err.to_string().contains("depth limit of 256 levels"),
            "{err}"
        );
    }

    #[test]
    fn items_and_lengths_over_the_limits_fail_to_encode_naming_them() {
        let err = EncodedValue::encode(&(vec![0u8; 100_001],)).unwrap_err();
        assert_eq!(
            err.in_arguments(),
            "argument 1: array or map of 100001 items exceeds the limit of 100000 items"
        );
        let long = "x".repeat(Limits::DEFAULT_MAX_STR_BIN_LEN + 1);
        let err = EncodedValue::encode(&(1, &long)).unwrap_err();
        assert!(
            err.in_arguments()
                .starts_with("argument 2: str or bin of 10485761 bytes exceeds the limit"),
            "{}",
            err.in_arguments()
        );
    }

    #[test]
    fn decode_errors_quote_received_text_briefly() {
        #[derive(serde::Deserialize, Debug)]
        enum Mode {
            #[allow(dead_code)]
            Fast,
        }
        let long = "y".repeat(100_000);
        let err = EncodedValue::encode(&long)
            .unwrap()
            .decode::<Mode>()
            .unwrap_err();
        assert!(
            err.to_string().len() < 1000,
            "{} bytes",
            err.to_string().len()
        );
    }
}
