//! The messages of `comlink_ipc_v4`: parsing a received payload and encoding the ones we send.
//!
//! Parsing reads the top-level map once, keeps the known keys as byte ranges into the received
//! frame, and validates every value against [`Limits`]. Arguments and results stay encoded until
//! somebody asks for them as a type, so a reply is decoded straight into the caller's type.

use bytes::Bytes;
use rmpv::Value;
use std::ops::Range;
use std::time::{SystemTime, UNIX_EPOCH};

use super::limits::{read_header, skip_value, DecodeError, Header, Limits};
use super::value::{decode_value, EncodedValue};

/// The protocol id every message carries in `app`.
pub const APP_ID: &str = "comlink_ipc_v4";
/// The namespace a call has when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The `type` of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Call,
    Response,
    Error,
    Stdout,
    Stderr,
    Heartbeat,
    Shutdown,
    /// A type this implementation does not know; receivers ignore it.
    Unknown,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Call => "call",
            MessageKind::Response => "response",
            MessageKind::Error => "error",
            MessageKind::Stdout => "stdout",
            MessageKind::Stderr => "stderr",
            MessageKind::Heartbeat => "heartbeat",
            MessageKind::Shutdown => "shutdown",
            MessageKind::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> MessageKind {
        match text {
            "call" => MessageKind::Call,
            "response" => MessageKind::Response,
            "error" => MessageKind::Error,
            "stdout" => MessageKind::Stdout,
            "stderr" => MessageKind::Stderr,
            "heartbeat" => MessageKind::Heartbeat,
            "shutdown" => MessageKind::Shutdown,
            _ => MessageKind::Unknown,
        }
    }
}

/// A received message, validated, with its payload values still encoded.
#[derive(Debug, Clone)]
pub struct RawMessage {
    frame: Bytes,
    /// `app`, or `None` when absent (Python accepts a message without `app` as v4).
    pub app: Option<String>,
    pub id: Option<String>,
    pub kind: MessageKind,
    /// `type` as sent, when it was not one of the known kinds.
    pub kind_text: Option<String>,
    pub function: Option<String>,
    /// `namespace`: `None` when absent, `Some(None)` when nil.
    pub namespace: Option<Option<String>>,
    /// `client_name`, or Node's `clientName`.
    pub client_name: Option<String>,
    pub error: Option<String>,
    pub output: Option<String>,
    pub timestamp: Option<f64>,
    args: Option<Vec<Range<usize>>>,
    result: Option<Range<usize>>,
    metadata: Option<Range<usize>>,
    /// The first limit the message broke, if any. Structure errors fail the parse instead.
    pub violation: Option<DecodeError>,
}

impl RawMessage {
    /// Parses and validates one payload frame.
    pub fn parse(frame: Bytes, limits: &Limits) -> Result<RawMessage, DecodeError> {
        let mut message = RawMessage {
            frame: frame.clone(),
            app: None,
            id: None,
            kind: MessageKind::Unknown,
            kind_text: None,
            function: None,
            namespace: None,
            client_name: None,
            error: None,
            output: None,
            timestamp: None,
            args: None,
            result: None,
            metadata: None,
            violation: None,
        };
        if frame.len() > limits.max_message_len {
            message.violation = Some(DecodeError::MessageTooLarge {
                len: frame.len(),
                limit: limits.max_message_len,
            });
        }
        let buf = &frame[..];
        let mut pos = 0;
        let entries = match read_header(buf, &mut pos)? {
            Header::Container { children, items } if buf[0] & 0xf0 == 0x80 || buf[0] >= 0xde => {
                if items > limits.max_items {
                    return Err(DecodeError::TooManyItems {
                        len: items,
                        limit: limits.max_items,
                    });
                }
                children / 2
            }
            _ => {
                return Err(DecodeError::Unexpected(
                    "message payload is not a msgpack map".into(),
                ))
            }
        };
        for _ in 0..entries {
            let key_start = pos;
            let Some(key_end) = walk_entry(buf, pos, limits, &mut message.violation)? else {
                return Ok(message);
            };
            let value_start = key_end;
            let walked = walk_entry(buf, value_start, limits, &mut message.violation)?;
            let Some(value_end) = walked else {
                return Ok(message);
            };
            pos = value_end;
            let Some(key) = short_str(&buf[key_start..key_end]) else {
                continue; // Non-string keys at the top level mean nothing to us.
            };
            let span = value_start..value_end;
            let text = || text_at(buf, span.clone());
            match key {
                "app" => message.app = text(),
                "id" => message.id = text(),
                "type" => {
                    let kind_text = text().unwrap_or_default();
                    message.kind = MessageKind::parse(&kind_text);
                    if message.kind == MessageKind::Unknown {
                        message.kind_text = Some(kind_text);
                    }
                }
                "function" => message.function = text(),
                "namespace" => {
                    message.namespace = Some(if buf[value_start] == 0xc0 {
                        None
                    } else {
                        Some(text().unwrap_or_default())
                    })
                }
                "client_name" | "clientName" => message.client_name = text(),
                "error" => message.error = text(),
                "output" => message.output = text(),
                "timestamp" => message.timestamp = number_at(buf, span),
                "args" => message.args = Some(array_items(buf, span, limits)?),
                "result" => message.result = Some(span),
                "metadata" => message.metadata = Some(span),
                _ => {}
            }
        }
        if pos != buf.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(message)
    }

    /// True when the message is for this protocol version (a missing `app` counts, as in Python).
    pub fn is_current_protocol(&self) -> bool {
        self.app.as_deref().is_none_or(|app| app == APP_ID)
    }

    /// The encoded positional arguments of a call; `None` when `args` was absent.
    pub fn args(&self) -> Option<Vec<EncodedValue>> {
        self.args.as_ref().map(|spans| {
            spans
                .iter()
                .map(|span| EncodedValue::from_validated(self.frame.slice(span.clone())))
                .collect()
        })
    }

    /// The encoded result of a response; nil when the key was left out (Python does that for
    /// `None`).
    pub fn result(&self) -> EncodedValue {
        match &self.result {
            Some(span) => EncodedValue::from_validated(self.frame.slice(span.clone())),
            None => EncodedValue::nil(),
        }
    }

    /// The `metadata` map decoded as dynamic values, empty when absent or not a map.
    pub fn metadata(&self) -> Vec<(Value, Value)> {
        match self
            .metadata
            .as_ref()
            .map(|span| decode_value(&self.frame[span.clone()]))
        {
            Some(Ok(Value::Map(entries))) => entries,
            _ => Vec::new(),
        }
    }

    /// The raw encoded `metadata` value, for echoing it back unchanged.
    pub fn metadata_bytes(&self) -> Option<&[u8]> {
        self.metadata.as_ref().map(|span| &self.frame[span.clone()])
    }
}

/// Walks one top-level key or value; its end, or `None` when it nests deeper than the limit:
/// the scanner stops there, so the violation is recorded and the message keeps only the fields
/// read so far (every implementation writes `id` before `args` and `result`, so a child can still
/// answer such a call with an error naming the limit).
fn walk_entry(
    buf: &[u8],
    pos: usize,
    limits: &Limits,
    violation: &mut Option<DecodeError>,
) -> Result<Option<usize>, DecodeError> {
    match skip_value(buf, pos, 1, limits, violation) {
        Ok(end) => Ok(Some(end)),
        Err(too_deep @ DecodeError::TooDeep { .. }) => {
            violation.get_or_insert(too_deep);
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// A str of at most 255 bytes at the start of `bytes` (map keys), borrowed.
fn short_str(bytes: &[u8]) -> Option<&str> {
    let (len, start) = match *bytes.first()? {
        m @ 0xa0..=0xbf => ((m & 0x1f) as usize, 1),
        0xd9 => (*bytes.get(1)? as usize, 2),
        _ => return None,
    };
    std::str::from_utf8(bytes.get(start..start + len)?).ok()
}

fn text_at(buf: &[u8], span: Range<usize>) -> Option<String> {
    rmp::decode::read_str_from_slice(&buf[span])
        .ok()
        .map(|(text, _)| text.to_owned())
}

fn number_at(buf: &[u8], span: Range<usize>) -> Option<f64> {
    match decode_value(&buf[span]).ok()? {
        Value::F64(v) => Some(v),
        Value::F32(v) => Some(v as f64),
        Value::Integer(i) => i.as_f64(),
        _ => None,
    }
}

/// The byte ranges of the items of the array at `span`.
fn array_items(
    buf: &[u8],
    span: Range<usize>,
    limits: &Limits,
) -> Result<Vec<Range<usize>>, DecodeError> {
    let mut pos = span.start;
    let count = match (buf[pos], read_header(buf, &mut pos)?) {
        (0x90..=0x9f | 0xdc | 0xdd, Header::Container { items, .. }) => items,
        _ => {
            return Err(DecodeError::Unexpected(
                "'args' must be an array of positional arguments".into(),
            ))
        }
    };
    let mut items = Vec::with_capacity(count.min(limits.max_items));
    let mut ignored = None;
    for _ in 0..count {
        let end = skip_value(buf, pos, 2, limits, &mut ignored)?;
        items.push(pos..end);
        pos = end;
    }
    Ok(items)
}

/// Seconds since the Unix epoch, as every message's `timestamp`.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A fresh message id (UUID v4 text).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Builds an outgoing message map field by field, with the common keys first.
pub struct MessageWriter {
    buf: Vec<u8>,
}

impl MessageWriter {
    /// Starts a message with `app`, `id`, `type` and `timestamp`, and room for `extra` more keys.
    pub fn new(kind: MessageKind, id: &str, extra: u32, capacity: usize) -> MessageWriter {
        let mut buf = Vec::with_capacity(64 + id.len() + capacity);
        rmp::encode::write_map_len(&mut buf, 4 + extra).expect("Vec write");
        let mut writer = MessageWriter { buf };
        writer.str_field("app", APP_ID);
        writer.str_field("id", id);
        writer.str_field("type", kind.as_str());
        writer.key("timestamp");
        rmp::encode::write_f64(&mut writer.buf, unix_now()).expect("Vec write");
        writer
    }

    fn key(&mut self, key: &str) {
        rmp::encode::write_str(&mut self.buf, key).expect("Vec write");
    }

    /// Adds a str field.
    pub fn str_field(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        rmp::encode::write_str(&mut self.buf, value).expect("Vec write");
        self
    }

    /// Adds a field whose value is already encoded msgpack.
    pub fn raw_field(&mut self, key: &str, encoded: &[u8]) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(encoded);
        self
    }

    /// Adds an array field from already-encoded items.
    pub fn array_field<'a>(
        &mut self,
        key: &str,
        items: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> &mut Self {
        self.key(key);
        rmp::encode::write_array_len(&mut self.buf, items.len() as u32).expect("Vec write");
        for item in items {
            self.buf.extend_from_slice(item);
        }
        self
    }

    /// Adds a map field of str keys and already-encoded values.
    pub fn map_field<'a>(
        &mut self,
        key: &str,
        entries: impl ExactSizeIterator<Item = (&'a str, &'a [u8])>,
    ) -> &mut Self {
        self.key(key);
        rmp::encode::write_map_len(&mut self.buf, entries.len() as u32).expect("Vec write");
        for (k, v) in entries {
            rmp::encode::write_str(&mut self.buf, k).expect("Vec write");
            self.buf.extend_from_slice(v);
        }
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Encodes a `response` carrying an already-encoded result.
pub fn encode_response(id: &str, result: &EncodedValue) -> Vec<u8> {
    let mut writer = MessageWriter::new(MessageKind::Response, id, 1, result.as_bytes().len());
    writer.raw_field("result", result.as_bytes());
    writer.finish()
}

/// Encodes an `error` reply.
pub fn encode_error(id: &str, error: &str) -> Vec<u8> {
    let mut writer = MessageWriter::new(MessageKind::Error, id, 1, error.len());
    writer.str_field("error", error);
    writer.finish()
}

/// Encodes a `stdout` or `stderr` message.
pub fn encode_output(kind: MessageKind, output: &str) -> Vec<u8> {
    let mut writer = MessageWriter::new(kind, &new_id(), 1, output.len());
    writer.str_field("output", output);
    writer.finish()
}

/// Encodes a `shutdown` message.
pub fn encode_shutdown() -> Vec<u8> {
    MessageWriter::new(MessageKind::Shutdown, &new_id(), 0, 0).finish()
}

/// Encodes a parent's `heartbeat` with `metadata.hb_timestamp`.
pub fn encode_heartbeat(id: &str, sent_at: f64) -> Vec<u8> {
    let mut writer = MessageWriter::new(MessageKind::Heartbeat, id, 1, 32);
    let mut stamp = Vec::with_capacity(9);
    rmp::encode::write_f64(&mut stamp, sent_at).expect("Vec write");
    writer.map_field("metadata", [("hb_timestamp", &stamp[..])].into_iter());
    writer.finish()
}

/// Encodes a child's heartbeat answer: same id, the original metadata plus `hb_response: true`.
pub fn encode_heartbeat_reply(request: &RawMessage) -> Vec<u8> {
    let id = request.id.as_deref().unwrap_or("");
    let mut entries = request.metadata();
    entries.retain(|(k, _)| k.as_str() != Some("hb_response"));
    entries.push((Value::from("hb_response"), Value::Boolean(true)));
    let mut metadata = Vec::new();
    rmpv::encode::write_value(&mut metadata, &Value::Map(entries)).expect("Vec write");
    let mut writer = MessageWriter::new(MessageKind::Heartbeat, id, 1, metadata.len());
    writer.raw_field("metadata", &metadata);
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_python_response_without_result_means_nil() {
        // Only the common keys: app, id, type, timestamp.
        let bytes = MessageWriter::new(MessageKind::Response, "abc", 0, 0).finish();
        let message = RawMessage::parse(Bytes::from(bytes), &Limits::default()).unwrap();
        assert_eq!(message.kind, MessageKind::Response);
        assert!(message.result().is_nil());
    }

    #[test]
    fn a_call_round_trips_through_the_writer_and_parser() {
        let one = EncodedValue::encode(&1i64).unwrap();
        let text = EncodedValue::encode("x").unwrap();
        let mut writer = MessageWriter::new(MessageKind::Call, "id-1", 3, 16);
        writer.str_field("function", "add");
        writer.array_field("args", [one.as_bytes(), text.as_bytes()].into_iter());
        writer.str_field("clientName", "node");
        let message = RawMessage::parse(Bytes::from(writer.finish()), &Limits::default()).unwrap();
        assert_eq!(message.kind, MessageKind::Call);
        assert_eq!(message.id.as_deref(), Some("id-1"));
        assert_eq!(message.function.as_deref(), Some("add"));
        assert_eq!(message.client_name.as_deref(), Some("node"));
        let args = message.args().unwrap();
        assert_eq!(args.len(), 2);
        assert_eq!(args[1].decode::<String>().unwrap(), "x");
        assert!(message.is_current_protocol());
    }

    #[test]
    fn a_call_nested_too_deep_keeps_its_id_and_names_the_limit() {
        // Regression: the scan of a deep value used to walk every level (8 bytes of stack per
        // byte of input); it now stops at the limit and keeps the fields read before it.
        let mut writer = MessageWriter::new(MessageKind::Call, "deep-1", 2, 16);
        writer.str_field("function", "echo");
        let mut deep = vec![0x91u8; 1_000_000];
        deep.push(0xc0);
        writer.array_field("args", [&deep[..]].into_iter());
        let message = RawMessage::parse(Bytes::from(writer.finish()), &Limits::default()).unwrap();
        assert_eq!(message.id.as_deref(), Some("deep-1"));
        assert_eq!(message.kind, MessageKind::Call);
        assert_eq!(message.violation, Some(DecodeError::TooDeep { limit: 256 }));
    }

    #[test]
    fn a_payload_that_is_not_a_map_is_refused() {
        let err = RawMessage::parse(Bytes::from_static(&[0x93, 1, 2, 3]), &Limits::default());
        assert!(err.is_err());
    }
}
