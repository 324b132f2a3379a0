//! Registry churn: Rust processes and a Python process (with the Python locking) registering,
//! discovering and unregistering ids in a loop against one registry file, for a bounded time.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::TempHome;
use tokio::process::Command;

/// (ids per round, seconds to keep going): one round of 40 ids in the suite; with
/// MULTIFROST_LONG=1, rounds of 200 ids for at least 60 s (every lock waiter retries every
/// 100 ms, so contention, not work, sets the pace).
fn churn_size() -> (&'static str, &'static str) {
    if support::long_run() {
        ("200", "60")
    } else {
        ("40", "0")
    }
}

#[tokio::test]
async fn eight_rust_processes_and_a_python_one_churn_without_losing_or_corrupting_anything() {
    let home = TempHome::new("churn");
    let registry = home.registry();
    // A long-lived entry written before the churn: it must survive every rewrite.
    let sentinel_port = registry
        .register("sentinel", std::process::id())
        .await
        .unwrap();

    let (ids, seconds) = churn_size();
    let mut churners = Vec::new();
    for n in 0..8 {
        churners.push(
            Command::new(env!("CARGO_BIN_EXE_registry_tool"))
                .args(["churn", &format!("rust{n}"), ids, "--seconds", seconds])
                .env("HOME", &home.0)
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap(),
        );
    }
    churners.push(
        Command::new(support::python())
            .arg(support::peer_script())
            .args(["churn", "python", ids, seconds])
            .env("HOME", &home.0)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    for churner in churners {
        let output = tokio::time::timeout(Duration::from_secs(600), churner.wait_with_output())
            .await
            .expect("churn ends")
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.starts_with("CHURNED"),
            "{stdout}"
        );
    }

    let raw = std::fs::read_to_string(registry.path()).unwrap();
    assert!(
        raw.trim_start().starts_with('{'),
        "the file is whole: {raw}"
    );
    let services = registry.list().await.unwrap();
    let ids: Vec<&str> = services.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["sentinel"],
        "every churned id was unregistered, the sentinel kept"
    );
    assert_eq!(services[0].1.port, sentinel_port);
    assert!(!registry.lock_path().exists(), "no lock file left behind");
}
