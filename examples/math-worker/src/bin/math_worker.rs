//! The math worker's process: spawn mode when started by a parent (`COMLINK_ZMQ_PORT` set),
//! or a long-running service with `math_worker --service <id>`.

#[tokio::main]
async fn main() {
    math_worker::serve_from_args().await;
}
