//! Calls the parent stops waiting for: the child is told (the `cancel` extension) and stops
//! them, a call arriving after its deadline is not started, and a dropped call future keeps
//! its share of the in-flight budget exactly like a timed-out one. Over real processes; the
//! Python peer shows that a v4 worker ignores the extension.

mod support;

use std::time::Duration;

use multifrost::protocol::unix_now;
use multifrost::{CallOptions, Error, ParentWorker};
use serde_bytes::ByteBuf;
use support::eventually_async;
use support::toolbox::Toolbox;

async fn toolbox() -> (ParentWorker, multifrost::Handle<Toolbox>) {
    let worker = ParentWorker::spawn(support::toolbox_worker());
    let handle = worker.handle_for::<Toolbox>();
    handle.start().await.expect("the toolbox worker starts");
    (worker, handle)
}

#[tokio::test]
async fn a_timed_out_async_call_is_dropped_on_the_worker() {
    let (_worker, handle) = toolbox().await;
    let options = CallOptions::new().timeout(Duration::from_millis(200));
    let err = handle.call_with(options).hold(60.0).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            handle.call().dropped_holds().await.unwrap() == 1
        })
        .await,
        "the worker dropped the call it was told to cancel"
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_dropped_call_future_is_cancelled_on_the_worker() {
    let (_worker, handle) = toolbox().await;
    let in_tools = CallOptions::new().namespace("tools");
    let call = handle.call_dyn_with::<f64>("hold", (60.0,), &in_tools);
    // An outer timeout drops the call's future: the parent's own timeout never fires.
    assert!(tokio::time::timeout(Duration::from_millis(200), call)
        .await
        .is_err());
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            handle.call().dropped_holds().await.unwrap() == 1
        })
        .await,
        "the worker dropped the call whose future was dropped"
    );
    assert_eq!(handle.metrics().requests_dropped, 1);
    handle.stop().await;
}

#[tokio::test]
async fn a_sync_method_sees_its_cancellation() {
    let (_worker, handle) = toolbox().await;
    let options = CallOptions::new().timeout(Duration::from_millis(200));
    let err = handle
        .call_with(options)
        .wait_for_cancel(60.0)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            handle.call().cancels_seen().await.unwrap() == 1
        })
        .await,
        "ctx.is_cancelled() turned true in the running sync method"
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_sync_method_called_without_a_deadline_sees_its_cancellation() {
    // No deadline: the call runs as a job on the threads for sync methods, which answers it
    // from there; the parent's cancel must still reach it.
    let (_worker, handle) = toolbox().await;
    let options = CallOptions::new().no_timeout();
    let call = handle.call_with(options).wait_for_cancel(60.0);
    assert!(tokio::time::timeout(Duration::from_millis(200), call)
        .await
        .is_err());
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            handle.call().cancels_seen().await.unwrap() == 1
        })
        .await,
        "ctx.is_cancelled() turned true in the running sync method"
    );
    assert_eq!(handle.metrics().requests_dropped, 1);
    // The worker keeps serving sync calls.
    assert!(!handle
        .call()
        .wait_for_cancel(0.0)
        .await
        .expect("a sync call after the cancelled one"));
    handle.stop().await;
}

#[tokio::test]
async fn a_call_whose_deadline_passed_is_not_started() {
    let (_worker, handle) = toolbox().await;
    let options = CallOptions::new()
        .no_timeout()
        .metadata("deadline", unix_now() - 5.0);
    let err = handle.call_with(options).hold(0.0).await.unwrap_err();
    match &err {
        Error::Remote { message, .. } => {
            assert!(message.contains("deadline"), "{message}");
            assert!(message.contains("not started"), "{message}");
        }
        other => panic!("expected an error reply, got {other:?}"),
    }
    handle.stop().await;
}

#[tokio::test]
async fn an_async_call_is_abandoned_with_an_error_when_its_deadline_passes() {
    let (_worker, handle) = toolbox().await;
    // Only the worker knows this deadline: the parent itself would wait for ever.
    let options = CallOptions::new()
        .no_timeout()
        .metadata("deadline", unix_now() + 0.5);
    let err = handle.call_with(options).hold(60.0).await.unwrap_err();
    match &err {
        Error::Remote { message, .. } => assert!(message.contains("deadline"), "{message}"),
        other => panic!("expected an error reply, got {other:?}"),
    }
    assert_eq!(handle.call().dropped_holds().await.unwrap(), 1);
    handle.stop().await;
}

#[tokio::test]
async fn dropped_calls_at_a_stopped_child_keep_their_share_of_the_byte_budget() {
    let worker = support::rust_worker().max_in_flight_bytes(16 * 1024 * 1024);
    let handle = worker.handle();
    handle.start().await.unwrap();
    let child = handle.pid().unwrap();
    let parent = std::process::id();
    let before = support::rss_kib(parent);
    support::signal(child, libc::SIGSTOP);
    let payload = ByteBuf::from(vec![7u8; 1024 * 1024]);
    for _ in 0..1000 {
        let call = handle.call_dyn::<ByteBuf>("echo", (&payload,));
        assert!(tokio::time::timeout(Duration::from_millis(5), call)
            .await
            .is_err());
    }
    let grown = support::rss_kib(parent).saturating_sub(before);
    eprintln!("1000 dropped 1 MiB calls at a stopped child: parent grew by {grown} KiB");
    assert!(
        grown < 200 * 1024,
        "the parent grew by {grown} KiB: dropped calls freed their share"
    );
    assert_eq!(handle.metrics().requests_dropped, 1000);
    support::signal(child, libc::SIGCONT);
    let options = CallOptions::new().timeout(Duration::from_secs(60));
    assert_eq!(
        handle
            .call_dyn_with::<i64>("add", (2, 3), &options)
            .await
            .unwrap(),
        5
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_python_worker_ignores_the_cancel_extension_and_keeps_serving() {
    let worker = support::python_worker();
    let handle = worker.handle();
    handle.start().await.unwrap();
    let options = CallOptions::new().timeout(Duration::from_millis(100));
    let err = handle
        .call_dyn_with::<f64>("sleep", (1.0,), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    // The cancel went out; the Python child ignores it, finishes its sleep, and answers on.
    for _ in 0..3 {
        assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    }
    handle.stop().await;
}
