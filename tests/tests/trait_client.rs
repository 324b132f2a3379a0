//! `#[multifrost::client]` traits over real processes: a Rust parent with a typed client and
//! none of the worker's code, against the Python test peer and against the Rust math worker
//! (which serves `math_api::MathApi`), with options and with the blocking client.

mod support;

use std::time::Duration;

use math_worker::{Info, MathApi};
use multifrost::{CallOptions, Error, Handle, ParentWorker, Value};
use serde::Deserialize;

/// The part of the Python peer's interface these tests use, written as a parent would for a
/// Python model: nothing but the trait.
#[multifrost::client]
pub trait Peer {
    fn add(&self, a: i64, b: i64) -> i64;

    async fn echo(&self, value: Value) -> Value;

    #[multifrost(rename = "get_info")]
    fn info(&self) -> PeerInfo;

    fn sleep(&self, seconds: f64) -> f64;

    /// The metadata the peer received with this call.
    fn get_metadata(&self) -> Value;

    fn throw_error(&self, message: String);
}

#[derive(Debug, Deserialize)]
pub struct PeerInfo {
    pub language: String,
    pub pid: u32,
}

/// The same peer in another namespace.
#[multifrost::client(namespace = "ml")]
pub trait NamespacedPeer {
    fn add(&self, a: i64, b: i64) -> i64;
}

async fn python_peer() -> (ParentWorker, Handle<dyn Peer>) {
    let worker = support::python_worker().default_timeout(Duration::from_secs(30));
    let handle = worker.handle_for::<dyn Peer>();
    handle.start().await.expect("the Python peer starts");
    (worker, handle)
}

async fn rust_math() -> (ParentWorker, Handle<dyn MathApi>) {
    let worker =
        ParentWorker::spawn(support::macro_math_worker()).default_timeout(Duration::from_secs(30));
    let handle = worker.handle_for::<dyn MathApi>();
    handle.start().await.expect("the math worker starts");
    (worker, handle)
}

#[tokio::test]
async fn a_trait_client_calls_the_python_peer() {
    let (_worker, peer) = python_peer().await;
    assert_eq!(peer.call().add(20, 22).await.unwrap(), 42);
    let value = Value::Array(vec![Value::from(1), Value::from("two"), Value::Nil]);
    assert_eq!(peer.call().echo(value.clone()).await.unwrap(), value);
    let info = peer.call().info().await.unwrap();
    assert_eq!(info.language, "python");
    assert_eq!(Some(info.pid), peer.pid());
    peer.stop().await;
}

#[tokio::test]
async fn a_python_exception_arrives_as_a_remote_error() {
    let (_worker, peer) = python_peer().await;
    match peer.call().throw_error("boom".into()).await {
        Err(Error::Remote {
            function, message, ..
        }) => {
            assert_eq!(function, "throw_error");
            assert!(message.contains("boom"), "{message}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    peer.stop().await;
}

#[tokio::test]
async fn call_with_sends_the_options_metadata() {
    let (_worker, peer) = python_peer().await;
    let options = CallOptions::new()
        .metadata("token", "abc")
        .timeout(Duration::from_secs(10));
    let metadata = peer.call_with(options).get_metadata().await.unwrap();
    let token = metadata
        .as_map()
        .and_then(|map| map.iter().find(|(key, _)| key.as_str() == Some("token")))
        .map(|(_, value)| value.clone());
    assert_eq!(token, Some(Value::from("abc")), "{metadata}");
    peer.stop().await;
}

#[tokio::test]
async fn call_with_a_timeout_ends_a_slow_python_call() {
    let (_worker, peer) = python_peer().await;
    let quick = CallOptions::new().timeout(Duration::from_millis(200));
    match peer.call_with(quick).sleep(5.0).await {
        Err(Error::Timeout { function, .. }) => assert_eq!(function, "sleep"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    peer.stop().await;
}

#[tokio::test]
async fn a_trait_namespace_is_the_namespace_of_its_calls() {
    let worker = support::python_worker().env("PEER_NAMESPACE", "ml");
    let handle = worker.handle_for::<dyn NamespacedPeer>();
    handle.start().await.expect("the Python peer starts");
    assert_eq!(handle.call().add(1, 2).await.unwrap(), 3);
    handle.stop().await;
}

#[test]
fn the_blocking_trait_client_calls_the_python_peer() {
    let worker = support::python_worker().default_timeout(Duration::from_secs(30));
    let peer = worker.handle_blocking_for::<dyn Peer>();
    peer.start().expect("the Python peer starts");
    assert_eq!(peer.call().add(2, 3).unwrap(), 5);
    assert_eq!(peer.call().info().unwrap().language, "python");
    let metadata = peer
        .call_with(CallOptions::new().metadata("token", "xyz"))
        .get_metadata()
        .unwrap();
    assert!(metadata.to_string().contains("xyz"), "{metadata}");
    let quick = CallOptions::new().timeout(Duration::from_millis(200));
    assert!(matches!(
        peer.call_with(quick).sleep(5.0),
        Err(Error::Timeout { .. })
    ));
    peer.stop().expect("stops");
}

#[tokio::test]
async fn the_math_api_client_calls_the_rust_worker() {
    let (_worker, math) = rust_math().await;
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
    assert_eq!(call.large_data(1000).await.unwrap().data[999], 999);
    let thrown = call.throw_error("boom".into()).await.unwrap_err();
    assert!(
        matches!(&thrown, Error::Remote { message, .. } if message == "boom"),
        "{thrown:?}"
    );
    math.stop().await;
}

#[tokio::test]
async fn the_math_api_client_calls_the_python_peer_too() {
    let worker = support::python_worker();
    let math = worker.handle_for::<dyn MathApi>();
    math.start().await.expect("the Python peer starts");
    assert_eq!(math.call().fibonacci(50).await.unwrap(), 12_586_269_025);
    assert_eq!(math.call().get_info().await.unwrap().language, "python");
    let error = math.call().divide(1.0, 0.0).await.unwrap_err();
    assert!(
        error.to_string().contains("Cannot divide by zero"),
        "{error}"
    );
    math.stop().await;
}

#[tokio::test]
async fn call_with_options_reach_the_rust_worker() {
    let (_worker, math) = rust_math().await;
    let options = CallOptions::new().timeout(Duration::from_secs(5));
    assert_eq!(math.call_with(options).add(2, 2).await.unwrap(), 4);
    let elsewhere = CallOptions::new().namespace("elsewhere");
    let error = math.call_with(elsewhere).add(2, 2).await.unwrap_err();
    assert!(error.to_string().contains("elsewhere"), "{error}");
    math.stop().await;
}

#[test]
fn the_blocking_math_api_client_calls_the_rust_worker() {
    let worker = ParentWorker::spawn(support::macro_math_worker());
    let math = worker.handle_blocking_for::<dyn MathApi>();
    math.start().expect("the math worker starts");
    assert_eq!(math.call().add(40, 2).unwrap(), 42);
    let options = CallOptions::new().timeout(Duration::from_secs(5));
    assert_eq!(math.call_with(options).fibonacci(10).unwrap(), 55);
    assert!(matches!(
        math.call().divide(1.0, 0.0),
        Err(Error::Remote { .. })
    ));
    math.stop().expect("stops");
}
