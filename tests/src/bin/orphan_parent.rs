//! A parent that spawns a worker, prints the worker's pid, and waits forever: the test kills
//! this process with SIGKILL and checks that the worker dies with it.

#[tokio::main]
async fn main() {
    let worker_path = std::env::args()
        .nth(1)
        .expect("usage: orphan_parent <worker>");
    let worker = multifrost::ParentWorker::spawn(worker_path);
    let handle = worker.handle();
    handle.start().await.expect("worker starts");
    println!("{}", handle.pid().expect("pid"));
    std::future::pending::<()>().await;
}
