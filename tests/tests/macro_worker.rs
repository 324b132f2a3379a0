//! Workers defined with `#[multifrost::worker]`, over real processes: the typed client, the
//! untyped path to the same worker, the Python parent, and the call context.

mod support;

use std::time::{Duration, Instant};

use math_worker::{Info, LargeData, Math};
use multifrost::{CallOptions, Error, ParentWorker, Value};
use support::toolbox::Toolbox;

async fn math() -> (ParentWorker, multifrost::Handle<Math>) {
    let worker = ParentWorker::spawn(support::macro_math_worker());
    let handle = worker.handle_for::<Math>();
    handle.start().await.expect("math worker starts");
    (worker, handle)
}

async fn toolbox() -> (ParentWorker, multifrost::Handle<Toolbox>) {
    let worker = ParentWorker::spawn(support::toolbox_worker());
    let handle = worker.handle_for::<Toolbox>();
    handle.start().await.expect("toolbox worker starts");
    (worker, handle)
}

#[tokio::test]
async fn the_typed_client_calls_every_method_of_the_math_contract() {
    let (_worker, math) = math().await;
    let call = math.call();
    assert_eq!(call.add(1, 2).await.unwrap(), 3);
    assert_eq!(call.multiply(6, 7).await.unwrap(), 42);
    assert_eq!(call.divide(10.0, 4.0).await.unwrap(), 2.5);
    assert_eq!(call.factorial(10).await.unwrap(), 3_628_800);
    assert_eq!(call.fibonacci(50).await.unwrap(), 12_586_269_025);
    assert_eq!(call.echo(Value::from("x")).await.unwrap(), Value::from("x"));
    let info: Info = call.get_info().await.unwrap();
    assert_eq!(info.language, "rust");
    assert_eq!(Some(info.pid), math.pid());
    assert_eq!(call.async_add(2, 3).await.unwrap(), 5);
    assert_eq!(call.fibonacci_async(10).await.unwrap(), 55);
    let large: LargeData = call.large_data(1000).await.unwrap();
    assert_eq!(large.length, 1000);
    assert_eq!(large.data[999], 999);
    math.stop().await;
}

#[tokio::test]
async fn result_errors_arrive_as_remote_errors() {
    let (_worker, math) = math().await;
    match math.call().divide(1.0, 0.0).await {
        Err(Error::Remote {
            message, function, ..
        }) => {
            assert_eq!(function, "divide");
            assert_eq!(message, "Cannot divide by zero");
        }
        other => panic!("{other:?}"),
    }
    let overflow = math.call().factorial(30).await.unwrap_err();
    assert!(
        overflow.to_string().contains("factorial(30) overflows i64"),
        "{overflow}"
    );
    let thrown = math.call().throw_error("boom".into()).await.unwrap_err();
    assert!(
        matches!(&thrown, Error::Remote { message, .. } if message == "boom"),
        "{thrown:?}"
    );
    math.stop().await;
}

#[tokio::test]
async fn echo_returns_every_kind_of_value_unchanged() {
    let (_worker, math) = math().await;
    let values = [
        Value::Nil,
        Value::Boolean(true),
        Value::from(i64::MIN),
        Value::from(i64::MAX),
        Value::F64(1.5),
        Value::from("héllo"),
        Value::Binary(vec![0, 255, 7]),
        Value::Array(vec![Value::from(1), Value::Array(vec![Value::from("a")])]),
        Value::Map(vec![(
            Value::from("k"),
            Value::Map(vec![(Value::from("n"), Value::Nil)]),
        )]),
    ];
    for value in values {
        assert_eq!(math.call().echo(value.clone()).await.unwrap(), value);
    }
    math.stop().await;
}

#[tokio::test]
async fn call_dyn_reaches_the_same_worker_with_precise_argument_errors() {
    let (_worker, math) = math().await;
    assert_eq!(math.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    let wrong_type = math.call_dyn::<i64>("add", (1, "x")).await.unwrap_err();
    assert!(
        matches!(&wrong_type, Error::Remote { message, .. } if message == "add: argument 2 (b): expected i64, got str \"x\""),
        "{wrong_type:?}"
    );
    let arity = math.call_dyn::<i64>("add", (1, 2, 3)).await.unwrap_err();
    assert!(
        arity
            .to_string()
            .contains("add: expected 2 arguments (a, b), got 3"),
        "{arity}"
    );
    // Node sends large integers as float64: an exact float is accepted for an integer.
    assert_eq!(math.call_dyn::<i64>("add", (2.0, 3)).await.unwrap(), 5);
    let fraction = math.call_dyn::<i64>("add", (2.5, 3)).await.unwrap_err();
    assert!(
        fraction
            .to_string()
            .contains("argument 1 (a): expected i64, got float 2.5"),
        "{fraction}"
    );
    // Sent as uint64 (as a Python parent does, unchecked): the typed child refuses it.
    let wide = CallOptions::new().wide_integers();
    let too_big = math
        .call_dyn_with::<i64>("add", (u64::MAX, 1), &wide)
        .await
        .unwrap_err();
    assert!(
        too_big.to_string().contains("argument 1 (a): expected i64"),
        "not clamped: {too_big}"
    );
    math.stop().await;
}

#[tokio::test]
async fn a_thousand_concurrent_typed_calls_are_correlated() {
    let (_worker, math) = math().await;
    let calls: Vec<_> = (0..1000i64)
        .map(|i| {
            let math = math.clone();
            tokio::spawn(async move { (i, math.call().multiply(i, 3).await) })
        })
        .collect();
    for call in calls {
        let (i, product) = call.await.unwrap();
        assert_eq!(product.unwrap(), 3 * i);
    }
    math.stop().await;
}

#[tokio::test]
async fn the_python_parent_runs_its_suite_against_the_macro_worker() {
    let worker = support::macro_math_worker();
    let args = [std::ffi::OsStr::new("parent-suite"), worker.as_os_str()];
    support::run_python_suite(args, &[("PEER_CONTRACT_ONLY", "1".as_ref())]).await;
}

#[tokio::test]
async fn the_worker_namespace_is_checked_and_reachable_through_call_options() {
    let (_worker, tools) = toolbox().await;
    // The generated client sends the worker's namespace by default.
    let (client, namespace, has_deadline) = tools.call().who_called().await.unwrap();
    assert_eq!(namespace, "tools");
    assert_eq!(client, None);
    assert!(!has_deadline);
    let options = CallOptions::new()
        .client_name("tester")
        .timeout(Duration::from_secs(5));
    let (client, _, has_deadline) = tools.call_with(options).who_called().await.unwrap();
    assert_eq!(client.as_deref(), Some("tester"));
    assert!(
        has_deadline,
        "a call with a timeout tells the worker its deadline"
    );
    let (_, namespace, _) = tools
        .call()
        .with_options(CallOptions::new())
        .who_called()
        .await
        .unwrap();
    assert_eq!(
        namespace, "tools",
        "with_options keeps the worker's namespace"
    );
    let wrong = tools
        .call_with(CallOptions::new().namespace("other"))
        .who_called()
        .await
        .unwrap_err();
    assert!(
        wrong.to_string().contains("'other'") && wrong.to_string().contains("'tools'"),
        "{wrong}"
    );
    tools.stop().await;
}

#[tokio::test]
async fn a_method_reads_per_call_metadata_from_its_context() {
    let (_worker, tools) = toolbox().await;
    let options = CallOptions::new().metadata("token", "s3cret");
    let token = tools
        .call_with(options)
        .metadata("token".into())
        .await
        .unwrap();
    assert_eq!(token, Some(Value::from("s3cret")));
    assert_eq!(tools.call().metadata("absent".into()).await.unwrap(), None);
    tools.stop().await;
}

#[tokio::test]
async fn a_blocking_sync_method_does_not_stall_heartbeats_or_other_calls() {
    let (_worker, tools) = toolbox().await;
    let slow = {
        let tools = tools.clone();
        tokio::spawn(async move { tools.call().sleep_sync(2.0).await })
    };
    while tools.pending_calls() == 0 {
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    tools.heartbeat().await.unwrap();
    assert_eq!(tools.call().sum_all(vec![1, 2], None).await.unwrap(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered while the sync method ran"
    );
    assert_eq!(slow.await.unwrap().unwrap(), 2.0);
    tools.stop().await;
}

#[tokio::test]
async fn renamed_skipped_and_optional_parameters_follow_the_attributes() {
    let (_worker, tools) = toolbox().await;
    let options = CallOptions::new().namespace("tools");
    assert_eq!(
        tools.call().sum_all(vec![1, 2, 3], Some(10)).await.unwrap(),
        60
    );
    // The wire name is the rename; a trailing Option may be left out.
    assert_eq!(
        tools
            .call_dyn_with::<i64>("sumAll", (vec![1, 2],), &options)
            .await
            .unwrap(),
        3
    );
    let snake = tools
        .call_dyn_with::<i64>("sum_all", (vec![1],), &options)
        .await
        .unwrap_err();
    assert!(
        snake.to_string().contains("Function 'sum_all' not found"),
        "{snake}"
    );
    let skipped = tools
        .call_dyn_with::<i64>("internal", (), &options)
        .await
        .unwrap_err();
    assert!(
        skipped
            .to_string()
            .contains("Function 'internal' not found"),
        "{skipped}"
    );
    tools.stop().await;
}

#[tokio::test]
async fn a_panic_in_a_sync_method_is_an_error_reply_and_the_worker_keeps_serving() {
    let (_worker, tools) = toolbox().await;
    let err = tools.call().explode().await.unwrap_err();
    assert!(
        err.to_string().contains("explode: panicked: sync boom"),
        "{err}"
    );
    assert_eq!(tools.call().sum_all(vec![4], None).await.unwrap(), 4);
    tools.stop().await;
}
