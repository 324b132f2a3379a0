//! The futures of a generated client own their call: they outlive the client (and the
//! `handle.call()` temporary) they came from, and are `Send + 'static`, so they can be stored,
//! joined, selected and spawned. (Before, each of these was E0716: temporary value dropped
//! while borrowed.)
#![deny(warnings)]

use std::time::Duration;

use multifrost::{BlockingHandle, CallOptions, Handle};

pub struct Math;

#[multifrost::worker]
impl Math {
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    pub async fn slow(&self, seconds: f64) -> f64 {
        seconds
    }
}

async fn parent(handle: Handle<Math>) -> multifrost::Result<i64> {
    let stored = handle.call().add(1, 2);
    let with_options = handle
        .call_with(CallOptions::new().timeout(Duration::from_secs(1)))
        .add(3, 4);
    let (joined, _) = tokio::join!(handle.call().add(5, 6), handle.call().slow(0.1));
    let selected = tokio::select! {
        sum = handle.call().add(7, 8) => sum?,
        _ = handle.call().slow(10.0) => 0,
    };
    let spawned = tokio::spawn(handle.call().add(9, 10));
    let client = handle.call();
    let outlives_its_client = client.add(11, 12);
    drop(client);
    Ok(stored.await?
        + with_options.await?
        + joined?
        + selected
        + spawned.await.expect("the task ran")?
        + outlives_its_client.await?)
}

fn blocking(handle: BlockingHandle<Math>) -> multifrost::Result<i64> {
    let client = handle.call();
    let sum = client.add(1, 2)?;
    Ok(sum + handle.call().add(3, 4)?)
}

fn main() {
    let _ = (parent, blocking);
}
