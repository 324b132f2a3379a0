//! The futures of generated clients own their call (`Send + 'static`): they can be stored,
//! joined, selected and spawned, for a `#[multifrost::worker]` client and a
//! `#[multifrost::client]` trait client alike. Over the real math worker.

mod support;

use std::future::Future;
use std::time::Duration;

use math_worker::{Math, MathApi};
use multifrost::{Handle, ParentWorker};

/// Compiles only for futures that can be spawned and kept anywhere.
fn owned<F: Future + Send + 'static>(future: F) -> F {
    future
}

/// A bound that never fires in a passing run: the calls answer in milliseconds.
const GENEROUS: Duration = Duration::from_secs(60);

#[tokio::test]
async fn worker_client_futures_can_be_stored_joined_selected_and_spawned() {
    let worker = ParentWorker::spawn(support::macro_math_worker());
    let math: Handle<Math> = worker.handle_for::<Math>();
    math.start().await.expect("the math worker starts");

    // Stored: made now, awaited later, after the client that made it is gone.
    let stored = owned(math.call().add(1, 2));
    let many: Vec<_> = (0..50i64).map(|i| math.call().multiply(i, 2)).collect();

    // Joined.
    let (sum, product) = tokio::join!(math.call().add(3, 4), math.call().multiply(5, 6));
    assert_eq!((sum.unwrap(), product.unwrap()), (7, 30));

    // Selected: the call wins against a long timer...
    tokio::select! {
        fib = math.call().fibonacci(20) => assert_eq!(fib.unwrap(), 6765),
        _ = tokio::time::sleep(GENEROUS) => panic!("no reply within {GENEROUS:?}"),
    }
    // ...and loses against a ready branch, which drops (cancels) it.
    tokio::select! {
        biased;
        _ = std::future::ready(()) => {}
        _ = math.call().fibonacci(30) => panic!("the ready branch goes first"),
    }

    // Spawned.
    let spawned = tokio::spawn(math.call().async_add(8, 9));
    assert_eq!(spawned.await.expect("the task ran").unwrap(), 17);

    assert_eq!(stored.await.unwrap(), 3);
    for (i, call) in many.into_iter().enumerate() {
        assert_eq!(call.await.unwrap(), 2 * i as i64);
    }
    math.stop().await;
}

#[tokio::test]
async fn trait_client_futures_can_be_stored_joined_selected_and_spawned() {
    let worker = ParentWorker::spawn(support::macro_math_worker());
    let math: Handle<dyn MathApi> = worker.handle_for::<dyn MathApi>();
    math.start().await.expect("the math worker starts");

    let stored = owned(math.call().add(1, 2));
    let many: Vec<_> = (0..50i64).map(|i| math.call().multiply(i, 2)).collect();

    let (sum, product) = tokio::join!(math.call().add(3, 4), math.call().multiply(5, 6));
    assert_eq!((sum.unwrap(), product.unwrap()), (7, 30));

    tokio::select! {
        fib = math.call().fibonacci(20) => assert_eq!(fib.unwrap(), 6765),
        _ = tokio::time::sleep(GENEROUS) => panic!("no reply within {GENEROUS:?}"),
    }
    tokio::select! {
        biased;
        _ = std::future::ready(()) => {}
        _ = math.call().fibonacci(30) => panic!("the ready branch goes first"),
    }

    let spawned = tokio::spawn(math.call().async_add(8, 9));
    assert_eq!(spawned.await.expect("the task ran").unwrap(), 17);

    assert_eq!(stored.await.unwrap(), 3);
    for (i, call) in many.into_iter().enumerate() {
        assert_eq!(call.await.unwrap(), 2 * i as i64);
    }
    math.stop().await;
}
