//! Hostile input over each limit: calls over a limit get an error reply naming it (the child
//! side, from a raw DEALER and through a parent), and replies over a limit or garbage fail only
//! their own call (the parent side, against a raw ROUTER standing in for the child).

mod support;

use std::time::Duration;

use bytes::Bytes;
use multifrost::protocol::{
    encode_error, encode_heartbeat_reply, encode_response, new_id, MessageKind, RawMessage,
};
use multifrost::{CallOptions, EncodedValue, Error, Limits, ParentWorker, Value};
use multifrost_fuzz_harness::payloads::{self as fuzzing, enc};
use serde_bytes::ByteBuf;
use support::raw_child::RawChild;
use zeromq::{RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

// ---------------------------------------------------------------------------------------------
// Over-limit calls: the child answers with an error naming the limit.

const TEN_MIB: usize = 10 * 1024 * 1024;

fn assert_refused(reply: &RawMessage, needle: &str) {
    assert_eq!(
        reply.kind,
        MessageKind::Error,
        "expected an error reply, got {:?}",
        reply.kind
    );
    let text = reply.error().unwrap_or("");
    assert!(
        text.contains(needle),
        "error {text:?} does not name the limit ({needle:?})"
    );
}

#[tokio::test]
async fn calls_over_a_limit_get_an_error_reply_naming_the_limit() {
    let mut child = RawChild::start().await;
    // str and bin: 10 MiB is the limit.
    let reply = child.call("echo", &[&fuzzing::big_str(TEN_MIB + 1)]).await;
    assert_refused(
        &reply,
        "str or bin of 10485761 bytes exceeds the limit of 10485760 bytes",
    );
    let reply = child.call("echo", &[&fuzzing::big_bin(TEN_MIB + 1)]).await;
    assert_refused(&reply, "exceeds the limit of 10485760 bytes");
    let reply = child.call("echo", &[&fuzzing::big_str(TEN_MIB)]).await;
    assert_eq!(
        reply.kind,
        MessageKind::Response,
        "exactly 10 MiB is allowed: {:?}",
        reply.error()
    );
    assert_eq!(reply.result().decode::<String>().unwrap().len(), TEN_MIB);
    // Arrays and maps: 100,000 items.
    let reply = child.call("echo", &[&fuzzing::big_array(100_001)]).await;
    assert_refused(
        &reply,
        "array or map of 100001 items exceeds the limit of 100000 items",
    );
    let reply = child
        .call("echo", &[&fuzzing::big_int_key_map(100_001)])
        .await;
    assert_refused(&reply, "exceeds the limit of 100000 items");
    let reply = child.call("echo", &[&fuzzing::big_array(100_000)]).await;
    assert_eq!(
        reply.kind,
        MessageKind::Response,
        "exactly 100,000 items is allowed: {:?}",
        reply.error()
    );
    // Depth: the message map is level 1 and `args` level 2, so an argument of 254 nested arrays
    // reaches the limit of 256 and one of 255 goes over it.
    let reply = child.call("echo", &[&fuzzing::nested(255)]).await;
    assert_refused(&reply, "nesting exceeds the depth limit of 256 levels");
    let reply = child.call("echo", &[&fuzzing::nested(100_000)]).await;
    assert_refused(&reply, "depth limit of 256 levels");
    let reply = child.call("echo", &[&fuzzing::nested(254)]).await;
    assert_eq!(
        reply.kind,
        MessageKind::Response,
        "depth 256 is allowed: {:?}",
        reply.error()
    );
    // The whole message: 64 MiB.
    let bin = fuzzing::big_bin(TEN_MIB);
    let reply = child
        .call("echo", &[&bin, &bin, &bin, &bin, &bin, &bin, &bin])
        .await;
    assert_refused(&reply, "exceeds the limit of 67108864 bytes");
    assert_eq!(child.add(20, 22).await, 42);
    child.finish().await;
}

#[tokio::test]
async fn an_over_limit_call_through_the_parent_fails_with_the_limit_named() {
    let worker = support::rust_worker();
    let handle = worker.handle();
    handle.start().await.expect("start");
    let err = handle
        .call_dyn::<Value>("echo", (ByteBuf::from(vec![1u8; TEN_MIB + 1]),))
        .await
        .unwrap_err();
    // The parent applies the receive limits before sending: nothing reaches the child.
    match &err {
        Error::Encode { reason, .. } => assert!(
            reason.contains(
                "argument 1: str or bin of 10485761 bytes exceeds the limit of 10485760 bytes"
            ),
            "{reason}"
        ),
        other => panic!("expected an encode error naming the limit, got {other:?}"),
    }
    assert_eq!(handle.call_dyn::<i64>("add", (20, 22)).await.unwrap(), 42);
    assert_eq!(handle.pending_calls(), 0);
    handle.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Over-limit and garbage replies: a raw ROUTER plays the child of a multifrost parent.

/// What the fake child answers to one call.
fn fake_child_replies(call: &RawMessage) -> Vec<Vec<u8>> {
    let id = call.id().unwrap_or_default().to_owned();
    let args = call.args().unwrap_or_default();
    let response_with = |raw: &[u8]| {
        encode_response(
            &id,
            &EncodedValue::from_bytes(
                raw.to_vec().into(),
                &Limits {
                    max_str_bin_len: usize::MAX,
                    max_items: usize::MAX,
                    max_depth: usize::MAX,
                    max_message_len: usize::MAX,
                },
            )
            .expect("valid msgpack"),
        )
    };
    match call.function().unwrap_or("") {
        "add" => {
            let a: i64 = args[0].decode().unwrap();
            let b: i64 = args[1].decode().unwrap();
            vec![encode_response(
                &id,
                &EncodedValue::encode(&(a + b)).unwrap(),
            )]
        }
        "over_str" => vec![response_with(&fuzzing::big_str(TEN_MIB + 1))],
        "over_bin" => vec![response_with(&fuzzing::big_bin(TEN_MIB + 1))],
        "over_items" => vec![response_with(&fuzzing::big_array(100_001))],
        "over_depth" => vec![response_with(&fuzzing::nested(300))],
        "over_error_text" => {
            // An error reply whose text is over the limit.
            let mut reply = fuzzing::raw_map(&[
                (&enc("app"), &enc("comlink_ipc_v4")),
                (&enc("id"), &enc(&id)),
                (&enc("type"), &enc("error")),
            ]);
            reply[0] += 1;
            reply.extend_from_slice(&enc("error"));
            reply.extend_from_slice(&fuzzing::big_str(TEN_MIB + 1));
            vec![reply]
        }
        "garbage_then_answer" => {
            let mut replies: Vec<Vec<u8>> = vec![
                vec![],
                vec![0xc1],
                b"not msgpack at all".to_vec(),
                enc(&[1, 2, 3]),
                fuzzing::call_with(&id, "add", &[&enc(&1)]),
                // Right id, wrong protocol: ignored.
                fuzzing::raw_map(&[
                    (&enc("app"), &enc("comlink_ipc_v3")),
                    (&enc("id"), &enc(&id)),
                    (&enc("type"), &enc("response")),
                    (&enc("result"), &enc(&-1)),
                ]),
                // A reply for a call nobody made.
                encode_response(&new_id(), &EncodedValue::encode(&-2).unwrap()),
                // Non-string id, int keys, odd values.
                fuzzing::raw_map(&[
                    (&enc("id"), &enc(&7)),
                    (&enc("type"), &enc("response")),
                    (&[0x01], &[0x02]),
                ]),
                fuzzing::raw_map(&[
                    (&enc("id"), &[0xa2, 0xff, 0xfe]),
                    (&enc("type"), &enc("response")),
                    (&enc("result"), &enc(&-3)),
                ]),
                fuzzing::raw_map(&[
                    (&enc("type"), &enc("stdout")),
                    (&enc("output"), &[0xa2, 0xff, 0xfe]),
                ]),
            ];
            let mut truncated = encode_response(&id, &EncodedValue::encode(&-4).unwrap());
            truncated.truncate(truncated.len() - 2);
            replies.push(truncated);
            replies.push(encode_response(
                &id,
                &EncodedValue::encode("the answer").unwrap(),
            ));
            replies
        }
        "broken_reply" => {
            // Only a truncated reply: nobody can tell which call it was for.
            let mut truncated = encode_response(&id, &EncodedValue::encode(&-5).unwrap());
            truncated.truncate(truncated.len() - 2);
            vec![truncated]
        }
        other => vec![encode_error(&id, &format!("Function '{other}' not found"))],
    }
}

/// A raw ROUTER bound on loopback that answers like `fake_child_replies`; returns its port.
async fn fake_child() -> u16 {
    let mut router = RouterSocket::new();
    let endpoint = router
        .bind("tcp://127.0.0.1:0")
        .await
        .expect("bind a ROUTER");
    let zeromq::Endpoint::Tcp(_, port) = endpoint else {
        panic!("not a tcp endpoint")
    };
    tokio::spawn(async move {
        while let Ok(message) = router.recv().await {
            let frames = message.into_vec();
            let routing = frames[0].clone();
            let payload = frames.last().cloned().unwrap_or_default();
            let Ok(message) = RawMessage::parse(payload, &Limits::default()) else {
                continue;
            };
            let replies = match message.kind {
                MessageKind::Heartbeat => vec![encode_heartbeat_reply(&message)],
                MessageKind::Call => fake_child_replies(&message),
                _ => continue,
            };
            for reply in replies {
                let mut out = ZmqMessage::from(routing.clone());
                out.push_back(Bytes::new());
                out.push_back(Bytes::from(reply));
                if router.send(out).await.is_err() {
                    return;
                }
            }
        }
    });
    port
}

#[tokio::test]
async fn replies_over_a_limit_fail_only_their_call_with_a_protocol_error() {
    let port = fake_child().await;
    let worker =
        ParentWorker::connect_endpoint(format!("tcp://127.0.0.1:{port}")).name("fake-child");
    let handle = worker.handle();
    handle
        .start()
        .await
        .expect("the parent connects to the fake child");
    let options = CallOptions::new().timeout(Duration::from_secs(30));
    for (function, needle) in [
        ("over_str", "exceeds the limit of 10485760 bytes"),
        ("over_bin", "exceeds the limit of 10485760 bytes"),
        ("over_items", "exceeds the limit of 100000 items"),
        ("over_depth", "depth limit of 256 levels"),
        ("over_error_text", "exceeds the limit of 10485760 bytes"),
    ] {
        let err = handle
            .call_dyn_with::<Value>(function, (), &options)
            .await
            .unwrap_err();
        match &err {
            Error::Protocol { reason, .. } => {
                assert!(reason.contains(needle), "{function}: {reason}")
            }
            other => panic!("{function}: expected a protocol error, got {other:?}"),
        }
        // The next call is unaffected.
        assert_eq!(
            handle
                .call_dyn_with::<i64>("add", (20, 22), &options)
                .await
                .unwrap(),
            42
        );
    }
    assert_eq!(handle.pending_calls(), 0);
    handle.stop().await;
}

#[tokio::test]
async fn the_parent_survives_garbage_replies_and_keeps_calling() {
    let port = fake_child().await;
    let worker =
        ParentWorker::connect_endpoint(format!("tcp://127.0.0.1:{port}")).name("fake-child");
    let handle = worker.handle();
    handle
        .start()
        .await
        .expect("the parent connects to the fake child");
    let options = CallOptions::new().timeout(Duration::from_secs(30));
    // Garbage, wrong protocol, strangers' ids and a truncated reply, then the real answer.
    for _ in 0..20 {
        let answer: String = handle
            .call_dyn_with("garbage_then_answer", (), &options)
            .await
            .unwrap();
        assert_eq!(answer, "the answer");
    }
    // A reply that does not parse cannot be matched to its call: that call times out.
    let short = CallOptions::new().timeout(Duration::from_millis(500));
    let err = handle
        .call_dyn_with::<Value>("broken_reply", (), &short)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(
        handle
            .call_dyn_with::<i64>("add", (20, 22), &options)
            .await
            .unwrap(),
        42
    );
    assert_eq!(handle.pending_calls(), 0);
    handle.heartbeat().await.expect("heartbeats still work");
    handle.stop().await;
}
