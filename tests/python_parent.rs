//! A Python parent (the test peer, behaving like the Python implementation) calling Rust
//! workers in spawn mode.

mod support;

use std::process::Command;

fn run_python_suite(worker: &std::path::Path) -> String {
    let output = Command::new(support::python())
        .arg(support::peer_script())
        .arg("parent-suite")
        .arg(worker)
        .output()
        .expect("running the Python parent");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "Python parent suite failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn python_parent_runs_the_math_suite_against_a_hand_written_rust_worker() {
    let report = run_python_suite(&support::hand_worker());
    assert!(report.contains(" 0 failed"), "{report}");
    assert!(
        report.contains("rust"),
        "get_info should report language rust:\n{report}"
    );
}
