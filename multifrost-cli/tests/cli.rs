//! The `multifrost` command line against the Python test peer, over real processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The virtualenv python with pyzmq and msgpack (scripts/python-env.sh creates it).
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(repo().join("scripts/python-env.sh"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}

fn peer() -> String {
    repo()
        .join("tests/python/comlink_peer.py")
        .display()
        .to_string()
}

fn spawn_target() -> String {
    format!("{} {} worker", python().display(), peer())
}

struct Home(PathBuf);

impl Home {
    fn new(tag: &str) -> Home {
        let dir = std::env::temp_dir().join(format!("multifrost-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Home(dir)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn multifrost(home: &Home, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_multifrost"))
        .args(args)
        .env("HOME", &home.0)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A Python service registered under `id` in `home`, killed when dropped.
struct Service(Child);

impl Service {
    fn start(home: &Home, id: &str) -> Service {
        let mut child = Command::new(python())
            .args([peer().as_str(), "service", id])
            .env("HOME", &home.0)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert!(line.starts_with("READY"), "{line}");
        Service(child)
    }

    fn port(home: &Home, id: &str) -> u16 {
        let raw = std::fs::read_to_string(home.0.join(".multifrost/services.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
        json[id]["port"].as_u64().unwrap() as u16
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn call_spawns_a_worker_and_prints_the_result_as_json() {
    let home = Home::new("spawn");
    let out = multifrost(
        &home,
        &["call", "--spawn", &spawn_target(), "add", "1", "2"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "3");
}

#[test]
fn arguments_that_are_not_json_are_plain_strings_and_json_is_structured() {
    let home = Home::new("args");
    let out = multifrost(
        &home,
        &["call", "--spawn", &spawn_target(), "echo", "hello"],
    );
    assert_eq!(stdout(&out), "\"hello\"");
    let out = multifrost(
        &home,
        &[
            "call",
            "--spawn",
            &spawn_target(),
            "echo",
            r#"{"a": [1, 2.5, null]}"#,
        ],
    );
    assert_eq!(stdout(&out), r#"{"a":[1,2.5,null]}"#);
}

#[test]
fn bytes_are_written_as_base64_in_both_directions() {
    let home = Home::new("bin");
    let out = multifrost(
        &home,
        &[
            "call",
            "--spawn",
            &spawn_target(),
            "echo",
            r#"{"$bin": "AP8B"}"#,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), r#"{"$bin":"AP8B"}"#);
}

#[test]
fn a_remote_error_goes_to_stderr_with_status_1() {
    let home = Home::new("remote");
    let out = multifrost(
        &home,
        &["call", "--spawn", &spawn_target(), "divide", "1", "0"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Cannot divide by zero"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn a_timeout_has_its_own_message_and_status() {
    let home = Home::new("timeout");
    let out = multifrost(
        &home,
        &[
            "call",
            "--timeout",
            "0.5",
            "--spawn",
            &spawn_target(),
            "sleep",
            "5",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
}

#[test]
fn an_unknown_service_is_reported_as_unreachable() {
    let home = Home::new("unknown");
    let out = multifrost(
        &home,
        &[
            "call",
            "--timeout",
            "0.3",
            "--service",
            "nobody",
            "add",
            "1",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("Service 'nobody' not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn services_lists_a_registered_service_and_call_and_ping_reach_it_by_name() {
    let home = Home::new("services");
    let _service = Service::start(&home, "py-svc");
    let out = multifrost(&home, &["services", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list[0]["id"], "py-svc");
    assert_eq!(list[0]["alive"], true);
    let table = stdout(&multifrost(&home, &["services"]));
    assert!(table.contains("py-svc") && table.contains("yes"), "{table}");

    let out = multifrost(
        &home,
        &["call", "--service", "py-svc", "multiply", "6", "7"],
    );
    assert_eq!(stdout(&out), "42", "{}", stderr(&out));
    let out = multifrost(&home, &["ping", "--service", "py-svc"]);
    assert!(
        out.status.success() && stdout(&out).starts_with("heartbeat round trip"),
        "{}",
        stderr(&out)
    );

    let endpoint = format!("tcp://127.0.0.1:{}", Service::port(&home, "py-svc"));
    let out = multifrost(&home, &["call", "--endpoint", &endpoint, "add", "2", "2"]);
    assert_eq!(stdout(&out), "4", "{}", stderr(&out));
}

#[test]
fn another_namespace_is_passed_through() {
    let home = Home::new("ns");
    let out = multifrost(
        &home,
        &[
            "call",
            "--timeout",
            "0.5",
            "--namespace",
            "other",
            "--spawn",
            &spawn_target(),
            "add",
            "1",
            "2",
        ],
    );
    // The Python peer ignores calls for another namespace, like the Python implementation.
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn exactly_one_target_is_required() {
    let home = Home::new("usage");
    let out = multifrost(&home, &["call", "add", "1"]);
    assert_eq!(out.status.code(), Some(2));
}
