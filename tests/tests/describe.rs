//! Workers that describe themselves: `list_functions` as the upstream Python worker answers it,
//! and the `multifrost.describe` extension, over real processes and through the command line.

mod support;

use multifrost::child::Description;
use multifrost::protocol::contract::DESCRIBE;
use multifrost::{Error, ParentWorker};

#[tokio::test]
async fn a_rust_worker_answers_list_functions_with_its_names() {
    let worker = support::rust_worker();
    let handle = worker.handle();
    handle.start().await.unwrap();
    let names: Vec<String> = handle.call_dyn("list_functions", ()).await.unwrap();
    assert!(names.contains(&"add".to_owned()), "{names:?}");
    assert!(names.contains(&"print_lines".to_owned()), "{names:?}");
    handle.stop().await;
}

#[tokio::test]
async fn the_python_peer_answers_list_functions_like_upstream() {
    let worker = support::python_worker();
    let handle = worker.handle();
    handle.start().await.unwrap();
    let names: Vec<String> = handle.call_dyn("list_functions", ()).await.unwrap();
    assert!(names.contains(&"add".to_owned()), "{names:?}");
    // And it has no describe: a plain "not found", so a caller can fall back.
    let err = handle
        .call_dyn::<Description>(DESCRIBE, ())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote { message, .. } if message.contains("not found")),
        "{err:?}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn a_hand_written_worker_describes_its_names_and_namespace() {
    let worker = support::rust_worker();
    let handle = worker.handle();
    handle.start().await.unwrap();
    let description: Description = handle.call_dyn(DESCRIBE, ()).await.unwrap();
    assert_eq!(description.namespace, "default");
    assert!(description.methods.iter().any(|m| m.name == "add"));
    handle.stop().await;
}

#[tokio::test]
async fn describe_answers_only_in_the_workers_namespace() {
    let worker = ParentWorker::spawn(support::toolbox_worker());
    let handle = worker.handle();
    handle.start().await.unwrap();
    let err = handle
        .call_dyn::<Description>(DESCRIBE, ())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote { message, .. } if message.contains("Namespace mismatch")),
        "{err:?}"
    );
    let options = multifrost::CallOptions::new().namespace("tools");
    let description: Description = handle.call_dyn_with(DESCRIBE, (), &options).await.unwrap();
    assert_eq!(description.namespace, "tools");
    handle.stop().await;
}

#[tokio::test]
async fn a_macro_worker_describes_parameters_types_returns_and_docs() {
    let worker = ParentWorker::spawn(support::toolbox_worker());
    let handle = worker.handle();
    handle.start().await.unwrap();
    let options = multifrost::CallOptions::new().namespace("tools");
    let description: Description = handle.call_dyn_with(DESCRIBE, (), &options).await.unwrap();
    let method = |name: &str| {
        description
            .methods
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name} in {description:?}"))
            .clone()
    };
    // Renamed, with a trailing optional parameter.
    let sum_all = method("sumAll");
    let params = sum_all.params.expect("a macro worker lists its parameters");
    assert_eq!(params.len(), 2);
    assert_eq!(
        (
            params[0].name.as_str(),
            params[0].ty.as_str(),
            params[0].optional
        ),
        ("values", "Vec<i64>", false)
    );
    assert_eq!(
        (
            params[1].name.as_str(),
            params[1].ty.as_str(),
            params[1].optional
        ),
        ("scale", "Option<i64>", true)
    );
    assert_eq!(sum_all.returns.as_deref(), Some("i64"));
    assert_eq!(
        sum_all.doc.as_deref(),
        Some("Exposed under a camelCase name, as a Node caller would expect.")
    );
    // The call context is not a parameter callers send.
    let who = method("who_called");
    assert_eq!(who.params.unwrap().len(), 0);
    assert!(!description.methods.iter().any(|m| m.name == "internal"));
    // list_functions has the same names.
    let names: Vec<String> = handle
        .call_dyn_with("list_functions", (), &options)
        .await
        .unwrap();
    let described: Vec<String> = description.methods.iter().map(|m| m.name.clone()).collect();
    assert_eq!(names, described);
    handle.stop().await;
}

/// The `multifrost` command-line tool, built beside the tests by `cargo test --workspace`.
fn cli() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let cli = dir.join("multifrost");
    assert!(
        cli.exists(),
        "{} is missing: run `cargo test --workspace` (or build -p multifrost-cli)",
        cli.display()
    );
    cli
}

async fn run_cli(args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(cli())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), output)
        .await
        .expect("the CLI ends")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_lists_a_rust_workers_signatures() {
    let spawn = support::toolbox_worker().display().to_string();
    let (code, out, err) = run_cli(&["list", "--spawn", &spawn, "--namespace", "tools"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|line| line == "sumAll(values: Vec<i64>, scale?: Option<i64>) -> i64"),
        "{out}"
    );
    let (code, out, err) = run_cli(&[
        "describe",
        "--spawn",
        &spawn,
        "--namespace",
        "tools",
        "--json",
        "sumAll",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let description: Description = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(description.methods.len(), 1);
    assert_eq!(description.methods[0].name, "sumAll");
}

#[tokio::test]
async fn the_cli_lists_a_python_workers_names_through_list_functions() {
    let spawn = format!(
        "'{}' '{}' worker",
        support::python().display(),
        support::peer_script().display()
    );
    let (code, out, err) = run_cli(&["list", "--spawn", &spawn]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|line| line == "add"), "{out}");
    assert!(out.lines().any(|line| line == "fibonacci"), "{out}");
}

#[tokio::test]
async fn the_cli_shows_every_line_a_spawned_worker_printed_during_the_call() {
    let spawn = support::hand_worker().display().to_string();
    for _ in 0..3 {
        let (code, out, err) = run_cli(&["call", "--spawn", &spawn, "print_lines", "500"]).await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim(), "500");
        let shown = err
            .lines()
            .filter(|line| line.contains("STDOUT]: line "))
            .count();
        assert_eq!(shown, 500, "{err}");
    }
}
