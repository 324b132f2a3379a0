//! A Node parent (the test peer, behaving like the upstream Node implementation: `clientName`,
//! msgpackr's float64 for integers outside 32 bits) calling Rust workers in spawn mode.

mod support;

use std::ffi::OsStr;
use std::path::Path;

/// `node comlink_peer.mjs parent-call <worker> <function> <args...>`: the exit status and the
/// line it printed (the result as JSON, or `ERROR <text>`).
async fn node_call(
    worker: &Path,
    env: &[(&str, &OsStr)],
    function: &str,
    args: &[&str],
) -> (bool, String) {
    let output = tokio::process::Command::new(support::node())
        .arg(support::node_peer_script())
        .arg("parent-call")
        .arg(worker)
        .arg(function)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("running the Node parent");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        stdout.lines().count() == 1,
        "one line expected:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), stdout)
}

#[tokio::test]
async fn node_parent_runs_the_math_suite_against_the_macro_math_worker() {
    let worker = support::macro_math_worker();
    let args = [OsStr::new("parent-suite"), worker.as_os_str()];
    let report = support::run_node_suite(args, &[("PEER_CONTRACT_ONLY", "1".as_ref())]).await;
    assert!(report.contains("language=rust"), "{report}");
    assert!(report.contains("ok float64_integer_args"), "{report}");
    assert!(report.contains("ok shutdown_stops_the_child"), "{report}");
}

#[tokio::test]
async fn node_parent_runs_the_whole_suite_against_a_hand_written_rust_worker() {
    let worker = support::hand_worker();
    let args = [OsStr::new("parent-suite"), worker.as_os_str()];
    let report = support::run_node_suite(args, &[]).await;
    assert!(report.contains("language=rust"), "{report}");
    assert!(
        report.contains("ok print_line (output forwarded as a stdout message)"),
        "{report}"
    );
    assert!(report.contains("ok heartbeat_during_sleep"), "{report}");
}

#[tokio::test]
async fn float64_integers_from_node_fill_typed_integer_parameters() {
    // 2^40 leaves msgpackr as a float64; the i64 result above 32 bits comes back as int64,
    // which msgpackr reads as a BigInt (printed as a decimal string).
    let worker = support::macro_math_worker();
    let (ok, line) = node_call(&worker, &[], "add", &["1099511627776", "1"]).await;
    assert!(ok, "{line}");
    assert_eq!(line, "\"1099511627777\"");
    let tools = support::toolbox_worker();
    let env = [("PEER_NAMESPACE", OsStr::new("tools"))];
    let (ok, line) = node_call(&tools, &env, "sumAll", &["[4294967296, -1]", "3"]).await;
    assert!(ok, "{line}");
    assert_eq!(line, "\"12884901885\"");
}

#[tokio::test]
async fn a_float_with_a_fraction_is_refused_for_an_integer_parameter() {
    let worker = support::macro_math_worker();
    let (ok, line) = node_call(&worker, &[], "add", &["1.5", "2"]).await;
    assert!(!ok, "{line}");
    assert!(line.starts_with("ERROR "), "{line}");
    assert!(
        line.contains("add") && line.contains("(a)") && line.contains("1.5"),
        "the error names the function, the argument and the value: {line}"
    );
}

#[tokio::test]
async fn the_client_name_node_sends_as_clientname_reaches_the_rust_worker() {
    let tools = support::toolbox_worker();
    let env = [("PEER_NAMESPACE", OsStr::new("tools"))];
    let (ok, line) = node_call(&tools, &env, "who_called", &[]).await;
    assert!(ok, "{line}");
    assert_eq!(line, r#"["node-peer","tools",false]"#);
}
