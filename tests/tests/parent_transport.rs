//! The parent's own ZMTP 3.0 DEALER (multifrost/src/transport/zmtp.rs) against peers that
//! stress it: a hand-made ROUTER "service" on a real TCP socket that sends ZMTP commands
//! (`PING`, `ERROR`), frames with reserved flags or an impossible size, writes its bytes one
//! at a time, or announces the wrong socket type or mechanism; and a real spawned worker
//! moving payloads far larger than the socket buffers.

mod support;

use std::time::Duration;

use bytes::Bytes;
use multifrost::protocol::{encode_error, encode_heartbeat_reply, encode_response, MessageKind};
use multifrost::protocol::{EncodedValue, RawMessage};
use multifrost::{CallOptions, Error, Limits, ParentWorker};
use serde_bytes::ByteBuf;
use support::zmtp::{command, frame, greeting, ready, COMMAND, LONG, MORE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The bound on every wait of these tests: generous, it is only hit when something is wrong.
const WAIT: Duration = Duration::from_secs(30);

/// The reason the service gives in its `ERROR` command.
const ERROR_REASON: &str = "test-service-refuses-this-call";

// ---------------------------------------------------------------------------------------------
// A hand-made ZMTP ROUTER standing in for a worker.

/// How the service behaves. Whatever the configuration, it answers calls by function name:
/// `add` and `echo` normally, `error_command` with a ZMTP `ERROR` command, `reserved_flag`
/// with a reply whose delimiter frame has the reserved flag 0x08 set, `huge_frame` with a
/// frame header announcing 1 TiB.
#[derive(Clone, Copy)]
struct Config {
    /// The `Socket-Type` of its `READY`.
    socket_type: &'static str,
    /// The mechanism of its greeting.
    mechanism: &'static str,
    /// Sends `PING` (TTL 100, this context) right after the handshake.
    ping: Option<&'static [u8]>,
    /// Writes everything (greeting included) one byte per write.
    trickle: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            socket_type: "ROUTER",
            mechanism: "NULL",
            ping: None,
            trickle: false,
        }
    }
}

/// What the service saw of the parent.
#[derive(Debug)]
enum Seen {
    /// The parent's 64-byte greeting, and the flags and body of the frame after it (its
    /// `READY` command).
    Handshake {
        greeting: Vec<u8>,
        ready_flags: u8,
        ready: Vec<u8>,
    },
    /// A `PONG` command, with its context.
    Pong(Vec<u8>),
    /// A call, by function name.
    Call(String),
    /// The parent's end of the connection closed (or failed).
    Closed,
}

struct Service {
    port: u16,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Service {
    /// Listens on 127.0.0.1 and serves every connection as `config` says.
    async fn start(config: Config) -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Service::on(listener, config)
    }

    /// Serves every connection `listener` takes as `config` says.
    fn on(listener: TcpListener, config: Config) -> Service {
        let port = listener.local_addr().expect("local address").port();
        let (sender, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sender = sender.clone();
                tokio::spawn(async move {
                    // A connection ends when the parent leaves (or a test ends): not an error.
                    let _ = serve(stream, config, sender.clone()).await;
                    let _ = sender.send(Seen::Closed);
                });
            }
        });
        Service { port, seen }
    }

    fn endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// A parent connected to this service, not started.
    fn parent(&self) -> ParentWorker {
        ParentWorker::connect_endpoint(self.endpoint()).name("hand-router")
    }

    /// Waits (bounded) for the next event `wanted` picks, skipping others.
    async fn expect<T>(&mut self, what: &str, mut wanted: impl FnMut(Seen) -> Option<T>) -> T {
        let found = tokio::time::timeout(WAIT, async {
            while let Some(seen) = self.seen.recv().await {
                if let Some(found) = wanted(seen) {
                    return Some(found);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(found)) => found,
            Ok(None) => panic!("the service stopped before it saw {what}"),
            Err(_) => panic!("the service did not see {what} within {WAIT:?}"),
        }
    }
}

/// A reply as a ROUTER puts it on the wire (the routing id is stripped): `[empty, payload]`.
fn reply_frames(payload: &[u8]) -> Vec<u8> {
    let mut bytes = frame(&[], true);
    bytes.extend_from_slice(&frame(payload, false));
    bytes
}

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let flags = stream.read_u8().await?;
    let len = if flags & LONG != 0 {
        stream.read_u64().await? as usize
    } else {
        stream.read_u8().await? as usize
    };
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok((flags, body))
}

/// Writes `bytes`, in one go or (trickling) one byte per write, each flushed.
async fn send(stream: &mut TcpStream, bytes: &[u8], trickle: bool) -> std::io::Result<()> {
    if trickle {
        for byte in bytes {
            stream.write_all(std::slice::from_ref(byte)).await?;
            stream.flush().await?;
        }
        Ok(())
    } else {
        stream.write_all(bytes).await
    }
}

async fn serve(
    mut stream: TcpStream,
    config: Config,
    seen: mpsc::UnboundedSender<Seen>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let trickle = config.trickle;
    // The parent greets first and sends its READY only after our greeting.
    let mut theirs = [0u8; 64];
    stream.read_exact(&mut theirs).await?;
    send(&mut stream, &greeting(config.mechanism, true), trickle).await?;
    send(&mut stream, &ready(config.socket_type), trickle).await?;
    let (ready_flags, ready) = read_frame(&mut stream).await?;
    let _ = seen.send(Seen::Handshake {
        greeting: theirs.to_vec(),
        ready_flags,
        ready,
    });
    if let Some(context) = config.ping {
        let mut body = 100u16.to_be_bytes().to_vec(); // TTL, in tenths of a second
        body.extend_from_slice(context);
        send(&mut stream, &command(b"PING", &body), trickle).await?;
    }
    loop {
        let (flags, body) = read_frame(&mut stream).await?;
        if flags & COMMAND != 0 {
            let name_len = body[0] as usize;
            if &body[1..1 + name_len] == b"PONG" {
                let _ = seen.send(Seen::Pong(body[1 + name_len..].to_vec()));
            }
            continue;
        }
        if flags & MORE != 0 {
            continue; // the empty delimiter
        }
        let Ok(message) = RawMessage::parse(Bytes::from(body), &Limits::default()) else {
            continue;
        };
        let out = match message.kind {
            MessageKind::Heartbeat => reply_frames(&encode_heartbeat_reply(&message)),
            MessageKind::Call => {
                let function = message.function().unwrap_or_default().to_owned();
                let _ = seen.send(Seen::Call(function.clone()));
                answer(&message, &function)
            }
            _ => continue,
        };
        send(&mut stream, &out, trickle).await?;
    }
}

/// The bytes that answer the call `message` to `function`.
fn answer(message: &RawMessage, function: &str) -> Vec<u8> {
    let id = message.id().unwrap_or_default();
    let args = message.args().unwrap_or_default();
    match function {
        "add" => {
            let a: i64 = args[0].decode().expect("an integer");
            let b: i64 = args[1].decode().expect("an integer");
            reply_frames(&encode_response(
                id,
                &EncodedValue::encode(&(a + b)).unwrap(),
            ))
        }
        "echo" => reply_frames(&encode_response(id, &args[0])),
        "error_command" => {
            let mut body = vec![ERROR_REASON.len() as u8];
            body.extend_from_slice(ERROR_REASON.as_bytes());
            // The connection stays open: only the command itself can fail the call.
            command(b"ERROR", &body)
        }
        "reserved_flag" => {
            // A correct reply, except that its delimiter has the reserved bit 0x08: a parent
            // that ignored the bit would answer the call.
            let mut bytes = vec![0x08 | MORE, 0];
            bytes.extend_from_slice(&frame(
                &encode_response(id, &EncodedValue::encode(&1).unwrap()),
                false,
            ));
            bytes
        }
        "huge_frame" => {
            // A frame announcing 1 TiB, and a little of it; the rest never comes.
            let mut bytes = vec![LONG];
            bytes.extend_from_slice(&(1u64 << 40).to_be_bytes());
            bytes.extend_from_slice(&[0u8; 64]);
            bytes
        }
        other => reply_frames(&encode_error(id, &format!("Function '{other}' not found"))),
    }
}

fn long_call() -> CallOptions {
    CallOptions::new().timeout(Duration::from_secs(60))
}

/// Starts `worker`, bounded by [`WAIT`].
async fn start(handle: &multifrost::Handle) -> multifrost::Result<()> {
    tokio::time::timeout(WAIT, handle.start())
        .await
        .expect("start() did not return within 30 s")
}

/// Calls `function` with a 60 s call timeout, and panics unless it returns (or fails) within
/// [`WAIT`], well before that timeout.
async fn call_bounded(handle: &multifrost::Handle, function: &str) -> multifrost::Result<i64> {
    tokio::time::timeout(
        WAIT,
        handle.call_dyn_with::<i64>(function, (), &long_call()),
    )
    .await
    .unwrap_or_else(|_| panic!("'{function}' neither failed nor returned within {WAIT:?}"))
}

async fn add(handle: &multifrost::Handle, a: i64, b: i64) -> i64 {
    tokio::time::timeout(
        WAIT,
        handle.call_dyn_with::<i64>("add", (a, b), &long_call()),
    )
    .await
    .expect("add did not return within 30 s")
    .expect("add")
}

/// Asserts that `err` is the connection's end, for a reason containing `needle`.
fn assert_ended_by(err: &Error, needle: &str) {
    match err {
        Error::Disconnected { reason, .. } => assert!(
            reason.contains(needle),
            "the connection ended for another reason than {needle:?}: {reason}"
        ),
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

/// Calls `function` through a parent of a fresh service: the call fails with the connection's
/// end, for a reason containing `needle`, and the next call connects again and works.
async fn assert_call_ends_the_connection(function: &str, needle: &str) {
    let service = Service::start(Config::default()).await;
    let worker = service.parent();
    let handle = worker.handle();
    start(&handle).await.expect("start");
    let err = call_bounded(&handle, function)
        .await
        .expect_err("the call fails");
    assert_ended_by(&err, needle);
    assert_eq!(add(&handle, 20, 22).await, 42);
    handle.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Commands and frames from the peer.

/// The parent greets as a ZMTP 3.0 DEALER with the NULL mechanism, answers a `PING` sent right
/// after the handshake with a `PONG` carrying the same context, and calls work afterwards.
#[tokio::test]
async fn a_ping_gets_a_pong_with_its_context_and_calls_still_work() {
    let mut service = Service::start(Config {
        ping: Some(b"ctx-42"),
        ..Config::default()
    })
    .await;
    let worker = service.parent();
    let handle = worker.handle();
    start(&handle).await.expect("start");
    let (greeting, ready_flags, ready) = service
        .expect("the handshake", |seen| match seen {
            Seen::Handshake {
                greeting,
                ready_flags,
                ready,
            } => Some((greeting, ready_flags, ready)),
            _ => None,
        })
        .await;
    assert_eq!((greeting[0], greeting[9]), (0xff, 0x7f), "ZMTP signature");
    assert_eq!((greeting[10], greeting[11]), (3, 0), "version 3.0");
    assert_eq!(&greeting[12..17], b"NULL\0", "the NULL mechanism");
    assert_eq!(greeting[32], 0, "not as server");
    assert_eq!(
        ready_flags, COMMAND,
        "a short command frame after the greeting"
    );
    let mut expected_ready = b"\x05READY\x0bSocket-Type".to_vec();
    expected_ready.extend_from_slice(&6u32.to_be_bytes());
    expected_ready.extend_from_slice(b"DEALER");
    assert_eq!(
        ready, expected_ready,
        "READY announcing a DEALER, no Identity"
    );

    let context = service
        .expect("a PONG", |seen| match seen {
            Seen::Pong(context) => Some(context),
            _ => None,
        })
        .await;
    assert_eq!(context, b"ctx-42", "the PONG carries the PING's context");
    assert_eq!(add(&handle, 20, 22).await, 42);
    assert_eq!(add(&handle, -5, 3).await, -2);
    handle.stop().await;
}

/// Stopping a connect-mode parent ends its connection at once: the service sees the parent's
/// end close as `stop()` returns, not once the last reference to the connection goes.
#[tokio::test]
async fn a_stopped_parent_closes_its_connection_at_once() {
    let mut service = Service::start(Config::default()).await;
    // An hour between heartbeats: a heartbeat loop that kept the connection until its next
    // beat would keep it open past this test's bound.
    let worker = service
        .parent()
        .heartbeat_interval(Duration::from_secs(3600));
    let handle = worker.handle();
    start(&handle).await.expect("start");
    assert_eq!(add(&handle, 1, 2).await, 3);
    // The handle (and the heartbeat loop's reference) stay alive past `stop()`.
    handle.stop().await;
    service
        .expect("the connection closed", |seen| {
            matches!(seen, Seen::Closed).then_some(())
        })
        .await;
    drop(handle);
}

/// An `ERROR` command from the peer ends the connection and fails the call waiting on it at
/// once (not at its 60 s timeout), although the peer keeps the connection open: the parent acts
/// on the command itself, and the error gives the peer's reason. The next call connects again.
#[tokio::test]
async fn an_error_command_fails_the_waiting_call_at_once() {
    let mut service = Service::start(Config::default()).await;
    let worker = service.parent();
    let handle = worker.handle();
    start(&handle).await.expect("start");
    assert_eq!(add(&handle, 1, 2).await, 3);
    let result = call_bounded(&handle, "error_command").await;
    service
        .expect("the call", |seen| {
            matches!(seen, Seen::Call(f) if f == "error_command").then_some(())
        })
        .await;
    let err = result.expect_err("a call answered by ERROR fails");
    assert!(
        matches!(err, Error::Disconnected { .. }),
        "expected Disconnected, got {err:?}"
    );
    assert_ended_by(&err, &format!("the peer sent ERROR: {ERROR_REASON}"));
    // The next call connects again (connect mode) and works.
    assert_eq!(add(&handle, 20, 22).await, 42);
    handle.stop().await;
}

/// A frame with a reserved flag bit (0x08), on the delimiter of an otherwise correct reply,
/// ends the connection: the call fails at once instead of being answered by the frames around
/// it or timing out, and the error names the reserved flags. The next call connects
/// again.
#[tokio::test]
async fn a_frame_with_reserved_flags_fails_the_call() {
    assert_call_ends_the_connection("reserved_flag", "a frame with reserved flags set (0x09)")
        .await;
}

/// A frame header announcing 1 TiB is refused as soon as it is read: the call fails at once
/// rather than waiting for bytes that never come (or reserving them), the error says
/// the frame is larger than any message, and the next call connects again.
#[tokio::test]
async fn a_frame_announcing_a_terabyte_fails_the_call_at_once() {
    let needle = format!(
        "a frame announcing {} bytes, more than any message can be",
        1u64 << 40
    );
    assert_call_ends_the_connection("huge_frame", &needle).await;
}

/// Frames split across reads down to single bytes (greeting, READY, heartbeat echoes and
/// replies, each byte its own write with TCP_NODELAY) are put back together: the handshake
/// completes and calls get the right answers, short frames and long ones alike.
#[tokio::test]
async fn replies_written_one_byte_at_a_time_are_reassembled() {
    let mut service = Service::start(Config {
        trickle: true,
        ..Config::default()
    })
    .await;
    let worker = service.parent();
    let handle = worker.handle();
    start(&handle).await.expect("start");
    assert_eq!(add(&handle, 20, 22).await, 42);
    service
        .expect("the call", |seen| {
            matches!(seen, Seen::Call(f) if f == "add").then_some(())
        })
        .await;
    // Over 255 bytes: a long frame, its 8-byte size split over 8 reads.
    let text: String = (0..1000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let echoed: String = tokio::time::timeout(
        WAIT,
        handle.call_dyn_with("echo", (text.clone(),), &long_call()),
    )
    .await
    .expect("echo did not return within 30 s")
    .expect("echo");
    assert_eq!(echoed, text);
    for i in 0..5 {
        assert_eq!(add(&handle, i, i * 10).await, i * 11);
    }
    handle
        .heartbeat()
        .await
        .expect("a heartbeat, trickled back");
    handle.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Handshakes the parent refuses.

/// Why `start()` of a parent of a service configured as `config` fails.
async fn refused_at_start(config: Config) -> String {
    let service = Service::start(config).await;
    let worker = service.parent();
    let err = start(&worker.handle())
        .await
        .expect_err("the peer is refused");
    match err {
        Error::StartFailed { reason, .. } => reason,
        other => panic!("expected StartFailed, got {other:?}"),
    }
}

/// A peer whose READY announces a PUB socket is refused: `start()` fails saying it is not a
/// ROUTER.
#[tokio::test]
async fn a_peer_announcing_pub_is_refused_at_start() {
    let reason = refused_at_start(Config {
        socket_type: "PUB",
        ..Config::default()
    })
    .await;
    assert!(
        reason.contains("PUB") && reason.contains("not a ROUTER"),
        "{reason}"
    );
}

/// A peer whose greeting asks for the PLAIN mechanism is refused: `start()` fails saying only
/// NULL is spoken.
#[tokio::test]
async fn a_peer_asking_for_plain_is_refused_at_start() {
    let reason = refused_at_start(Config {
        mechanism: "PLAIN",
        ..Config::default()
    })
    .await;
    assert!(
        reason.contains("PLAIN") && reason.contains("NULL"),
        "{reason}"
    );
}

// ---------------------------------------------------------------------------------------------
// Payloads larger than the socket buffers, with a real worker.

const MIB: usize = 1024 * 1024;

/// `len` bytes of a pattern that differs with `seed` and does not repeat at any power of two.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

fn big_call() -> CallOptions {
    CallOptions::new().timeout(Duration::from_secs(120))
}

/// A 24 MiB message, which no socket buffer takes at once (so the send goes through the
/// outbox's blocked path and the writer task), reaches the worker and comes back byte for
/// byte; small calls work afterwards. The worker refuses a single bin over 10 MiB, so the
/// 24 MiB are three bins of 8 MiB in one argument.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_24_mib_echo_comes_back_intact_then_small_calls_work() {
    let worker = support::rust_worker().max_in_flight_bytes(512 * MIB);
    let handle = worker.handle();
    start(&handle).await.expect("start");
    let chunks: Vec<ByteBuf> = (0..3u8)
        .map(|seed| ByteBuf::from(pattern(8 * MIB, seed)))
        .collect();
    let echoed: Vec<ByteBuf> = tokio::time::timeout(
        WAIT,
        handle.call_dyn_with("echo", (chunks.clone(),), &big_call()),
    )
    .await
    .expect("the 24 MiB echo did not return within 30 s")
    .expect("echo");
    assert_eq!(echoed.len(), 3, "three chunks back");
    for (i, (sent, back)) in chunks.iter().zip(&echoed).enumerate() {
        assert!(
            sent == back,
            "chunk {i} came back different ({} bytes sent, {} back)",
            sent.len(),
            back.len()
        );
    }
    for i in 0..5 {
        assert_eq!(add(&handle, i, 100).await, i + 100);
    }
    assert_eq!(handle.pending_calls(), 0);
    handle.stop().await;
}

/// Several 4 MiB echoes and small calls at once, through the outbox's blocked path: every
/// call gets its own answer, intact (no message is interleaved with, or lost behind, another).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_4_mib_echoes_and_small_calls_each_get_their_own_answer() {
    let worker = support::rust_worker().max_in_flight_bytes(512 * MIB);
    let handle = worker.handle();
    start(&handle).await.expect("start");
    let mut calls = tokio::task::JoinSet::new();
    for seed in 0..6u8 {
        let echoer = handle.clone();
        calls.spawn(async move {
            let sent = ByteBuf::from(pattern(4 * MIB, seed));
            let back: ByteBuf = echoer
                .call_dyn_with("echo", (sent.clone(),), &big_call())
                .await
                .unwrap_or_else(|err| panic!("echo {seed}: {err}"));
            assert!(
                sent == back,
                "echo {seed} came back different ({} bytes sent, {} back)",
                sent.len(),
                back.len()
            );
        });
        for k in 0..4i64 {
            let adder = handle.clone();
            let a = i64::from(seed) * 1000 + k;
            calls.spawn(async move {
                let sum: i64 = adder
                    .call_dyn_with("add", (a, 7), &big_call())
                    .await
                    .unwrap_or_else(|err| panic!("add({a}, 7): {err}"));
                assert_eq!(sum, a + 7);
            });
        }
    }
    let all = tokio::time::timeout(WAIT, async {
        let mut done = 0;
        while let Some(call) = calls.join_next().await {
            call.expect("a call panicked");
            done += 1;
        }
        done
    })
    .await
    .expect("the concurrent calls did not all return within 30 s");
    assert_eq!(all, 30);
    assert_eq!(add(&handle, 20, 22).await, 42);
    assert_eq!(handle.pending_calls(), 0);
    handle.stop().await;
}

#[tokio::test]
async fn a_service_that_listens_a_moment_after_it_is_found_is_connected_to() {
    // A service is in the registry before it listens (every implementation does so): a
    // parent that finds it in between sees its connection refused, and tries again.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("local address").port()
    };
    let worker = ParentWorker::connect_endpoint(format!("tcp://127.0.0.1:{port}")).name("late");
    let handle = worker.handle();
    let starting = tokio::spawn({
        let handle = handle.clone();
        async move { start(&handle).await }
    });
    // The service's own start-up, between its registration and its listening.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    let _service = Service::on(listener, Config::default());
    starting
        .await
        .unwrap()
        .expect("start() connects once the service listens");
    assert_eq!(add(&handle, 2, 3).await, 5);
    handle.stop().await;
}
