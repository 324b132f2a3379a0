//! The blocking handle: the same surface for programs without an async runtime.

mod support;

use math_worker::Math;
use multifrost::{Error, ParentWorker};

#[test]
fn a_blocking_handle_works_from_plain_code_without_a_runtime() {
    let worker = ParentWorker::spawn(support::macro_math_worker());
    let handle = worker.handle_blocking_for::<Math>();
    handle.start().unwrap();
    assert_eq!(handle.call().add(1, 2).unwrap(), 3);
    assert_eq!(handle.call_dyn::<i64>("multiply", (6, 7)).unwrap(), 42);
    let err = handle.call().divide(1.0, 0.0).unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err:?}");
    assert!(handle.heartbeat().unwrap() > std::time::Duration::ZERO);
    let status = handle.stop().unwrap().expect("exit status");
    assert_eq!(status.code, Some(0));
}

#[test]
fn blocking_handles_work_from_many_threads() {
    let worker = ParentWorker::spawn(support::macro_math_worker());
    let handle = worker.handle_blocking_for::<Math>();
    handle.start().unwrap();
    std::thread::scope(|scope| {
        for t in 0..8i64 {
            let handle = handle.clone();
            scope.spawn(move || {
                for i in 0..50 {
                    assert_eq!(handle.call().add(t, i).unwrap(), t + i);
                }
            });
        }
    });
    handle.stop().unwrap();
}

#[tokio::test]
async fn a_blocking_handle_used_inside_a_runtime_fails_clearly_instead_of_deadlocking() {
    let worker = ParentWorker::spawn(support::macro_math_worker());
    let handle = worker.handle_blocking_for::<Math>();
    let err = handle.start().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("inside an async runtime"), "{err}");
    let err = handle.call().add(1, 2).unwrap_err();
    assert!(err.to_string().contains("inside an async runtime"), "{err}");
}
