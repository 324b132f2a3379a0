//! The math worker's process: spawn mode when started by a parent (`COMLINK_ZMQ_PORT` set),
//! or a long-running service with `math_worker --service <id>`.
//!
//! A current-thread runtime: the benchmark measured about half the round-trip latency of the
//! multi-thread default for a worker like this one (sync methods still run on the blocking pool).

#[tokio::main(flavor = "current_thread")]
async fn main() {
    math_worker::serve_from_args().await;
}
