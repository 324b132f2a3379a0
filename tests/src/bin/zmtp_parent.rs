//! A multifrost parent in its own process, for the huge-ZMTP-frame tests: it spawns the worker
//! given as argument, prints `PORT <port>` (the port its DEALER listens on, which any local
//! process can connect to) and `PID <child pid>`, then answers each line on stdin with the
//! result of `add(20, 22)` (or the error, within 3 s).

use std::io::BufRead;

#[tokio::main]
async fn main() {
    let worker_path = std::env::args()
        .nth(1)
        .expect("usage: zmtp_parent <worker>");
    let worker = multifrost::ParentWorker::spawn(worker_path).no_heartbeats();
    let handle = worker.handle();
    handle.start().await.expect("the worker starts");
    let pid = handle.pid().expect("a child pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the child's environment");
    let port = environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(b"COMLINK_ZMQ_PORT="))
        .map(|port| String::from_utf8_lossy(port).into_owned())
        .expect("COMLINK_ZMQ_PORT in the child's environment");
    println!("PORT {port}");
    println!("PID {pid}");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() || lines_tx.send(()).is_err() {
                return;
            }
        }
    });
    while lines.recv().await.is_some() {
        let options = multifrost::CallOptions::new().timeout(std::time::Duration::from_secs(3));
        match handle.call_dyn_with::<i64>("add", (20, 22), &options).await {
            Ok(sum) => println!("OK {sum}"),
            Err(err) => println!("ERR {err}"),
        }
    }
    handle.stop().await;
}
