//! Workers that describe themselves: `list_functions` as the upstream Python worker answers it,
//! and the `multifrost.describe` extension, over real processes and through the command line.

mod support;

use multifrost::child::Description;
use multifrost::protocol::contract::DESCRIBE;
use multifrost::{Error, ParentWorker};

#[tokio::test]
async fn a_rust_worker_answers_list_functions_with_its_names() {
    let worker = support::rust_worker();
    let handle = worker.handle();
    handle.start().await.unwrap();
    let names: Vec<String> = handle.call_dyn("list_functions", ()).await.unwrap();
    assert!(names.contains(&"add".to_owned()), "{names:?}");
    assert!(names.contains(&"print_lines".to_owned()), "{names:?}");
    handle.stop().await;
}

#[tokio::test]
async fn the_python_peer_answers_list_functions_like_upstream() {
    let worker = support::python_worker();
    let handle = worker.handle();
    handle.start().await.unwrap();
    let names: Vec<String> = handle.call_dyn("list_functions", ()).await.unwrap();
    assert!(names.contains(&"add".to_owned()), "{names:?}");
    // And it has no describe: a plain "not found", so a caller can fall back.
    let err = handle
        .call_dyn::<Description>(DESCRIBE, ())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote { message, .. } if message.contains("not found")),
        "{err:?}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_hand_written_worker_describes_its_names_and_namespace() {
    let worker = support::rust_worker();
    let handle = worker.handle();
    handle.start().await.unwrap();
    let description: Description = handle.call_dyn(DESCRIBE, ()).await.unwrap();
    assert_eq!(description.namespace, "default");
    assert!(description.methods.iter().any(|m| m.name == "add"));
    handle.stop().await;
}

#[tokio::test]
async fn describe_answers_only_in_the_workers_namespace() {
    let worker = ParentWorker::spawn(support::toolbox_worker());
    let handle = worker.handle();
    handle.start().await.unwrap();
    let err = handle
        .call_dyn::<Description>(DESCRIBE, ())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote { message, .. } if message.contains("Namespace mismatch")),
        "{err:?}"
    );
    let options = multifrost::CallOptions::new().namespace("tools");
    let description: Description = handle.call_dyn_with(DESCRIBE, (), &options).await.unwrap();
    assert_eq!(description.namespace, "tools");
    handle.stop().await;
}
