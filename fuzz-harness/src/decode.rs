//! The `decode_message` target: `RawMessage::parse` on arbitrary bytes, then every accessor and
//! a few typed decodes, checking the invariants that tie them together.

use std::collections::HashMap;

use multifrost::protocol::{encode_heartbeat_reply, RawMessage};
use multifrost::{EncodedValue, Limits, Value};

use crate::SMALL_LIMITS;

#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
pub(crate) struct Point {
    pub x: i64,
    pub y: f64,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
enum Shape {
    Circle(f64),
    Rect { w: i64, h: i64 },
    Empty,
}

/// Decodes one value into a handful of types; none may panic, whatever the bytes.
pub(crate) fn typed_decodes(value: &EncodedValue) {
    let dynamic = value.to_value();
    let _ = multifrost::protocol::describe(&dynamic);
    let _ = value.decode::<Value>();
    let _ = value.decode::<i64>();
    let _ = value.decode::<u64>();
    let _ = value.decode::<i8>();
    let _ = value.decode::<f64>();
    let _ = value.decode::<f32>();
    let _ = value.decode::<bool>();
    let _ = value.decode::<String>();
    let _ = value.decode::<char>();
    let _ = value.decode::<serde_bytes::ByteBuf>();
    let _ = value.decode::<Option<i64>>();
    let _ = value.decode::<Vec<i64>>();
    let _ = value.decode::<Vec<String>>();
    let _ = value.decode::<(i64, String)>();
    let _ = value.decode::<HashMap<String, Value>>();
    let _ = value.decode::<Point>();
    let _ = value.decode::<Shape>();
    let _ = value.decode::<()>();
    // Re-encoding a decoded value gives bytes that validate (NaN/Inf become nil on the way),
    // or fails with the limit it breaks.
    match EncodedValue::from_value(&dynamic) {
        Ok(again) => {
            let checked =
                EncodedValue::from_bytes(again.as_bytes().to_vec().into(), &Limits::default());
            assert!(
                checked.is_ok(),
                "a re-encoded value fails validation: {checked:?}"
            );
        }
        Err(err) => assert!(
            matches!(err, multifrost::protocol::EncodeError::Limit { .. }),
            "re-encoding fails for another reason than a limit: {err:?}"
        ),
    }
    // Error texts (they embed previews of the received value) render without panicking.
    if let Err(error) = value.decode::<(i64, i64)>() {
        let _ = error.to_string();
    }
}

/// `RawMessage::parse` and everything a receiver then reads from the message.
pub fn decode_message(data: &[u8]) {
    for limits in [Limits::default(), SMALL_LIMITS] {
        let Ok(message) = RawMessage::parse(data.to_vec().into(), &limits) else {
            continue;
        };
        let _ = message.is_current_protocol();
        let _ = message.kind.as_str();
        if let Some(violation) = &message.violation {
            assert!(
                violation.is_limit(),
                "a violation that is not a limit: {violation:?}"
            );
            let _ = violation.to_string();
        }
        let _ = message.metadata();
        let _ = message.metadata_bytes();
        let clean = message.violation.is_none();
        for arg in message.args().unwrap_or_default() {
            // A value inside a message that broke no limit validates on its own.
            let alone = EncodedValue::from_bytes(arg.as_bytes().to_vec().into(), &limits);
            if clean {
                assert!(
                    alone.is_ok(),
                    "an argument of a clean message fails on its own: {alone:?}"
                );
            }
            typed_decodes(&arg);
        }
        let result = message.result();
        if clean {
            let alone = EncodedValue::from_bytes(result.as_bytes().to_vec().into(), &limits);
            assert!(
                alone.is_ok(),
                "the result of a clean message fails on its own: {alone:?}"
            );
        }
        typed_decodes(&result);
        // What a child answers to a heartbeat must parse back, with the same id.
        let reply = encode_heartbeat_reply(&message);
        let parsed = RawMessage::parse(reply.into(), &Limits::default());
        let parsed = parsed.expect("a heartbeat reply we encoded parses back");
        assert_eq!(parsed.id().unwrap_or(""), message.id().unwrap_or(""));
    }
}
