//! Parsing a received `comlink_ipc_v4` message.
//!
//! Parsing reads the top-level map once, keeps the known keys as byte ranges into the received
//! frame, and validates every value against [`Limits`]. Arguments and results stay encoded until
//! somebody asks for them as a type, so a reply is decoded straight into the caller's type.

use bytes::Bytes;
use rmpv::Value;
use std::ops::Range;

use super::contract::APP_ID;
use super::limits::{read_header, skip_value, DecodeError, Header, Limits, Summary};
use super::value::{decode_value, EncodedValue};

/// The key of an `error` reply that carries the error as data beside its text: an extension of
/// this implementation, which v4 peers ignore (receivers ignore unknown keys).
pub const ERROR_DATA_KEY: &str = "error_data";

/// The `type` of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A call of a function (parent to child).
    Call,
    /// A call's result (child to parent).
    Response,
    /// A call's error (child to parent).
    Error,
    /// A line of the child's standard output.
    Stdout,
    /// A line of the child's standard error.
    Stderr,
    /// A liveness probe, and its echo (both directions).
    Heartbeat,
    /// A request to stop serving (parent to child).
    Shutdown,
    /// An extension of this implementation (v4 peers ignore it): the parent no longer waits
    /// for the call whose id the message carries.
    Cancel,
    /// A type this implementation does not know; receivers ignore it.
    Unknown,
}

impl MessageKind {
    /// The `type` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Call => "call",
            MessageKind::Response => "response",
            MessageKind::Error => "error",
            MessageKind::Stdout => "stdout",
            MessageKind::Stderr => "stderr",
            MessageKind::Heartbeat => "heartbeat",
            MessageKind::Shutdown => "shutdown",
            MessageKind::Cancel => "cancel",
            MessageKind::Unknown => "unknown",
        }
    }

    fn parse(text: &[u8]) -> MessageKind {
        match text {
            b"call" => MessageKind::Call,
            b"response" => MessageKind::Response,
            b"error" => MessageKind::Error,
            b"stdout" => MessageKind::Stdout,
            b"stderr" => MessageKind::Stderr,
            b"heartbeat" => MessageKind::Heartbeat,
            b"shutdown" => MessageKind::Shutdown,
            b"cancel" => MessageKind::Cancel,
            _ => MessageKind::Unknown,
        }
    }
}

/// Where a field is in a message's frame. Its offsets are u32, not usize: a reply is moved
/// several times on its way to its call, and usize ranges made a message 328 bytes instead of
/// 232. A frame of 4 GiB or more is too large for any peer (see [`RawMessage::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// `None` for a range that ends past the first 4 GiB of a frame.
    fn new(range: Range<usize>) -> Option<Span> {
        Some(Span {
            start: range.start.try_into().ok()?,
            end: range.end.try_into().ok()?,
        })
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// The largest frame whose every field a [`Span`] can hold.
const MAX_FRAME_LEN: usize = u32::MAX as usize;

/// A received message, validated, with its payload values still encoded.
#[derive(Debug, Clone)]
pub struct RawMessage {
    frame: Bytes,
    /// Whether `app` is this protocol's, or absent (Python accepts a message without `app`
    /// as v4).
    current_protocol: bool,
    /// The text fields, as spans of their str's bytes in `frame`, checked for UTF-8 when read
    /// (see their accessors): most are read about once, so checking at the parse too would do
    /// it twice. A message whose texts are read more than once checks them all at once first
    /// ([`check_texts`](Self::check_texts)).
    id: Option<Span>,
    /// `type`.
    pub kind: MessageKind,
    function: Option<Span>,
    /// `None` when absent, `Some(None)` when nil.
    namespace: Option<Option<Span>>,
    client_name: Option<Span>,
    error: Option<Span>,
    output: Option<Span>,
    /// Where the arguments are (past the array's header), and how many: walked and checked
    /// in the parse, split into values when asked for (no list of them kept per message).
    args: Option<(Span, u32)>,
    result: Option<(Span, Summary)>,
    error_data: Option<(Span, Summary)>,
    metadata: Option<(Span, Summary)>,
    /// The first limit the message broke, if any. Structure errors fail the parse instead.
    pub violation: Option<DecodeError>,
    /// Whether every text span is known to be valid UTF-8 (see `check_texts`).
    texts_checked: bool,
}

impl RawMessage {
    /// Parses and validates one payload frame. A frame over `limits.max_message_len`, or of
    /// 4 GiB or more whatever the limit, is a violation (its fields past the first 4 GiB are
    /// left out: the message is only answered with the violation).
    pub fn parse(frame: Bytes, limits: &Limits) -> Result<RawMessage, DecodeError> {
        let mut message = RawMessage {
            frame: frame.clone(),
            current_protocol: true,
            id: None,
            kind: MessageKind::Unknown,
            function: None,
            namespace: None,
            client_name: None,
            error: None,
            output: None,
            args: None,
            result: None,
            error_data: None,
            metadata: None,
            violation: None,
            texts_checked: false,
        };
        let limit = limits.max_message_len.min(MAX_FRAME_LEN);
        if frame.len() > limit {
            message.violation = Some(DecodeError::MessageTooLarge {
                len: frame.len(),
                limit,
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
            // A fixstr key within the str limit is read without a walk; any other is walked,
            // which records what it finds. Keys are compared as bytes: every key we know is
            // ASCII, so a key that is not UTF-8 matches none of them, as after a UTF-8 check.
            let fixstr = fixstr_at(buf, pos).filter(|text| text.len() <= limits.max_str_bin_len);
            let (key, key_end) = match fixstr {
                Some(text) => (Some(&buf[text.clone()]), text.end),
                None => {
                    let walked = walk_entry(
                        buf,
                        pos,
                        limits,
                        &mut message.violation,
                        &mut Summary::default(),
                    )?;
                    let Some(key_end) = walked else {
                        return Ok(message);
                    };
                    (str_bytes(&buf[pos..key_end]), key_end)
                }
            };
            let value_start = key_end;
            if key == Some(b"args") {
                let Some((items, end)) = array_items(buf, value_start, limits, &mut message)?
                else {
                    return Ok(message);
                };
                message.args = items;
                pos = end;
                continue;
            }
            let mut summary = Summary::default();
            let walked = walk_entry(
                buf,
                value_start,
                limits,
                &mut message.violation,
                &mut summary,
            )?;
            let Some(value_end) = walked else {
                return Ok(message);
            };
            pos = value_end;
            let Some(key) = key else {
                continue; // Non-string keys at the top level mean nothing to us.
            };
            let span = value_start..value_end;
            let text = || str_at(buf, span.clone()).and_then(Span::new);
            let value = || Some((Span::new(span.clone())?, summary));
            match key {
                b"app" => {
                    message.current_protocol = str_bytes(&buf[span]) == Some(APP_ID.as_bytes())
                }
                b"id" => message.id = text(),
                b"type" => {
                    message.kind =
                        str_bytes(&buf[span]).map_or(MessageKind::Unknown, MessageKind::parse)
                }
                b"function" => message.function = text(),
                b"namespace" => {
                    message.namespace = Some(if buf[value_start] == 0xc0 {
                        None
                    } else {
                        text().or(Span::new(value_end..value_end))
                    })
                }
                b"client_name" | b"clientName" => message.client_name = text(),
                b"error" => message.error = text(),
                b"output" => message.output = text(),
                b"result" => message.result = value(),
                b"metadata" => message.metadata = value(),
                key if key == ERROR_DATA_KEY.as_bytes() => message.error_data = value(),
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
        self.current_protocol
    }

    /// The text at `span` of the frame, if the field was a str of valid UTF-8.
    fn text(&self, span: &Option<Span>) -> Option<&str> {
        let bytes = &self.frame[span.as_ref()?.range()];
        if self.texts_checked {
            // SAFETY: `check_texts` found these bytes valid UTF-8, and neither the frame nor
            // the spans change after it.
            Some(unsafe { std::str::from_utf8_unchecked(bytes) })
        } else {
            std::str::from_utf8(bytes).ok()
        }
    }

    /// Checks every text field for UTF-8 now, so that reading them later checks nothing: for
    /// a message whose fields are read several times (a call the child admits, then builds).
    /// A field that is not valid UTF-8 reads as before: absent, or the empty namespace.
    pub(crate) fn check_texts(&mut self) {
        let frame = &self.frame;
        let valid = |span: &Span| std::str::from_utf8(&frame[span.range()]).is_ok();
        for field in [
            &mut self.id,
            &mut self.function,
            &mut self.client_name,
            &mut self.error,
            &mut self.output,
        ] {
            if field.as_ref().is_some_and(|span| !valid(span)) {
                *field = None;
            }
        }
        if let Some(Some(span)) = &mut self.namespace {
            if !valid(span) {
                span.end = span.start;
            }
        }
        self.texts_checked = true;
    }

    /// `id`: the message's own, or that of the call a reply answers. Like every text field,
    /// `None` when absent or not a str of valid UTF-8.
    pub fn id(&self) -> Option<&str> {
        self.text(&self.id)
    }

    /// The bytes of the `id` str, not checked for UTF-8: for comparing with ids of our own.
    pub(crate) fn id_bytes(&self) -> Option<&[u8]> {
        Some(&self.frame[self.id?.range()])
    }

    /// `function`, in a call.
    pub fn function(&self) -> Option<&str> {
        self.text(&self.function)
    }

    /// `namespace`: `None` when absent, `Some(None)` when nil (a value of another type reads as
    /// the empty namespace).
    pub fn namespace(&self) -> Option<Option<&str>> {
        self.namespace
            .as_ref()
            .map(|span| span.is_some().then(|| self.text(span).unwrap_or("")))
    }

    /// `client_name`, or Node's `clientName`.
    pub fn client_name(&self) -> Option<&str> {
        self.text(&self.client_name)
    }

    /// `error`, in an error reply.
    pub fn error(&self) -> Option<&str> {
        self.text(&self.error)
    }

    /// `output`, in a stdout or stderr message.
    pub fn output(&self) -> Option<&str> {
        self.text(&self.output)
    }

    /// The encoded positional arguments of a call; `None` when `args` was absent, or when it
    /// ends past the first 4 GiB of the frame (a frame that large is refused as too large).
    pub fn args(&self) -> Option<Vec<EncodedValue>> {
        // The parse walked these bytes within the receive limits, so this walk, under none,
        // ends each item where that one did and finds what it found.
        const WALKED: Limits = Limits {
            max_str_bin_len: usize::MAX,
            max_items: usize::MAX,
            max_depth: usize::MAX,
            max_message_len: usize::MAX,
        };
        let (items, count) = self.args?;
        let mut pos = items.start as usize;
        let mut args = Vec::with_capacity((count as usize).min(Limits::DEFAULT_MAX_ITEMS));
        for _ in 0..count {
            let mut summary = Summary::default();
            let end = skip_value(&self.frame, pos, 2, &WALKED, &mut None, &mut summary).ok()?;
            args.push(EncodedValue::from_validated(
                self.frame.slice(pos..end),
                summary,
            ));
            pos = end;
        }
        Some(args)
    }

    /// The encoded result of a response; nil when the key was left out (Python does that for
    /// `None`).
    pub fn result(&self) -> EncodedValue {
        match &self.result {
            Some((span, summary)) => {
                EncodedValue::from_validated(self.frame.slice(span.range()), *summary)
            }
            None => EncodedValue::nil(),
        }
    }

    /// The error data of an `error` reply (the `error_data` extension), if it has any.
    pub fn error_data(&self) -> Option<EncodedValue> {
        let (span, summary) = self.error_data.as_ref()?;
        Some(EncodedValue::from_validated(
            self.frame.slice(span.range()),
            *summary,
        ))
    }

    /// The `metadata` map decoded as dynamic values, empty when absent or not a map.
    pub fn metadata(&self) -> Vec<(Value, Value)> {
        match self
            .metadata
            .as_ref()
            .map(|(span, _)| decode_value(&self.frame[span.range()]))
        {
            Some(Ok(Value::Map(entries))) => entries,
            _ => Vec::new(),
        }
    }

    /// The encoded value under `key` in the `metadata` map, read from the frame without
    /// decoding the rest.
    pub fn metadata_entry(&self, key: &str) -> Option<&[u8]> {
        map_entry(self.metadata_bytes()?, key)
    }

    /// The raw encoded `metadata` value, for echoing it back unchanged.
    pub fn metadata_bytes(&self) -> Option<&[u8]> {
        self.metadata
            .as_ref()
            .map(|(span, _)| &self.frame[span.range()])
    }

    /// The `metadata` value still encoded, with what its scan found; `None` when absent.
    pub(crate) fn metadata_value(&self) -> Option<EncodedValue> {
        self.metadata.as_ref().map(|(span, summary)| {
            EncodedValue::from_validated(self.frame.slice(span.range()), *summary)
        })
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
    summary: &mut Summary,
) -> Result<Option<usize>, DecodeError> {
    match skip_value(buf, pos, 1, limits, violation, summary) {
        Ok(end) => Ok(Some(end)),
        Err(too_deep @ DecodeError::TooDeep { .. }) => {
            violation.get_or_insert(too_deep);
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// The encoded value under the str key `key` in the already validated msgpack map `map`, found
/// by skipping over the entries before it.
pub(crate) fn map_entry<'a>(map: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let mut pos = 0;
    if !matches!(map.first()?, 0x80..=0x8f | 0xde | 0xdf) {
        return None;
    }
    let Header::Container { items, .. } = read_header(map, &mut pos).ok()? else {
        return None;
    };
    let limits = Limits::default();
    let skip =
        |pos: usize| skip_value(map, pos, 1, &limits, &mut None, &mut Summary::default()).ok();
    for _ in 0..items {
        let key_end = skip(pos)?;
        let value_end = skip(key_end)?;
        // Compared as bytes: equal to a str, they are its UTF-8.
        if str_bytes(&map[pos..key_end]) == Some(key.as_bytes()) {
            return Some(&map[key_end..value_end]);
        }
        pos = value_end;
    }
    None
}

/// The str encoded in `value`, if it is one.
pub(crate) fn as_str(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(&value[whole_str(value)?]).ok()
}

/// The number encoded in `value` as f64, if it is a float or an integer.
pub(crate) fn as_f64(value: &[u8]) -> Option<f64> {
    // A float64, as every implementation sends a deadline or a timestamp.
    if let [0xcb, b0, b1, b2, b3, b4, b5, b6, b7] = *value {
        return Some(f64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]));
    }
    let mut at = value;
    match rmpv::decode::read_value_ref(&mut at).ok()? {
        rmpv::ValueRef::F64(v) => Some(v),
        rmpv::ValueRef::F32(v) => Some(f64::from(v)),
        rmpv::ValueRef::Integer(i) => i.as_f64(),
        _ => None,
    }
}

/// Where the bytes of the fixstr at `pos` are, if there is one and it is all there: nearly
/// every str of a message (its keys, `app`, `id`, `type`), read from its marker alone.
#[inline(always)]
fn fixstr_at(buf: &[u8], pos: usize) -> Option<Range<usize>> {
    let marker = *buf.get(pos)?;
    if !matches!(marker, 0xa0..=0xbf) {
        return None;
    }
    let end = pos + 1 + (marker & 0x1f) as usize;
    (end <= buf.len()).then_some(pos + 1..end)
}

/// The bytes of the str at the start of `bytes` (map keys, `app`, `type`), in any of the str
/// formats, borrowed and not checked for UTF-8: only compared with known ASCII words.
fn str_bytes(bytes: &[u8]) -> Option<&[u8]> {
    bytes.get(str_range(bytes)?)
}

/// Where the bytes of the str at the start of `bytes` are (any str format), if it is one and
/// is all there.
#[inline]
fn str_range(bytes: &[u8]) -> Option<Range<usize>> {
    if let Some(text) = fixstr_at(bytes, 0) {
        return Some(text);
    }
    if !matches!(bytes.first()?, 0xd9..=0xdb) {
        return None;
    }
    let mut start = 0;
    let Ok(Header::Leaf { skip }) = read_header(bytes, &mut start) else {
        return None;
    };
    let end = start.checked_add(skip).filter(|&end| end <= bytes.len())?;
    Some(start..end)
}

/// Where the bytes of the str `value` are, if it is a str with nothing after it (not checked
/// for UTF-8).
fn whole_str(value: &[u8]) -> Option<Range<usize>> {
    str_range(value).filter(|text| text.end == value.len())
}

/// Where the bytes of the str value at `span` are, if it is a str, all of it (their UTF-8 is
/// checked when the field is read).
fn str_at(buf: &[u8], span: Range<usize>) -> Option<Range<usize>> {
    let text = whole_str(&buf[span.clone()])?;
    Some(span.start + text.start..span.start + text.end)
}

/// The items of the `args` array starting at `start`, walked and checked: where they are and
/// how many (`None` past the first 4 GiB of a frame, which is refused as too large), and the
/// position past the array; `None` when an item nests deeper than the limit (recorded in the
/// message's violation, as [`walk_entry`] does).
#[allow(clippy::type_complexity)]
fn array_items(
    buf: &[u8],
    start: usize,
    limits: &Limits,
    message: &mut RawMessage,
) -> Result<Option<(Option<(Span, u32)>, usize)>, DecodeError> {
    let mut pos = start;
    let marker = *buf.get(pos).ok_or(DecodeError::Truncated)?;
    let count = match (marker, read_header(buf, &mut pos)?) {
        (0x90..=0x9f | 0xdc | 0xdd, Header::Container { items, .. }) => items,
        _ => {
            return Err(DecodeError::Unexpected(
                "'args' must be an array of positional arguments".into(),
            ))
        }
    };
    if count > limits.max_items {
        message.violation.get_or_insert(DecodeError::TooManyItems {
            len: count,
            limit: limits.max_items,
        });
    }
    // Every item takes at least one byte: a larger count is a lie.
    if count > buf.len() - pos {
        return Err(DecodeError::Truncated);
    }
    if limits.max_depth < 2 {
        message.violation.get_or_insert(DecodeError::TooDeep {
            limit: limits.max_depth,
        });
        return Ok(None);
    }
    let items_start = pos;
    for _ in 0..count {
        let mut summary = Summary::default();
        match skip_value(buf, pos, 2, limits, &mut message.violation, &mut summary) {
            Ok(end) => pos = end,
            Err(too_deep @ DecodeError::TooDeep { .. }) => {
                message.violation.get_or_insert(too_deep);
                return Ok(None);
            }
            Err(other) => return Err(other),
        }
    }
    let items = Span::new(items_start..pos).zip(u32::try_from(count).ok());
    Ok(Some((items, pos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map of str keys and already-encoded values.
    fn message(entries: &[(&[u8], &[u8])]) -> Bytes {
        let mut buf = Vec::new();
        rmp::encode::write_map_len(&mut buf, entries.len() as u32).unwrap();
        for (key, value) in entries {
            buf.extend_from_slice(key);
            buf.extend_from_slice(value);
        }
        Bytes::from(buf)
    }

    #[test]
    fn a_span_holds_any_range_inside_the_first_4_gib() {
        let last = u32::MAX as usize;
        let span = Span::new(7..last).expect("inside");
        assert_eq!(span.range(), 7..last);
        assert_eq!(Span::new(last..last + 1), None);
        assert_eq!(Span::new(0..last + 1), None);
        // What it is for: a reply is moved several times on its way to its call.
        assert!(std::mem::size_of::<RawMessage>() <= 232);
    }

    #[test]
    fn each_argument_is_its_own_value_with_what_the_walk_found_in_it() {
        // args: [1, {1: 2}, "x", [[]]], then another key after them.
        let args: &[u8] = &[0x94, 0x01, 0x81, 0x01, 0x02, 0xa1, b'x', 0x91, 0x90];
        let frame = message(&[(b"\xa4args", args), (b"\xa2id", b"\xa1z")]);
        let parsed = RawMessage::parse(frame, &Limits::default()).unwrap();
        assert_eq!(parsed.id(), Some("z"));
        let args = parsed.args().expect("args");
        let bytes: Vec<&[u8]> = args.iter().map(EncodedValue::as_bytes).collect();
        assert_eq!(
            bytes,
            [
                &[0x01][..],
                &[0x81, 0x01, 0x02],
                &[0xa1, b'x'],
                &[0x91, 0x90]
            ]
        );
        let keys: Vec<bool> = args.iter().map(|a| a.summary().non_string_key).collect();
        assert_eq!(keys, [false, true, false, false]);
        assert_eq!(args[2].summary().str_bin_len, 1);
        assert_eq!(args[3].summary().depth, 2);
        // No args key: none; an empty array: no arguments.
        let none = RawMessage::parse(message(&[(b"\xa2id", b"\xa1z")]), &Limits::default());
        assert!(none.unwrap().args().is_none());
        let empty = RawMessage::parse(message(&[(b"\xa4args", &[0x90])]), &Limits::default());
        assert_eq!(empty.unwrap().args().map(|a| a.len()), Some(0));
    }

    fn str16(text: &str) -> Vec<u8> {
        let mut buf = vec![0xda];
        buf.extend_from_slice(&(text.len() as u16).to_be_bytes());
        buf.extend_from_slice(text.as_bytes());
        buf
    }

    fn fixstr(text: &str) -> Vec<u8> {
        let mut buf = Vec::new();
        rmp::encode::write_str(&mut buf, text).unwrap();
        buf
    }

    #[test]
    fn a_value_is_a_str_or_a_number_only_when_it_is_all_there() {
        assert_eq!(as_str(&[0xa2, b'o', b'k']), Some("ok"));
        assert_eq!(as_str(&[0xd9, 2, b'o', b'k']), Some("ok"));
        assert_eq!(
            as_str(&[0xa2, b'o', b'k', 0xc0]),
            None,
            "something after it"
        );
        assert_eq!(as_str(&[0xa3, b'o', b'k']), None, "cut short");
        assert_eq!(as_str(&[0xa2, 0xff, 0xfe]), None, "not UTF-8");
        assert_eq!(as_str(&[0x01]), None);
        let mut float = vec![0xcb];
        float.extend(1.5f64.to_be_bytes());
        assert_eq!(as_f64(&float), Some(1.5));
        assert_eq!(as_f64(&float[..8]), None, "cut short");
        let mut single = vec![0xca];
        single.extend(2.5f32.to_be_bytes());
        assert_eq!(as_f64(&single), Some(2.5));
        assert_eq!(as_f64(&[0x07]), Some(7.0));
        assert_eq!(as_f64(&[0xa1, b'x']), None);
    }

    #[test]
    fn keys_and_words_in_any_str_format_are_read() {
        let frame = message(&[
            (&str16("app"), &str16(APP_ID)),
            (&fixstr("type"), &str16("call")),
            (&str16("id"), &fixstr("abc")),
        ]);
        let parsed = RawMessage::parse(frame, &Limits::default()).unwrap();
        assert!(parsed.is_current_protocol());
        assert_eq!(parsed.kind, MessageKind::Call);
        assert_eq!(parsed.id(), Some("abc"));
    }

    #[test]
    fn a_key_that_is_not_utf8_is_ignored_and_a_text_field_that_is_not_is_dropped() {
        let frame = message(&[
            (&[0xa2, 0xff, 0xfe], &fixstr("ignored")),
            (&fixstr("id"), &[0xa2, 0xff, 0xfe]),
            (&fixstr("type"), &fixstr("response")),
            (&fixstr("app"), &fixstr("comlink_ipc_v3")),
        ]);
        let parsed = RawMessage::parse(frame, &Limits::default()).unwrap();
        assert_eq!(parsed.id(), None);
        assert_eq!(
            parsed.id_bytes(),
            Some(&[0xff, 0xfe][..]),
            "its bytes, unchecked"
        );
        assert_eq!(parsed.kind, MessageKind::Response);
        assert!(!parsed.is_current_protocol());
        // A field that is not a str has no bytes either; a namespace that is not UTF-8 reads as
        // the empty one, as one of another type does.
        let frame = message(&[
            (&fixstr("id"), &[0x07]),
            (&fixstr("function"), &[0xa2, 0xc3, 0x28]),
            (&fixstr("namespace"), &[0xa1, 0x80]),
        ]);
        let parsed = RawMessage::parse(frame, &Limits::default()).unwrap();
        assert_eq!((parsed.id(), parsed.id_bytes()), (None, None));
        assert_eq!(parsed.function(), None);
        assert_eq!(parsed.namespace(), Some(Some("")));
    }

    #[test]
    fn texts_checked_at_once_read_as_texts_checked_when_read() {
        let frame = message(&[
            (&fixstr("id"), &fixstr("call-1")),
            (&fixstr("function"), &[0xa2, 0xc3, 0x28]),
            (&fixstr("namespace"), &[0xa1, 0x80]),
            (&fixstr("client_name"), &fixstr("ok")),
            (&fixstr("error"), &[0xa1, 0xff]),
            (&fixstr("output"), &fixstr("line")),
        ]);
        let when_read = RawMessage::parse(frame.clone(), &Limits::default()).unwrap();
        let mut at_once = RawMessage::parse(frame, &Limits::default()).unwrap();
        at_once.check_texts();
        for message in [&when_read, &at_once] {
            assert_eq!(message.id(), Some("call-1"));
            assert_eq!(message.function(), None);
            assert_eq!(message.namespace(), Some(Some("")));
            assert_eq!(message.client_name(), Some("ok"));
            assert_eq!(message.error(), None);
            assert_eq!(message.output(), Some("line"));
        }
        let nil_namespace = message(&[(&fixstr("namespace"), &[0xc0])]);
        let mut nil = RawMessage::parse(nil_namespace, &Limits::default()).unwrap();
        nil.check_texts();
        assert_eq!(nil.namespace(), Some(None));
    }
}
