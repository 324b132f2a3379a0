//! Connect mode over real processes: services registered by id, found by parents in Rust and
//! Python, reconnection, and clean unregistration.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use multifrost::{CallOptions, Error, ParentWorker};
use support::TempHome;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts the hand-written Rust worker as a service and waits until it is registered.
async fn rust_service(home: &TempHome, id: &str) -> (Child, u16) {
    let child = Command::new(support::hand_worker())
        .args(["--service", id])
        .env("HOME", &home.0)
        .env_remove("COMLINK_ZMQ_PORT")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let entry = home
        .registry()
        .discover(id, Duration::from_secs(20))
        .await
        .expect("service registers");
    assert_eq!(entry.pid, child.id().unwrap());
    (child, entry.port)
}

/// Starts the Python peer as a service and waits for its READY line.
async fn python_service(home: &TempHome, id: &str) -> Child {
    python_service_with(home, id, &[]).await
}

/// [`python_service`] with extra environment variables for the peer.
async fn python_service_with(home: &TempHome, id: &str, env: &[(&str, &str)]) -> Child {
    let mut child = Command::new(support::python())
        .arg(support::peer_script())
        .args(["service", id])
        .envs(env.iter().copied())
        .env("HOME", &home.0)
        .env_remove("COMLINK_ZMQ_PORT")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next_line().await.unwrap().expect("READY line");
    assert!(ready.starts_with("READY "), "{ready}");
    child
}

fn connect(home: &TempHome, id: &str) -> ParentWorker {
    ParentWorker::connect(id).registry(home.registry())
}

#[tokio::test]
async fn a_rust_parent_calls_a_rust_service_by_name() {
    let home = TempHome::new("rr");
    let (mut service, _) = rust_service(&home, "math-service").await;
    let worker = connect(&home, "math-service");
    let handle = worker.handle();
    handle.start().await.unwrap();
    assert_eq!(handle.call_dyn::<i64>("add", (20, 22)).await.unwrap(), 42);
    assert_eq!(handle.pid(), None, "connect mode owns no process");
    assert_eq!(handle.stop().await, None);
    // stop() disconnected, but the service still runs and still serves.
    assert!(
        service.try_wait().unwrap().is_none(),
        "stop() must not stop a service it did not start"
    );
    let again = connect(&home, "math-service").handle();
    again.start().await.unwrap();
    assert_eq!(again.call_dyn::<i64>("add", (1, 1)).await.unwrap(), 2);
}

#[tokio::test]
async fn a_rust_parent_calls_a_python_service_by_name() {
    let home = TempHome::new("rp");
    let _service = python_service(&home, "py-math").await;
    let handle = connect(&home, "py-math").handle();
    handle.start().await.unwrap();
    assert_eq!(
        handle.call_dyn::<i64>("multiply", (6, 7)).await.unwrap(),
        42
    );
    let info: std::collections::HashMap<String, multifrost::Value> =
        handle.call_dyn("get_info", ()).await.unwrap();
    assert_eq!(info["language"].as_str(), Some("python"));
}

#[tokio::test]
async fn a_python_parent_calls_a_rust_service_by_name() {
    let home = TempHome::new("pr");
    let (_service, _) = rust_service(&home, "rust-math").await;
    support::run_python_suite(
        ["parent-discover-suite", "rust-math"],
        &[("HOME", home.0.as_os_str())],
    )
    .await;
}

#[tokio::test]
async fn sigterm_and_sigint_unregister_the_service() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let home = TempHome::new("sig");
        let (mut service, _) = rust_service(&home, "signalled").await;
        support::signal(service.id().unwrap(), signal);
        let status = service.wait().await.unwrap();
        assert_eq!(status.code(), Some(0), "a clean stop on signal {signal}");
        assert_eq!(home.registry().lookup("signalled").await.unwrap(), None);
        let raw = std::fs::read_to_string(home.registry().path()).unwrap();
        assert!(!raw.contains("signalled"), "{raw}");
    }
}

#[tokio::test]
async fn a_second_service_under_a_live_id_exits_with_the_registry_message() {
    let home = TempHome::new("dup");
    let (_first, port) = rust_service(&home, "taken").await;
    let second = Command::new(support::hand_worker())
        .args(["--service", "taken"])
        .env("HOME", &home.0)
        .env_remove("COMLINK_ZMQ_PORT")
        .output()
        .await
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("Service 'taken' already running (PID:"),
        "{stderr}"
    );
    let entry = home
        .registry()
        .lookup("taken")
        .await
        .unwrap()
        .expect("first entry kept");
    assert_eq!(entry.port, port);
}

#[tokio::test]
async fn a_service_that_goes_away_fails_calls_clearly_and_is_found_again_on_a_new_port() {
    let home = TempHome::new("back");
    let (mut service, first_port) = rust_service(&home, "phoenix").await;
    let handle = connect(&home, "phoenix").no_heartbeats().handle();
    handle.start().await.unwrap();
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);

    support::signal(service.id().unwrap(), libc::SIGTERM);
    service.wait().await.unwrap();
    // While it is gone, calls fail with a clear error rather than hanging.
    let gone = tokio::time::timeout(
        Duration::from_secs(20),
        handle.call_dyn::<i64>("add", (1, 2)),
    )
    .await
    .expect("a call to a vanished service ends");
    let err = gone.unwrap_err();
    assert!(
        matches!(&err, Error::Disconnected { worker, reason } if worker == "phoenix" && !reason.is_empty()),
        "the reason has its own field: {err:?}"
    );

    let (_service, second_port) = rust_service(&home, "phoenix").await;
    assert_ne!(
        first_port, second_port,
        "the registry hands out a fresh port"
    );
    assert_eq!(handle.call_dyn::<i64>("add", (2, 3)).await.unwrap(), 5);
}

#[tokio::test]
async fn an_explicit_endpoint_needs_no_registry() {
    let home = TempHome::new("ep");
    let (_service, port) = rust_service(&home, "by-endpoint").await;
    let handle = ParentWorker::connect_endpoint(format!("tcp://127.0.0.1:{port}")).handle();
    handle.start().await.unwrap();
    assert_eq!(handle.call_dyn::<i64>("add", (4, 4)).await.unwrap(), 8);
}

#[tokio::test]
async fn discovering_a_missing_service_times_out_with_the_registry_message() {
    let home = TempHome::new("missing");
    let err = connect(&home, "nobody")
        .discovery_timeout(Duration::from_millis(300))
        .handle()
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Service 'nobody' not found within"),
        "{err}"
    );
}

#[tokio::test]
async fn the_macro_math_worker_serves_a_python_parent_by_service_id() {
    let home = TempHome::new("mw");
    let _service = Command::new(support::macro_math_worker())
        .args(["--service", "math-service"])
        .env("HOME", &home.0)
        .env_remove("COMLINK_ZMQ_PORT")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    home.registry()
        .discover("math-service", Duration::from_secs(20))
        .await
        .expect("the math worker registers");
    support::run_python_suite(
        ["parent-discover-suite", "math-service"],
        &[
            ("HOME", home.0.as_os_str()),
            ("PEER_CONTRACT_ONLY", "1".as_ref()),
        ],
    )
    .await;
}

#[tokio::test]
async fn calls_to_a_service_that_accepts_and_never_answers_end_by_their_own_deadline() {
    let home = TempHome::new("black-hole");
    let (mut service, _) = rust_service(&home, "hole").await;
    let handle = connect(&home, "hole").handle();
    handle.start().await.unwrap();
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    // The service dies; its id now names a port that accepts connections and never answers.
    service.kill().await.unwrap();
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_port = hole.local_addr().unwrap().port();
    let accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            held.push(socket);
        }
    });
    home.registry()
        .register_port("hole", std::process::id(), hole_port)
        .await
        .unwrap();
    let options = CallOptions::new().timeout(Duration::from_secs(1));
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let handle = handle.clone();
            let options = options.clone();
            tokio::spawn(async move {
                let asked = Instant::now();
                let result = handle.call_dyn_with::<i64>("add", (1, 2), &options).await;
                (result, asked.elapsed())
            })
        })
        .collect();
    for call in calls {
        let (result, took) = call.await.unwrap();
        assert!(result.is_err(), "{result:?}");
        assert!(
            took < Duration::from_secs(5),
            "a 1 s call took {took:?} while reconnecting"
        );
    }
    accepting.abort();
}

#[tokio::test]
async fn a_long_call_to_a_python_service_succeeds_though_it_answers_no_heartbeat() {
    let home = TempHome::new("py-long");
    let _service = python_service_with(&home, "py-long", &[("PEER_SERIAL", "1")]).await;
    let worker = connect(&home, "py-long")
        .heartbeat_interval(Duration::from_millis(200))
        .heartbeat_timeout(Duration::from_millis(200))
        .heartbeat_max_misses(2);
    let handle = worker.handle();
    handle.start().await.unwrap();
    let options = CallOptions::new().timeout(Duration::from_secs(120));
    let slept: f64 = handle
        .call_dyn_with("sleep", (3.0,), &options)
        .await
        .expect("missed heartbeats do not fail a call within its deadline");
    assert_eq!(slept, 3.0);
    assert!(handle.metrics().heartbeat_misses >= 2);
    assert_eq!(handle.call_dyn::<i64>("add", (2, 3)).await.unwrap(), 5);
    handle.stop().await;
}

/// The peak resident set of a process, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_service_bounds_what_it_holds_for_a_peer_that_stops_reading() {
    use multifrost::protocol::{new_id, MessageKind, MessageWriter};
    use multifrost::EncodedValue;
    use zeromq::prelude::{Socket, SocketSend};

    const CALLS: u64 = 800;
    const MIB: u64 = 1024 * 1024;
    let home = TempHome::new("hoarder");
    let (service, port) = rust_service(&home, "hoarder").await;
    let pid = service.id().unwrap();
    // A peer asks for 800 replies of 1 MiB each and never reads one.
    let mut hoarder = zeromq::DealerSocket::new();
    hoarder
        .connect(&format!("tcp://127.0.0.1:{port}"))
        .await
        .unwrap();
    let len = EncodedValue::encode(&MIB).unwrap();
    for _ in 0..CALLS {
        let mut writer = MessageWriter::new(MessageKind::Call, &new_id(), 2, 64);
        writer.str_field("function", "zeros");
        writer.array_field("args", [len.as_bytes()].into_iter());
        let mut frames = zeromq::ZmqMessage::from(bytes::Bytes::new());
        frames.push_back(bytes::Bytes::from(writer.finish()));
        hoarder.send(frames).await.unwrap();
    }
    // Another parent watches the service answer them all, and is served meanwhile.
    let handle = connect(&home, "hoarder").handle();
    handle.start().await.unwrap();
    assert!(
        support::eventually_async(Duration::from_secs(120), || async {
            handle.call_dyn::<u64>("zeros_served", ()).await.unwrap() == CALLS
        })
        .await,
        "the service built every reply"
    );
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    let peak_mib = peak_rss_kib(pid) / 1024;
    eprintln!("{CALLS} unread replies of 1 MiB: the service peaked at {peak_mib} MiB");
    assert!(
        peak_mib < 400,
        "the service peaked at {peak_mib} MiB for a peer that does not read"
    );
    drop(hoarder);
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_handshake_is_dropped_and_others_are_served() {
    use tokio::io::AsyncReadExt;

    let home = TempHome::new("silent-peer");
    let (_service, port) = rust_service(&home, "silent-peer").await;
    // A local process connects and says nothing: no greeting.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // Meanwhile a parent connects and is served.
    let handle = connect(&home, "silent-peer").handle();
    handle.start().await.unwrap();
    assert_eq!(handle.call_dyn::<i64>("add", (2, 3)).await.unwrap(), 5);
    // The service greets it, then drops it once its handshake is overdue (10 s).
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), silent.read_to_end(&mut received))
        .await
        .expect("the service drops a connection that never shakes hands")
        .expect("a clean close");
    assert_eq!(received.len(), 64, "only the greeting: {received:?}");
    assert_eq!(received[0], 0xff);
    assert_eq!(handle.call_dyn::<i64>("add", (20, 22)).await.unwrap(), 42);
    handle.stop().await;
}
