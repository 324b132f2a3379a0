//! The demo: a Rust parent calls the Rust math worker, then a Python worker, through one typed
//! client, the `MathApi` trait of `math-api`. The demo depends on that trait only: it never
//! compiles the worker, which it spawns as a separate binary.
//!
//! Run it with `scripts/demo.sh`, which builds the worker binary and the Python environment.

use std::path::PathBuf;
use std::time::Duration;

use math_api::MathApi;
use multifrost::{CallOptions, Error, Handle, ParentWorker};

fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().expect("exe folder").join(name)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // A Rust worker, with a client checked at compile time.
    let worker =
        ParentWorker::spawn(sibling("math_worker")).default_timeout(Duration::from_secs(10));
    let math = worker.handle_for::<dyn MathApi>();
    math.start().await?;
    println!("rust worker started (pid {})", math.pid().unwrap_or(0));
    show_calls(&math).await?;

    // Many calls in flight at once: each future owns its call, so it can be spawned as is.
    let calls: Vec<_> = (0..1000i64)
        .map(|i| tokio::spawn(math.call().add(i, i)))
        .collect();
    let mut total = 0;
    for call in calls {
        total += call.await.expect("task")?;
    }
    println!("1000 concurrent adds, sum = {total}");
    let metrics = math.metrics();
    println!(
        "metrics: {} calls, p50 {:.3} ms, p99 {:.3} ms, max in flight {}",
        metrics.requests_total,
        metrics.latency_p50_ms,
        metrics.latency_p99_ms,
        metrics.max_in_flight
    );
    math.stop().await;

    // A Python worker (the test peer, which behaves like the Python implementation): the same
    // typed client, since it serves the same contract.
    if let Some(python) = std::env::args().skip_while(|a| a != "--python").nth(1) {
        let script = std::env::args()
            .skip_while(|a| a != "--python-worker")
            .nth(1)
            .expect("--python-worker <script>");
        let py = ParentWorker::spawn(script)
            .executable(python)
            .args(["worker"])
            .name("python-worker");
        let handle = py.handle_for::<dyn MathApi>();
        handle.start().await?;
        println!("python worker started (pid {})", handle.pid().unwrap_or(0));
        show_calls(&handle).await?;
        let quick = CallOptions::new().timeout(Duration::from_secs(5));
        let sum = handle.call_with(quick).add(20, 22).await?;
        println!("python add(20, 22) = {sum} (within 5 s)");
        handle.stop().await;
    }
    Ok(())
}

/// The same calls, whichever worker is behind the handle.
async fn show_calls(math: &Handle<dyn MathApi>) -> Result<(), Error> {
    println!("add(1, 2)          = {}", math.call().add(1, 2).await?);
    println!("fibonacci(50)      = {}", math.call().fibonacci(50).await?);
    println!("get_info()         = {:?}", math.call().get_info().await?);
    match math.call().divide(1.0, 0.0).await {
        Err(Error::Remote { message, .. }) => {
            println!(
                "divide(1, 0)       -> remote error: {}",
                first_line(&message)
            )
        }
        other => println!("divide(1, 0)       -> {other:?}"),
    }
    let by_name: i64 = math.call_dyn("multiply", (6, 7)).await?;
    println!("call_dyn multiply  = {by_name}");
    Ok(())
}

/// Python's error text is followed by its traceback.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}
