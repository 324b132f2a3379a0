//! Nobody but the child gets in: a local process that connects to a spawn-mode parent's port
//! before the child is refused, and is sent nothing.

mod support;

use std::time::Duration;

use multifrost::{Error, ParentWorker};
use tokio::io::AsyncReadExt;

/// A child that publishes its port, then waits for `<dir>/go` before starting the real worker.
fn waiting_child(dir: &std::path::Path) -> ParentWorker {
    let script =
        "echo \"$COMLINK_ZMQ_PORT\" > \"$DIR/port.tmp\"; mv \"$DIR/port.tmp\" \"$DIR/port\"; \
                  while [ ! -f \"$DIR/go\" ]; do sleep 0.01; done; exec \"$WORKER\"";
    ParentWorker::spawn("/bin/sh")
        .args(["-c", script])
        .env("DIR", dir)
        .env("WORKER", support::hand_worker())
        .auth_token("secret-token")
        .start_timeout(Duration::from_secs(30))
}

#[tokio::test]
async fn a_stranger_that_connects_before_the_child_is_refused_and_sent_nothing() {
    let dir = std::env::temp_dir().join(format!("multifrost-stranger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let worker = waiting_child(&dir);
    let handle = worker.handle();
    let starting = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.start().await })
    };
    assert!(support::eventually(Duration::from_secs(30), || dir.join("port").exists()).await);
    let port = std::fs::read_to_string(dir.join("port")).unwrap();
    // A plain TCP connection: the parent greets nobody before it knows who it is.
    let mut stranger = tokio::net::TcpStream::connect(("127.0.0.1", port.trim().parse().unwrap()))
        .await
        .expect("the stranger connects first");
    std::fs::write(dir.join("go"), b"").unwrap();

    let err = starting.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::StartFailed { reason, .. } if reason.contains("not the child")),
        "{err:?}"
    );
    // Not a greeting, not a heartbeat, not a call, not the token: the connection ends empty.
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stranger.read_to_end(&mut received))
        .await
        .expect("the parent closes the stranger's connection");
    assert!(
        received.is_empty(),
        "the stranger was sent {received:?} ({read:?})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_child_behind_a_launcher_is_recognised_as_the_child() {
    let worker = ParentWorker::spawn("/bin/sh")
        .args(["-c", "\"$WORKER\""])
        .env("WORKER", support::hand_worker());
    let handle = worker.handle();
    handle
        .start()
        .await
        .expect("the grandchild counts as the child");
    assert_eq!(handle.call_dyn::<i64>("add", (2, 3)).await.unwrap(), 5);
    handle.stop().await;
}
