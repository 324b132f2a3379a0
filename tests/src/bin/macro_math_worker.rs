//! The example math worker (examples/math-worker), built inside this package so the tests can
//! find its binary.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    math_worker::serve_from_args().await;
}
