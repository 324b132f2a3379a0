//! Every message this implementation sends, built field by field straight into one buffer:
//! the common keys first (`app`, `id`, `type`, `timestamp`), then the message's own.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmpv::Value;

use super::contract::{
    APP_ID, AUTH_TOKEN_KEY, DEADLINE_KEY, HB_RESPONSE_KEY, HB_TIMESTAMP_KEY, TIMESTAMP_SENT_KEY,
};
use super::message::{MessageKind, RawMessage, ERROR_DATA_KEY};
use super::value::{quote, EncodedValue};

/// The longest error text a reply carries, in bytes: far below the 10 MiB that every receiver
/// takes for one str, however long the error a worker returned (a longer text is cut).
pub const MAX_ERROR_TEXT: usize = 1024 * 1024;

/// Seconds since the Unix epoch, as every message's `timestamp`.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Unix seconds at `instant` (now or a moment ago), from a wall-clock reading this thread took
/// less than a second earlier with the monotonic time beside it: a call reads the clock once
/// for its local deadline and its message's timestamps. A step of the wall clock (NTP) shows
/// within a second.
pub(crate) fn unix_at(instant: Instant) -> f64 {
    thread_local! {
        static ANCHOR: Cell<Option<(Instant, f64)>> = const { Cell::new(None) };
    }
    ANCHOR.with(|anchor| {
        // One subtraction of instants (their arithmetic is not cheap), for the test and the sum.
        let since = anchor
            .get()
            .and_then(|(at, unix)| Some((unix, instant.checked_duration_since(at)?)));
        match since {
            Some((unix, since)) if since < Duration::from_secs(1) => unix + since.as_secs_f64(),
            _ => {
                let unix = unix_now();
                let at = Instant::now();
                anchor.set(Some((at, unix)));
                unix - at.saturating_duration_since(instant).as_secs_f64()
            }
        }
    })
}

/// A fresh message id (UUID v4 text).
pub fn new_id() -> String {
    MessageId::new().as_str().to_owned()
}

/// A fresh message id (UUID v4 text, as [`new_id`]) kept in place, not in a `String`.
#[derive(Clone, Copy)]
pub(crate) struct MessageId([u8; uuid::fmt::Hyphenated::LENGTH]);

impl MessageId {
    pub fn new() -> MessageId {
        MessageId::text(uuid::Uuid::new_v4())
    }

    /// A fresh id that carries `tag`, which [`tag_of`](Self::tag_of) reads back from its text.
    /// It is still a random UUID v4: its last 32 bits (eight hex digits) are `tag` XOR its
    /// first 32, which are random, so each id on its own is as random as [`new`](Self::new)'s.
    pub fn tagged(tag: u32) -> MessageId {
        let mut bytes = *uuid::Uuid::new_v4().as_bytes();
        let mask = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
        bytes[12..].copy_from_slice(&(tag ^ mask).to_be_bytes());
        MessageId::text(uuid::Uuid::from_bytes(bytes))
    }

    fn text(uuid: uuid::Uuid) -> MessageId {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid.hyphenated().encode_lower(&mut text);
        MessageId(text)
    }

    /// The tag of an id made by [`tagged`](Self::tagged). For any other id it is a number of
    /// no meaning: whoever looks it up compares the whole id too.
    pub fn tag_of(id: &[u8; 36]) -> u32 {
        let digits = |at: usize| hex_u32(id[at..at + 8].try_into().expect("8 digits"));
        digits(0) ^ digits(28)
    }

    pub fn as_bytes(&self) -> &[u8; 36] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a UUID's text is ASCII")
    }
}

/// Eight lowercase hex digits as a number, all at once in a word: a digit's low four bits,
/// plus 9 for a letter (bit 6 set). Other characters give a number of no meaning.
fn hex_u32(digits: [u8; 8]) -> u32 {
    const LOW: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let word = u64::from_be_bytes(digits);
    // One nibble per byte, the first digit in the top byte; then bytes packed pairwise.
    let nibbles = ((word & LOW) + 9 * ((word >> 6) & ONES)) & LOW;
    let pairs = (nibbles | nibbles >> 4) & 0x00ff_00ff_00ff_00ff;
    let quads = (pairs | pairs >> 8) & 0x0000_ffff_0000_ffff;
    (quads | quads >> 16) as u32
}

/// Appends `text` as a msgpack str in its shortest format (as `rmp::encode::write_str` does,
/// without its generic writer).
#[inline]
fn put_str(buf: &mut Vec<u8>, text: &str) {
    let len = text.len();
    match len {
        0..=31 => buf.push(0xa0 | len as u8),
        32..=0xff => buf.extend_from_slice(&[0xd9, len as u8]),
        0x100..=0xffff => {
            buf.push(0xda);
            buf.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            buf.push(0xdb);
            buf.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
    buf.extend_from_slice(text.as_bytes());
}

/// The encoded size of a str of `len` bytes.
fn str_size(len: usize) -> usize {
    len + match len {
        0..=31 => 1,
        32..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    }
}

/// The encoded size of a map header announcing `entries` entries.
fn map_header_size(entries: u32) -> usize {
    match entries {
        0..=15 => 1,
        16..=0xffff => 3,
        _ => 5,
    }
}

/// The encoded size of a str field (key and value).
fn str_field_size(key: &str, value: &str) -> usize {
    str_size(key.len()) + str_size(value.len())
}

/// The encoded size of a float64.
const F64_SIZE: usize = 9;

/// Appends `value` as a msgpack float64.
#[inline]
fn put_f64(buf: &mut Vec<u8>, value: f64) {
    buf.push(0xcb);
    buf.extend_from_slice(&value.to_bits().to_be_bytes());
}

/// Builds an outgoing message map field by field, with the common keys first.
pub struct MessageWriter {
    buf: Vec<u8>,
}

impl MessageWriter {
    /// Starts a message with `app`, `id`, `type` and `timestamp`, announcing `extra` more keys,
    /// with room for `capacity` more bytes: the extra keys and their values. A message that
    /// outgrows its buffer is copied into one twice its size; one that fills it exactly becomes
    /// a frame without an allocation of its own (`Bytes::from` a full `Vec`).
    pub fn new(kind: MessageKind, id: &str, extra: u32, capacity: usize) -> MessageWriter {
        MessageWriter::new_at(kind, id, extra, capacity, unix_now())
    }

    /// [`new`](Self::new), with `timestamp` (Unix seconds) the time read by the caller.
    fn new_at(
        kind: MessageKind,
        id: &str,
        extra: u32,
        capacity: usize,
        timestamp: f64,
    ) -> MessageWriter {
        let common = map_header_size(4 + extra)
            + str_field_size("app", APP_ID)
            + str_field_size("id", id)
            + str_field_size("type", kind.as_str())
            + str_size("timestamp".len())
            + F64_SIZE;
        let mut buf = Vec::with_capacity(common + capacity);
        rmp::encode::write_map_len(&mut buf, 4 + extra).expect("Vec write");
        let mut writer = MessageWriter { buf };
        writer.str_field("app", APP_ID);
        writer.str_field("id", id);
        writer.str_field("type", kind.as_str());
        writer.key("timestamp");
        put_f64(&mut writer.buf, timestamp);
        writer
    }

    fn key(&mut self, key: &str) {
        put_str(&mut self.buf, key);
    }

    /// Adds a str field.
    pub fn str_field(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        put_str(&mut self.buf, value);
        self
    }

    /// Adds a field whose value is already encoded msgpack.
    pub fn raw_field(&mut self, key: &str, encoded: &[u8]) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(encoded);
        self
    }

    /// Adds a field holding an encoded value, written from the pieces it is kept in.
    pub fn value_field(&mut self, key: &str, value: &EncodedValue) -> &mut Self {
        self.key(key);
        for piece in value.pieces() {
            self.buf.extend_from_slice(piece);
        }
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
            put_str(&mut self.buf, k);
            self.buf.extend_from_slice(v);
        }
        self
    }

    /// The encoded message.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Encodes a `response` carrying an already-encoded result.
pub fn encode_response(id: &str, result: &EncodedValue) -> Vec<u8> {
    let capacity = str_size("result".len()) + result.encoded_len();
    let mut writer = MessageWriter::new(MessageKind::Response, id, 1, capacity);
    writer.value_field("result", result);
    writer.finish()
}

/// Encodes an `error` reply; a text over [`MAX_ERROR_TEXT`] is cut, so the reply stays within
/// what the caller accepts.
pub fn encode_error(id: &str, error: &str) -> Vec<u8> {
    encode_error_with_data(id, error, None)
}

/// Encodes an `error` reply, with the error as data beside its text when there is some
/// (`error_data`, an extension that v4 peers ignore).
pub fn encode_error_with_data(id: &str, error: &str, data: Option<&EncodedValue>) -> Vec<u8> {
    let error = quote(error, MAX_ERROR_TEXT);
    let data_len = data.map_or(0, |data| {
        str_size(ERROR_DATA_KEY.len()) + data.encoded_len()
    });
    let extra = 1 + u32::from(data.is_some());
    let capacity = str_field_size("error", &error) + data_len;
    let mut writer = MessageWriter::new(MessageKind::Error, id, extra, capacity);
    writer.str_field("error", &error);
    if let Some(data) = data {
        writer.value_field(ERROR_DATA_KEY, data);
    }
    writer.finish()
}

/// Encodes a `stdout` or `stderr` message.
pub fn encode_output(kind: MessageKind, output: &str) -> Vec<u8> {
    let capacity = str_field_size("output", output);
    let mut writer = MessageWriter::new(kind, &new_id(), 1, capacity);
    writer.str_field("output", output);
    writer.finish()
}

/// Encodes a `shutdown` message, with `metadata.auth_token` when the child requires a token (a
/// child with a token ignores a shutdown without it, like any call without it).
pub fn encode_shutdown(auth_token: Option<&EncodedValue>) -> Vec<u8> {
    match auth_token {
        None => MessageWriter::new(MessageKind::Shutdown, &new_id(), 0, 0).finish(),
        Some(token) => {
            let mut writer = MessageWriter::new(MessageKind::Shutdown, &new_id(), 1, 64);
            writer.map_field("metadata", [(AUTH_TOKEN_KEY, token.as_bytes())].into_iter());
            writer.finish()
        }
    }
}

/// Encodes a `cancel` (an extension that v4 peers ignore) for the call `id`: the parent stopped
/// waiting for it. Carries `metadata.auth_token` when the parent has a token.
pub fn encode_cancel(id: &str, auth_token: Option<&EncodedValue>) -> Vec<u8> {
    let extra = u32::from(auth_token.is_some());
    let mut writer = MessageWriter::new(MessageKind::Cancel, id, extra, 32);
    if let Some(token) = auth_token {
        writer.map_field("metadata", [(AUTH_TOKEN_KEY, token.as_bytes())].into_iter());
    }
    writer.finish()
}

/// Encodes a parent's `heartbeat` with `metadata.hb_timestamp`.
pub fn encode_heartbeat(id: &str, sent_at: f64) -> Vec<u8> {
    let mut writer = MessageWriter::new(MessageKind::Heartbeat, id, 1, 32);
    let mut stamp = Vec::with_capacity(9);
    rmp::encode::write_f64(&mut stamp, sent_at).expect("Vec write");
    writer.map_field("metadata", [(HB_TIMESTAMP_KEY, &stamp[..])].into_iter());
    writer.finish()
}

/// Encodes a child's heartbeat answer: same id, the original metadata plus `hb_response: true`.
pub fn encode_heartbeat_reply(request: &RawMessage) -> Vec<u8> {
    let id = request.id().unwrap_or("");
    let mut entries = request.metadata();
    entries.retain(|(k, _)| k.as_str() != Some(HB_RESPONSE_KEY));
    entries.push((Value::from(HB_RESPONSE_KEY), Value::Boolean(true)));
    let mut metadata = Vec::new();
    rmpv::encode::write_value(&mut metadata, &Value::Map(entries)).expect("Vec write");
    let capacity = str_size("metadata".len()) + metadata.len();
    let mut writer = MessageWriter::new(MessageKind::Heartbeat, id, 1, capacity);
    writer.raw_field("metadata", &metadata);
    writer.finish()
}

/// The fields of an outgoing `call`, borrowed from the caller.
pub struct OutgoingCall<'a> {
    /// The call's id (UUID v4 text).
    pub id: &'a str,
    /// The function to call.
    pub function: &'a str,
    /// The positional arguments: one encoded msgpack array (or nil, for none).
    pub args: &'a EncodedValue,
    /// The namespace to call in.
    pub namespace: &'a str,
    /// The `client_name` the worker sees, if any.
    pub client_name: Option<&'a str>,
    /// How long the caller waits, sent as `metadata.deadline` in Unix seconds.
    pub timeout: Option<std::time::Duration>,
    /// User metadata entries, values already encoded.
    pub metadata: &'a [(String, EncodedValue)],
    /// Sent as `metadata.auth_token` when set.
    pub auth_token: Option<&'a EncodedValue>,
}

impl OutgoingCall<'_> {
    /// Encodes the `call` message, timestamped now. Arguments that are not an array (or nil)
    /// go out as they are: the caller checks them first.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_at(unix_now())
    }

    /// [`encode`](Self::encode), with `now` (Unix seconds) the time read by the caller: the
    /// message's `timestamp` and `metadata.timestamp_sent`, and the start of `timeout`.
    pub fn encode_at(&self, now: f64) -> Vec<u8> {
        let args = match self.args.as_bytes() {
            [0xc0] => &[0x90][..],
            bytes => bytes,
        };
        let extra = 4 + self.client_name.is_some() as u32;
        let entries = 1
            + u32::from(self.timeout.is_some())
            + self.metadata.len() as u32
            + u32::from(self.auth_token.is_some());
        // The exact size, so that the frame made of it needs no allocation of its own.
        let metadata_len = map_header_size(entries)
            + str_size(TIMESTAMP_SENT_KEY.len())
            + F64_SIZE
            + self
                .timeout
                .map_or(0, |_| str_size(DEADLINE_KEY.len()) + F64_SIZE)
            + self
                .metadata
                .iter()
                .map(|(key, value)| str_size(key.len()) + value.encoded_len())
                .sum::<usize>()
            + self.auth_token.map_or(0, |token| {
                str_size(AUTH_TOKEN_KEY.len()) + token.encoded_len()
            });
        let capacity = str_field_size("function", self.function)
            + str_size("args".len())
            + args.len()
            + str_field_size("namespace", self.namespace)
            + self
                .client_name
                .map_or(0, |name| str_field_size("client_name", name))
            + str_size("metadata".len())
            + metadata_len;
        let mut writer = MessageWriter::new_at(MessageKind::Call, self.id, extra, capacity, now);
        writer.str_field("function", self.function);
        writer.raw_field("args", args);
        writer.str_field("namespace", self.namespace);
        if let Some(name) = self.client_name {
            writer.str_field("client_name", name);
        }
        // metadata: timestamp_sent, the deadline, the user's entries and the token, written in
        // place.
        writer.key("metadata");
        let buf = &mut writer.buf;
        rmp::encode::write_map_len(buf, entries).expect("Vec write");
        put_str(buf, TIMESTAMP_SENT_KEY);
        put_f64(buf, now);
        if let Some(limit) = self.timeout {
            put_str(buf, DEADLINE_KEY);
            put_f64(buf, now + limit.as_secs_f64());
        }
        for (key, value) in self.metadata {
            put_str(buf, key);
            for piece in value.pieces() {
                buf.extend_from_slice(piece);
            }
        }
        if let Some(token) = self.auth_token {
            put_str(buf, AUTH_TOKEN_KEY);
            buf.extend_from_slice(token.as_bytes());
        }
        writer.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DecodeError, Limits};
    use bytes::Bytes;

    /// True when `message` was written into the buffer its writer started with: the estimates
    /// leave a few bytes of slack, while a buffer that grew by small writes doubled (each of
    /// these messages is over 100 bytes).
    fn fitted(message: &[u8], capacity: usize) -> bool {
        capacity <= message.len() + 64
    }

    #[test]
    fn a_tagged_id_is_uuid_v4_text_that_gives_its_tag_back() {
        let mut seen = std::collections::HashSet::new();
        for tag in [0, 1, 0xf, 0x1234_abcd, u32::MAX]
            .into_iter()
            .chain(0..1000)
        {
            let id = MessageId::tagged(tag);
            let uuid = uuid::Uuid::parse_str(id.as_str()).expect("UUID text");
            assert_eq!(uuid.get_version_num(), 4, "{}", id.as_str());
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(id.as_str(), uuid.hyphenated().to_string(), "lowercase");
            assert_eq!(MessageId::tag_of(&id.0), tag);
            assert!(seen.insert(id.0), "ids of one tag differ");
        }
        assert_eq!(
            MessageId::tag_of(b"ffffffff-0000-4000-8000-0000ffffffff"),
            0
        );
        assert_eq!(
            MessageId::tag_of(b"00000000-0000-4000-8000-00000123abcd"),
            0x0123_abcd
        );
        for value in [0, 9, 10, 0xdead_beef, u32::MAX] {
            let digits: [u8; 8] = format!("{value:08x}").into_bytes().try_into().unwrap();
            assert_eq!(hex_u32(digits), value);
        }
    }

    #[test]
    fn unix_at_agrees_with_the_wall_clock() {
        let earlier = Instant::now() - Duration::from_millis(250);
        for _ in 0..2 {
            // The first round anchors this thread; the second reads from the anchor.
            let before = unix_now();
            let now = unix_at(Instant::now());
            let after = unix_now();
            assert!(
                before - 0.01 <= now && now <= after + 0.01,
                "{before} {now} {after}"
            );
            let then = unix_at(earlier);
            assert!(
                (now - then - 0.25).abs() < 0.05,
                "a quarter second earlier: {}",
                now - then
            );
        }
    }

    #[test]
    fn every_message_fits_the_buffer_it_was_started_in() {
        let id = new_id();
        let small = EncodedValue::encode(&3i64).unwrap();
        let text = EncodedValue::encode(&"x".repeat(300)).unwrap();
        for result in [&small, &text] {
            let message = encode_response(&id, result);
            assert_eq!(
                message.len(),
                message.capacity(),
                "a response fills its buffer"
            );
            let message = encode_error_with_data(&id, "it failed", Some(result));
            assert!(fitted(&message, message.capacity()), "error with data");
        }
        let message = encode_error(&id, &"e".repeat(70_000));
        assert!(fitted(&message, message.capacity()), "long error");
        let message = encode_output(MessageKind::Stdout, "a line");
        assert!(fitted(&message, message.capacity()), "output");
        let metadata = [("trace".to_owned(), small.clone())];
        let call = OutgoingCall {
            id: &id,
            function: "add",
            args: &EncodedValue::encode(&(1, 2)).unwrap(),
            namespace: "default",
            client_name: Some("bench"),
            timeout: Some(std::time::Duration::from_secs(5)),
            metadata: &metadata,
            auth_token: Some(&text),
        };
        let message = call.encode();
        assert_eq!(message.len(), message.capacity(), "a call fills its buffer");
        let bare = OutgoingCall {
            client_name: None,
            timeout: None,
            metadata: &[],
            auth_token: None,
            ..call
        };
        let message = bare.encode();
        assert_eq!(
            message.len(),
            message.capacity(),
            "a bare call fills its buffer"
        );
    }

    #[test]
    fn strs_and_floats_are_written_as_rmp_writes_them() {
        for len in [0, 1, 31, 32, 255, 256, 65_535, 65_536] {
            let text = "x".repeat(len);
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            put_str(&mut ours, &text);
            rmp::encode::write_str(&mut theirs, &text).unwrap();
            assert!(ours == theirs, "a str of {len} bytes");
        }
        for value in [0.0, -1.5, f64::MAX, f64::NAN] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            put_f64(&mut ours, value);
            rmp::encode::write_f64(&mut theirs, value).unwrap();
            assert_eq!(ours, theirs);
        }
    }

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
        assert_eq!(message.id(), Some("id-1"));
        assert_eq!(message.function(), Some("add"));
        assert_eq!(message.client_name(), Some("node"));
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
        assert_eq!(message.id(), Some("deep-1"));
        assert_eq!(message.kind, MessageKind::Call);
        assert_eq!(message.violation, Some(DecodeError::TooDeep { limit: 256 }));
    }

    #[test]
    fn an_error_reply_carries_its_data_beside_the_text() {
        let data = EncodedValue::encode(&("DivideByZero", 7)).unwrap();
        let bytes = encode_error_with_data("e-1", "cannot divide", Some(&data));
        let message = RawMessage::parse(Bytes::from(bytes), &Limits::default()).unwrap();
        assert_eq!(message.kind, MessageKind::Error);
        assert_eq!(message.error(), Some("cannot divide"));
        assert_eq!(message.error_data(), Some(data));
        let plain = encode_error("e-2", "cannot divide");
        let message = RawMessage::parse(Bytes::from(plain), &Limits::default()).unwrap();
        assert_eq!(message.error_data(), None);
    }

    #[test]
    fn a_payload_that_is_not_a_map_is_refused() {
        let err = RawMessage::parse(Bytes::from_static(&[0x93, 1, 2, 3]), &Limits::default());
        assert!(err.is_err());
    }
}
