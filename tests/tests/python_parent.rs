//! A Python parent (the test peer, behaving like the Python implementation) calling Rust
//! workers in spawn mode.

mod support;

#[tokio::test]
async fn python_parent_runs_the_math_suite_against_a_hand_written_rust_worker() {
    let worker = support::hand_worker();
    let args = [std::ffi::OsStr::new("parent-suite"), worker.as_os_str()];
    let report = support::run_python_suite(args, &[]).await;
    assert!(
        report.contains("rust"),
        "get_info should report language rust:\n{report}"
    );
}
