//! A parent that installs no tracing subscriber: spawns the hand worker, has it print a line,
//! and stops it. What the worker printed must show on this process's stderr.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let worker_path = std::env::args().nth(1).expect("the worker's path");
    let worker = multifrost::ParentWorker::spawn(worker_path);
    let handle = worker.handle();
    handle.start().await.expect("the worker starts");
    let () = handle
        .call_dyn("print_line", ("visible line",))
        .await
        .expect("print_line");
    handle.stop().await;
}
