//! A client trait: sync and async methods, `rename`, a namespace, `Result` and unit returns,
//! seen through both clients of `dyn Trait`, with options, and with futures that own their
//! call.
#![deny(warnings)]

use std::time::Duration;

use multifrost::{BlockingHandle, CallOptions, Handle, ParentWorker, Value};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Prediction {
    pub label: String,
    pub score: f64,
}

/// A model served by a Python worker.
#[multifrost::client(namespace = "ml")]
pub trait Model {
    /// Scores one row.
    async fn predict(&self, features: Vec<f64>) -> Vec<f64>;

    /// A sync method in the trait gives an async client method too.
    fn classify(&self, features: Vec<f64>, top: Option<u32>) -> Vec<Prediction>;

    #[multifrost(rename = "get_info")]
    async fn info(&self) -> Value;

    /// The worker's error type does not matter to the client: it arrives as `Error::Remote`.
    fn divide(&self, a: f64, b: f64) -> Result<f64, String>;

    fn reset(&self);
}

/// A private trait gets private clients.
#[multifrost::client]
trait Internal {
    fn ping(&self) -> String;
}

fn owned<F: std::future::Future + Send + 'static>(future: F) -> F {
    future
}

async fn parent() -> multifrost::Result<()> {
    let worker = ParentWorker::spawn("model.py");
    let handle: Handle<dyn Model> = worker.handle_for::<dyn Model>();
    handle.start().await?;
    let scores: Vec<f64> = handle.call().predict(vec![1.0, 2.0]).await?;
    let top: Vec<Prediction> = handle.call().classify(scores, None).await?;
    let quick = CallOptions::new().timeout(Duration::from_secs(1));
    let info: Value = handle.call_with(quick.clone()).info().await?;
    let quotient: f64 = handle.call().with_options(quick).divide(1.0, 2.0).await?;
    let stored = owned(handle.call().reset());
    let spawned = tokio::spawn(handle.call().predict(vec![3.0]));
    stored.await?;
    let _: Vec<f64> = spawned.await.expect("the task ran")?;
    let internal = handle.typed::<dyn Internal>();
    let pong: String = internal.call().ping().await?;
    let _ = (top, info, quotient, pong);
    Ok(())
}

fn blocking() -> multifrost::Result<f64> {
    let handle: BlockingHandle<dyn Model> =
        ParentWorker::spawn("model.py").handle_blocking_for::<dyn Model>();
    handle.start()?;
    handle.call().reset()?;
    let _: Value = handle.call().info()?;
    handle
        .call_with(CallOptions::new().metadata("token", "abc"))
        .divide(1.0, 2.0)
}

fn main() {
    assert_eq!(<dyn Model as multifrost::Service>::NAMESPACE, "ml");
    assert_eq!(<dyn Internal as multifrost::Service>::NAMESPACE, "default");
    let _ = (parent, blocking);
}
