//! Errors a caller can match, panics that say where, and bytes that stay bytes, over real
//! processes: the toolbox worker (a `#[multifrost::worker]`) called by a Rust parent, and by
//! the Python peer as a parent, which must see the same text and get bin as `bytes`.

mod support;

use multifrost::{CallOptions, Error, ParentWorker, Value};
use serde_bytes::ByteBuf;
use support::toolbox::{LedgerError, Toolbox};

async fn toolbox() -> (ParentWorker, multifrost::Handle<Toolbox>) {
    let worker = ParentWorker::spawn(support::toolbox_worker());
    let handle = worker.handle_for::<Toolbox>();
    handle.start().await.expect("toolbox worker starts");
    (worker, handle)
}

/// Options for untyped calls: the toolbox answers in the `tools` namespace.
fn tools() -> CallOptions {
    CallOptions::new().namespace("tools")
}

#[tokio::test]
async fn a_serializable_error_is_recovered_with_remote_error_and_its_text_is_unchanged() {
    let (_worker, handle) = toolbox().await;
    let err = handle.call().withdraw(500).await.unwrap_err();
    assert_eq!(
        err.remote_error::<LedgerError>(),
        Some(LedgerError::Insufficient {
            available: 100,
            requested: 500
        })
    );
    match &err {
        Error::Remote {
            message, traceback, ..
        } => {
            assert_eq!(message, "insufficient funds: 100 available, 500 requested");
            assert_eq!(traceback, &None);
        }
        other => panic!("{other:?}"),
    }
    let frozen = handle.call().withdraw(0).await.unwrap_err();
    assert_eq!(frozen.remote_error(), Some(LedgerError::Frozen));
    assert_eq!(handle.call().withdraw(30).await.unwrap(), 70);
    handle.stop().await;
}

#[tokio::test]
async fn remote_error_is_none_for_an_error_without_data_or_of_another_type() {
    let (_worker, handle) = toolbox().await;
    let panic = handle.call().explode().await.unwrap_err();
    assert!(panic.remote_data().is_none(), "{panic:?}");
    assert_eq!(panic.remote_error::<LedgerError>(), None);
    let typed = handle.call().withdraw(0).await.unwrap_err();
    assert_eq!(typed.remote_error::<u64>(), None);
    handle.stop().await;
}

/// The traceback of a panic's error reply, after checking its message.
fn panic_traceback(err: &Error, message: &str) -> String {
    match err {
        Error::Remote {
            message: got,
            traceback: Some(traceback),
            ..
        } if got == message => traceback.clone(),
        other => panic!("expected a remote error {message:?} with a traceback, got {other:?}"),
    }
}

#[tokio::test]
async fn a_panic_in_a_sync_method_says_where_it_happened() {
    let (_worker, handle) = toolbox().await;
    let err = handle.call().explode().await.unwrap_err();
    let traceback = panic_traceback(&err, "explode: panicked: sync boom");
    assert!(
        traceback.starts_with("  at ") && traceback.contains("tests/support/toolbox.rs:"),
        "{traceback}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_panic_in_an_async_method_says_where_it_happened() {
    let (_worker, handle) = toolbox().await;
    let err = handle.call().explode_async().await.unwrap_err();
    let traceback = panic_traceback(&err, "explode_async: panicked: async boom");
    assert!(
        traceback.starts_with("  at ") && traceback.contains("tests/support/toolbox.rs:"),
        "{traceback}"
    );
    // The worker keeps serving, and a later panic reports its own place.
    let sync = handle.call().explode().await.unwrap_err();
    assert_ne!(
        panic_traceback(&sync, "explode: panicked: sync boom"),
        traceback
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_vec_u8_result_arrives_as_bin() {
    let (_worker, handle) = toolbox().await;
    let sent = ByteBuf::from(vec![0u8, 1, 255]);
    let raw: Value = handle
        .call_dyn_with("echo_bytes", (&sent,), &tools())
        .await
        .unwrap();
    assert_eq!(raw, Value::Binary(vec![0, 1, 255]));
    let bytes: ByteBuf = handle
        .call_dyn_with("echo_bytes", (&sent,), &tools())
        .await
        .unwrap();
    assert_eq!(bytes, sent);
    // A caller that sends an array of integers is understood too.
    let lenient: ByteBuf = handle
        .call_dyn_with("echo_bytes", (vec![7u8, 8],), &tools())
        .await
        .unwrap();
    assert_eq!(lenient.into_vec(), [7, 8]);
    handle.stop().await;
}

#[tokio::test]
async fn the_typed_client_sends_and_receives_byte_strings() {
    let (_worker, handle) = toolbox().await;
    let call = handle.call();
    assert_eq!(call.echo_bytes(vec![4, 5, 6]).await.unwrap(), [4, 5, 6]);
    assert_eq!(
        call.count_bytes(3).await.unwrap().as_deref(),
        Some(&[0, 1, 2][..])
    );
    assert_eq!(call.count_bytes(0).await.unwrap(), None);
    let counted: Value = handle
        .call_dyn_with("count_bytes", (2,), &tools())
        .await
        .unwrap();
    assert_eq!(counted, Value::Binary(vec![0, 1]));
    handle.stop().await;
}

#[tokio::test]
async fn a_mebibyte_of_bytes_echoes_whole() {
    let (_worker, handle) = toolbox().await;
    let data: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    assert_eq!(handle.call().echo_bytes(data.clone()).await.unwrap(), data);
    handle.stop().await;
}

/// The Python peer as the parent of the toolbox worker: raw checks of what it receives.
const PYTHON_CHECKS: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
from comlink_peer import Parent, RemoteError, pack, unpack_limited

parent = Parent.spawn(sys.argv[2])
try:
    got = parent.call("echo_bytes", b"\x00\x01\xff", namespace="tools")
    assert type(got) is bytes and got == b"\x00\x01\xff", repr(got)
    print("ok echo_bytes: bytes")

    # A large result goes out as its bin header and its bytes, written apart: one bin here.
    big = bytes(range(256)) * 4096
    got = parent.call("echo_bytes", big, namespace="tools", timeout=30.0)
    assert type(got) is bytes and got == big, f"{type(got)} of {len(got)} bytes"
    print("ok echo_bytes: 1 MiB whole")

    reply = parent.call_async("withdraw", 500, namespace="tools").wait()
    assert reply["type"] == "error", reply
    assert reply["error"] == "insufficient funds: 100 available, 500 requested", reply
    data = reply["error_data"]
    assert data == {"Insufficient": {"available": 100, "requested": 500}}, repr(data)
    unpack_limited(pack(reply))  # what the Python implementation accepts (str keys only)
    print("ok withdraw: the text as before, the data beside it")

    try:
        parent.call("explode", namespace="tools")
        raise AssertionError("explode returned")
    except RemoteError as e:
        first, _, rest = e.error_text.partition("\n")
        assert first == "explode: panicked: sync boom", repr(e.error_text)
        assert rest.startswith("  at ") and "toolbox.rs:" in rest, repr(e.error_text)
    print("ok explode: location after the message")

    assert parent.call("withdraw", 30, namespace="tools") == 70
    print("ok withdraw: still serving")
finally:
    parent.close()
"#;

#[tokio::test]
async fn a_python_parent_gets_bytes_as_bytes_and_errors_as_their_text() {
    let output = tokio::process::Command::new(support::python())
        .arg("-c")
        .arg(PYTHON_CHECKS)
        .arg(support::repo().join("tests/python"))
        .arg(support::toolbox_worker())
        .output()
        .await
        .expect("running the Python parent");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Python parent's checks failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report.matches("ok ").count(), 5, "{report}");
}
