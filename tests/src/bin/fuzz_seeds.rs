//! Writes the fuzz seed corpus (fuzz/seeds/): real messages captured on the wire.
//!
//! ```text
//! fuzz_seeds <out-dir> [<python> <comlink_peer.py>]
//! ```
//!
//! - `rust_parent_*`: what multifrost's parent sends (heartbeats, calls with ints, floats, bins,
//!   nested values, options), captured by a raw ROUTER it is connected to.
//! - `rust_child_*`: what the Rust child (hand_worker) answers to those calls and to failing ones
//!   (responses, errors, heartbeat replies, stdout), captured by a raw DEALER.
//! - `python_child_*`: the same calls answered by the Python peer, when a python is given.
//! - `hostile_*`: calls carrying values no Rust encoder sends (NaN, u64 above i64, ext types,
//!   integer keys, invalid UTF-8, deep nesting, values over small limits).
//!
//! `scripts/fuzz.sh` runs it when fuzz/seeds/ is empty; the files it wrote are kept in the repo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use multifrost::protocol::{
    encode_error, encode_heartbeat, encode_heartbeat_reply, encode_response, new_id, MessageKind,
    RawMessage,
};
use multifrost::{CallOptions, Limits, ParentWorker, Value};
use serde_bytes::ByteBuf;
use zeromq::{DealerSocket, RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use multifrost_fuzz_harness::payloads as fuzzing;

#[derive(serde::Serialize)]
struct Point {
    x: i64,
    y: f64,
    label: Option<String>,
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(format!("{name}.msgpack")), bytes).expect("writing a seed");
}

/// Captures what multifrost's parent sends, answering like an echo worker.
async fn capture_parent() -> Vec<Vec<u8>> {
    let mut router = RouterSocket::new();
    let endpoint = router.bind("tcp://127.0.0.1:0").await.expect("bind");
    let port = match endpoint {
        zeromq::Endpoint::Tcp(_, port) => port,
        other => panic!("unexpected endpoint {other}"),
    };
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let server = tokio::spawn(async move {
        loop {
            let Ok(message) = router.recv().await else {
                return;
            };
            let frames = message.into_vec();
            let routing = frames[0].clone();
            let payload = frames.last().cloned().unwrap_or_default();
            let _ = sent_tx.send(payload.to_vec());
            let Ok(parsed) = RawMessage::parse(payload, &Limits::default()) else {
                continue;
            };
            let reply = match parsed.kind {
                MessageKind::Heartbeat => encode_heartbeat_reply(&parsed),
                MessageKind::Call => {
                    let id = parsed.id().unwrap_or_default().to_owned();
                    match parsed.args().unwrap_or_default().into_iter().next() {
                        Some(first) => encode_response(&id, &first),
                        None => encode_error(&id, "no argument"),
                    }
                }
                _ => continue,
            };
            let mut out = ZmqMessage::from(routing);
            out.push_back(Bytes::new());
            out.push_back(Bytes::from(reply));
            if router.send(out).await.is_err() {
                return;
            }
        }
    });
    let worker =
        ParentWorker::connect_endpoint(format!("tcp://127.0.0.1:{port}")).name("seed-capture");
    let handle = worker.handle();
    handle.start().await.expect("parent start");
    let opts = CallOptions::new();
    let _: Value = handle.call_dyn("add", (1, 2)).await.expect("call");
    let _: Value = handle.call_dyn("add", (1.5, -2.25)).await.expect("call");
    let _: Value = handle
        .call_dyn("echo", (i64::MIN, u64::MAX))
        .await
        .expect("call");
    let _: Value = handle
        .call_dyn("echo", (ByteBuf::from(vec![0u8, 1, 2, 255]),))
        .await
        .expect("call");
    let _: Value = handle
        .call_dyn("echo", ("héllo wörld",))
        .await
        .expect("call");
    let _: Value = handle
        .call_dyn(
            "echo",
            (
                vec![vec![1, 2], vec![3]],
                BTreeMap::from([("a", 1.0), ("b", f64::NAN)]),
            ),
        )
        .await
        .expect("call");
    let _: Value = handle
        .call_dyn(
            "echo",
            (Point {
                x: 3,
                y: 4.5,
                label: None,
            },),
        )
        .await
        .expect("call");
    let _: Value = handle
        .call_dyn("echo", (Option::<i64>::None, true, ()))
        .await
        .expect("call");
    let _: Value = handle
        .call_dyn_with(
            "echo",
            (42,),
            &opts
                .clone()
                .timeout(Duration::from_secs(5))
                .client_name("seeds")
                .correlation_id("corr-1")
                .metadata("user", vec!["x", "y"]),
        )
        .await
        .expect("call");
    let _: Result<Value, _> = handle
        .call_dyn_with(
            "echo",
            (1,),
            &opts
                .clone()
                .namespace("other")
                .timeout(Duration::from_secs(5)),
        )
        .await;
    let _ = handle.heartbeat().await;
    handle.stop().await;
    server.abort();
    let mut sent = Vec::new();
    while let Ok(payload) = sent_rx.try_recv() {
        sent.push(payload);
    }
    sent
}

/// Sends `calls` to a child started with COMLINK_ZMQ_PORT on a raw DEALER, returns its replies.
async fn capture_child(program: &Path, args: &[&str], calls: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut dealer = DealerSocket::new();
    let endpoint = dealer.bind("tcp://127.0.0.1:0").await.expect("bind");
    let port = match endpoint {
        zeromq::Endpoint::Tcp(_, port) => port,
        other => panic!("unexpected endpoint {other}"),
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("COMLINK_ZMQ_PORT", port.to_string())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn child");
    // Readiness: a heartbeat sent until it comes back.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut replies = Vec::new();
    'ready: loop {
        assert!(
            Instant::now() < deadline,
            "child never answered a heartbeat"
        );
        let id = new_id();
        let mut hb = ZmqMessage::from(Bytes::new());
        hb.push_back(Bytes::from(encode_heartbeat(
            &id,
            multifrost::protocol::unix_now(),
        )));
        if dealer.send(hb).await.is_ok() {
            if let Ok(Ok(reply)) =
                tokio::time::timeout(Duration::from_millis(200), dealer.recv()).await
            {
                replies.push(reply.into_vec().pop().unwrap_or_default().to_vec());
                break 'ready;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for call in calls {
        let mut message = ZmqMessage::from(Bytes::new());
        message.push_back(Bytes::from(call.clone()));
        dealer.send(message).await.expect("send");
    }
    // Collect until nothing more arrives for a while (errors and output included).
    while let Ok(Ok(reply)) = tokio::time::timeout(Duration::from_millis(1500), dealer.recv()).await
    {
        replies.push(reply.into_vec().pop().unwrap_or_default().to_vec());
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    replies
}

fn child_calls(parent_calls: &[Vec<u8>]) -> Vec<Vec<u8>> {
    use fuzzing::*;
    let mut calls: Vec<Vec<u8>> = parent_calls
        .iter()
        .filter(|p| {
            RawMessage::parse(Bytes::from((*p).clone()), &Limits::default())
                .is_ok_and(|m| m.kind == MessageKind::Call)
        })
        .cloned()
        .collect();
    let one = enc(&1);
    calls.push(call_with(&new_id(), "add", &[&enc(&20), &enc(&22)]));
    calls.push(call_with(&new_id(), "divide", &[&one, &enc(&0)]));
    calls.push(call_with(&new_id(), "throw_error", &[&enc("deliberate")]));
    calls.push(call_with(&new_id(), "no_such_function", &[]));
    calls.push(call_with(&new_id(), "_private", &[]));
    calls.push(call_with(&new_id(), "add", &[&enc("x"), &one]));
    calls.push(call_with(&new_id(), "add", &[&one]));
    calls.push(call_with(&new_id(), "large_data", &[&enc(&20)]));
    calls.push(call_with(&new_id(), "get_info", &[]));
    calls.push(call_with(&new_id(), "get_metadata", &[]));
    calls.push(call_with(
        &new_id(),
        "print_line",
        &[&enc("a line of output")],
    ));
    calls.push(call_with(
        &new_id(),
        "echo",
        &[&enc(&ByteBuf::from(vec![9u8; 300]))],
    ));
    calls.push(call_with(&new_id(), "factorial", &[&enc(&25)]));
    calls
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(
        args.get(1)
            .expect("usage: fuzz_seeds <out-dir> [<python> <peer.py>]"),
    );
    std::fs::create_dir_all(&out).expect("out dir");

    let parent_sent = capture_parent().await;
    for (i, payload) in parent_sent.iter().enumerate() {
        write(&out, &format!("rust_parent_{i:02}"), payload);
    }
    let calls = child_calls(&parent_sent);
    let hand_worker = std::env::current_exe()
        .expect("exe")
        .with_file_name("hand_worker");
    let replies = capture_child(&hand_worker, &[], &calls).await;
    for (i, payload) in replies.iter().enumerate() {
        write(&out, &format!("rust_child_{i:02}"), payload);
    }
    let mut python_count = 0;
    if let (Some(python), Some(peer)) = (args.get(2), args.get(3)) {
        let replies = capture_child(Path::new(python), &[peer, "worker"], &calls).await;
        python_count = replies.len();
        for (i, payload) in replies.iter().enumerate() {
            write(&out, &format!("python_child_{i:02}"), payload);
        }
    }

    let mut hostile = 0;
    for (name, value) in fuzzing::odd_values() {
        write(
            &out,
            &format!("hostile_echo_{name}"),
            &fuzzing::call_with(&new_id(), "echo", &[&value]),
        );
        write(
            &out,
            &format!("hostile_add_{name}"),
            &fuzzing::call_with(&new_id(), "add", &[&value, &fuzzing::enc(&1)]),
        );
        hostile += 2;
    }
    let extra: Vec<(&str, Vec<u8>)> = vec![
        (
            "over_small_str",
            fuzzing::call_with(&new_id(), "echo", &[&fuzzing::big_str(40)]),
        ),
        (
            "over_small_items",
            fuzzing::call_with(&new_id(), "echo", &[&fuzzing::big_array(10)]),
        ),
        (
            "over_small_depth",
            fuzzing::call_with(&new_id(), "echo", &[&fuzzing::nested(8)]),
        ),
        (
            "args_not_array",
            fuzzing::call_with_raw_args(&new_id(), "echo", &fuzzing::enc("x")),
        ),
        (
            "missing_function",
            fuzzing::raw_map(&[
                (&fuzzing::enc("app"), &fuzzing::enc("comlink_ipc_v4")),
                (&fuzzing::enc("id"), &fuzzing::enc("x1")),
                (&fuzzing::enc("type"), &fuzzing::enc("call")),
            ]),
        ),
        (
            "missing_id",
            fuzzing::raw_map(&[
                (&fuzzing::enc("type"), &fuzzing::enc("call")),
                (&fuzzing::enc("function"), &fuzzing::enc("add")),
            ]),
        ),
        (
            "empty_id",
            fuzzing::raw_map(&[
                (&fuzzing::enc("id"), &fuzzing::enc("")),
                (&fuzzing::enc("type"), &fuzzing::enc("call")),
                (&fuzzing::enc("function"), &fuzzing::enc("add")),
            ]),
        ),
        (
            "wrong_app",
            fuzzing::raw_map(&[
                (&fuzzing::enc("app"), &fuzzing::enc("comlink_ipc_v3")),
                (&fuzzing::enc("id"), &fuzzing::enc("x2")),
                (&fuzzing::enc("type"), &fuzzing::enc("call")),
                (&fuzzing::enc("function"), &fuzzing::enc("add")),
            ]),
        ),
        (
            "nil_namespace",
            fuzzing::raw_map(&[
                (&fuzzing::enc("id"), &fuzzing::enc("x3")),
                (&fuzzing::enc("type"), &fuzzing::enc("call")),
                (&fuzzing::enc("function"), &fuzzing::enc("add")),
                (&fuzzing::enc("namespace"), &[0xc0]),
            ]),
        ),
        (
            "int_top_key",
            fuzzing::raw_map(&[
                (&[0x01], &fuzzing::enc("x")),
                (&fuzzing::enc("id"), &fuzzing::enc("x4")),
                (&fuzzing::enc("type"), &fuzzing::enc("heartbeat")),
            ]),
        ),
        ("not_a_map", fuzzing::enc(&[1, 2, 3])),
        ("reserved_marker", vec![0xc1]),
        ("trailing_bytes", {
            let mut v = fuzzing::call_with("x5", "add", &[&fuzzing::enc(&1), &fuzzing::enc(&2)]);
            v.push(0xc0);
            v
        }),
        ("truncated", {
            let mut v = fuzzing::call_with("x6", "add", &[&fuzzing::enc(&1), &fuzzing::enc(&2)]);
            v.truncate(v.len() - 3);
            v
        }),
        (
            "heartbeat_deep_metadata",
            fuzzing::raw_map(&[
                (&fuzzing::enc("id"), &fuzzing::enc("x7")),
                (&fuzzing::enc("type"), &fuzzing::enc("heartbeat")),
                (&fuzzing::enc("metadata"), &fuzzing::nested_maps(258)),
            ]),
        ),
    ];
    for (name, bytes) in &extra {
        write(&out, &format!("hostile_{name}"), bytes);
        hostile += 1;
    }
    eprintln!(
        "fuzz_seeds: wrote {} parent, {} rust child, {} python child, {} hostile seeds to {}",
        parent_sent.len(),
        replies.len(),
        python_count,
        hostile,
        out.display()
    );
}
