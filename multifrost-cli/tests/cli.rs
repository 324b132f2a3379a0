//! The `multifrost` command line over real processes: the binary, run against the package's own
//! `demo_worker` example (spawned, or registered as a service in a temporary HOME). Nothing
//! outside this package is needed, so the tests also run from `cargo package`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The example worker; `cargo test` builds examples next to the test binaries' folder.
fn demo_worker() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/demo_worker");
    assert!(
        path.exists(),
        "{} is missing: run `cargo test -p multifrost-cli` (which builds the examples)",
        path.display()
    );
    path
}

/// `--spawn` for the demo worker (its path quoted, as a shell would need).
fn spawn_target() -> String {
    format!("'{}'", demo_worker().display())
}

/// A temporary HOME (so a registry of its own), removed on drop.
struct Home(PathBuf);

impl Home {
    fn new(tag: &str) -> Home {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "multifrost-cli-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Home(dir)
    }

    fn registry_dir(&self) -> PathBuf {
        self.0.join(".multifrost")
    }

    fn write_registry(&self, text: &str) {
        std::fs::create_dir_all(self.registry_dir()).unwrap();
        std::fs::write(self.registry_dir().join("services.json"), text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_multifrost"));
        command.args(args).env("HOME", &self.0);
        command
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the CLI to completion.
fn multifrost(home: &Home, args: &[&str]) -> Output {
    home.command(args).stdin(Stdio::null()).output().unwrap()
}

/// Runs the CLI and measures how long it took.
fn timed(home: &Home, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = multifrost(home, args);
    (out, started.elapsed())
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The demo worker registered as a service under `id` in `home`, killed when dropped.
struct Service(Child);

impl Service {
    fn start(home: &Home, id: &str) -> Service {
        let child = Command::new(demo_worker())
            .args(["--service", id])
            .env("HOME", &home.0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Service(child)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port on 127.0.0.1 where nothing listens (just released by the system).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    listener.local_addr().unwrap().port()
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
    let out = multifrost(
        &home,
        &["call", "--spawn", &spawn_target(), "add", "-1", "-5"],
    );
    assert_eq!(stdout(&out), "-6", "{}", stderr(&out));
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
    assert_eq!(stdout(&out), r#"{"$bin":"AP8B"}"#, "{}", stderr(&out));
}

#[test]
fn a_remote_error_has_status_1_and_its_traceback_is_shown_with_verbose() {
    let home = Home::new("remote");
    let out = multifrost(&home, &["call", "--spawn", &spawn_target(), "fail", "boom"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("ValueError: boom"), "{err}");
    assert!(
        !err.contains("Traceback") && err.contains("--verbose"),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
    let out = multifrost(
        &home,
        &[
            "call",
            "--verbose",
            "--spawn",
            &spawn_target(),
            "fail",
            "boom",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("Traceback (most recent call last):") && err.contains("in fail"),
        "{err}"
    );
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
fn an_unknown_service_fails_at_once_with_status_6() {
    let home = Home::new("unknown");
    let (out, took) = timed(
        &home,
        &["call", "--service", "no-such-service", "add", "1", "2"],
    );
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("'no-such-service' is not registered") && err.contains("--wait"),
        "{err}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    eprintln!("unknown service reported in {took:?}");
    // With --wait, it waits that long and no longer.
    let (out, took) = timed(
        &home,
        &["ping", "--service", "no-such-service", "--wait", "0.5"],
    );
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("within 0.5s"), "{}", stderr(&out));
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(4),
        "took {took:?}"
    );
}

#[test]
fn a_closed_endpoint_fails_within_seconds_with_status_4() {
    let home = Home::new("closed");
    let endpoint = format!("tcp://127.0.0.1:{}", closed_port());
    let (out, took) = timed(&home, &["call", "--endpoint", &endpoint, "add", "1", "2"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains(&endpoint), "{}", stderr(&out));
    assert!(took < Duration::from_secs(8), "took {took:?}");
    eprintln!("closed endpoint reported in {took:?}");
    let (out, took) = timed(
        &home,
        &["ping", "--connect-timeout", "0.5", "--endpoint", &endpoint],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn wait_finds_a_service_that_registers_later_and_services_ping_and_endpoint_reach_it() {
    let home = Home::new("services");
    let _service = Service::start(&home, "demo-svc");
    let out = multifrost(
        &home,
        &[
            "call",
            "--service",
            "demo-svc",
            "--wait",
            "60",
            "add",
            "40",
            "2",
        ],
    );
    assert_eq!(stdout(&out), "42", "{}", stderr(&out));

    let out = multifrost(&home, &["services", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list[0]["id"], "demo-svc");
    assert_eq!(list[0]["alive"], true);
    let port = list[0]["port"].as_u64().unwrap();
    let table = stdout(&multifrost(&home, &["services"]));
    assert!(
        table.contains("demo-svc") && table.contains("yes"),
        "{table}"
    );

    let out = multifrost(&home, &["ping", "--service", "demo-svc"]);
    assert!(
        out.status.success() && stdout(&out).starts_with("heartbeat round trip"),
        "{}",
        stderr(&out)
    );
    let out = multifrost(&home, &["ping", "--json", "--service", "demo-svc"]);
    let ping: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(ping["worker"], "demo-svc");
    assert!(ping["rtt_ms"].as_f64().unwrap() >= 0.0, "{ping}");

    let endpoint = format!("tcp://127.0.0.1:{port}");
    let out = multifrost(&home, &["call", "--endpoint", &endpoint, "add", "2", "2"]);
    assert_eq!(stdout(&out), "4", "{}", stderr(&out));
}

#[test]
fn metadata_is_repeatable_and_reaches_the_worker_as_strings() {
    let home = Home::new("metadata");
    let out = multifrost(
        &home,
        &[
            "call",
            "-H",
            "tenant=acme",
            "--metadata",
            "query=a=b",
            "--metadata",
            "n=1",
            "--spawn",
            &spawn_target(),
            "metadata",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(seen["tenant"], "acme");
    assert_eq!(seen["query"], "a=b");
    assert_eq!(seen["n"], "1");
    let out = multifrost(
        &home,
        &[
            "call",
            "--metadata",
            "novalue",
            "--spawn",
            &spawn_target(),
            "metadata",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("KEY=VALUE"), "{}", stderr(&out));
}

#[test]
fn spawn_is_split_like_a_shell_so_paths_with_spaces_work() {
    let home = Home::new("split");
    let dir = home.0.join("dir with spaces");
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join("demo worker");
    std::fs::copy(demo_worker(), &program).unwrap();
    let spawn = format!(
        "'{}' \"two words\" plain\\ arg 'it''s' \"say \\\"hi\\\"\"",
        program.display()
    );
    let out = multifrost(&home, &["call", "--spawn", &spawn, "argv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        r#"["two words","plain arg","its","say \"hi\""]"#
    );
    let out = multifrost(&home, &["call", "--spawn", "'unterminated", "argv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unterminated"), "{}", stderr(&out));
}

#[test]
fn integers_outside_i64_are_usage_errors_naming_the_argument() {
    let home = Home::new("integers");
    let out = multifrost(
        &home,
        &[
            "call",
            "--spawn",
            &spawn_target(),
            "add",
            "1",
            "100000000000000000000000",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("argument 2") && stderr(&out).contains("100000000000000000000000"),
        "{}",
        stderr(&out)
    );
    let above = (i64::MAX as u64 + 1).to_string();
    let out = multifrost(&home, &["call", "--spawn", &spawn_target(), "echo", &above]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--allow-u64"), "{}", stderr(&out));
    let out = multifrost(
        &home,
        &[
            "call",
            "--allow-u64",
            "--spawn",
            &spawn_target(),
            "echo",
            &above,
        ],
    );
    assert_eq!(stdout(&out), above, "{}", stderr(&out));
    let max = i64::MAX.to_string();
    let out = multifrost(&home, &["call", "--spawn", &spawn_target(), "echo", &max]);
    assert_eq!(stdout(&out), max, "{}", stderr(&out));
}

#[test]
fn a_closed_output_pipe_ends_the_listing_quietly() {
    let home = Home::new("pipe");
    // Far more than a pipe holds, so that writing goes on after the reader is gone.
    let entries: Vec<String> = (0..5000)
        .map(|i| format!("\"svc-{i}\": {{\"port\": {}, \"pid\": 1}}", 1024 + i))
        .collect();
    home.write_registry(&format!("{{{}}}", entries.join(", ")));
    for args in [&["services"][..], &["services", "--json"]] {
        let mut child = home
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        // The reader is gone (like `| head -1`).
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
}

#[test]
fn registry_problems_have_their_own_status() {
    let home = Home::new("badregistry");
    home.write_registry("{\"svc\": ");
    for args in [
        &["services"][..],
        &["call", "--service", "svc", "add", "1", "2"],
    ] {
        let out = multifrost(&home, args);
        assert_eq!(out.status.code(), Some(8), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("services.json"), "{}", stderr(&out));
    }
    home.write_registry("{}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(home.registry_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = multifrost(&home, &["services"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("chmod 700 {}", home.registry_dir().display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_have_status_2_and_help_documents_the_exit_status() {
    let home = Home::new("usage");
    let out = multifrost(&home, &["call", "add", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = multifrost(
        &home,
        &["call", "--wait", "1", "--spawn", &spawn_target(), "add"],
    );
    assert_eq!(out.status.code(), Some(2), "--wait needs --service");
    let help = stdout(&multifrost(&home, &["call", "--help"]));
    for line in ["Exit status:", "6  service not found", "8  the registry"] {
        assert!(help.contains(line), "{help}");
    }
}

#[test]
fn another_namespace_is_passed_through() {
    let home = Home::new("ns");
    let out = multifrost(
        &home,
        &[
            "call",
            "--namespace",
            "other",
            "--spawn",
            &spawn_target(),
            "add",
            "1",
            "2",
        ],
    );
    // A Rust worker answers a call for another namespace with an error.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("other"), "{}", stderr(&out));
}
