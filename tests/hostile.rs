//! Hostile input: whatever bytes a Rust process receives, it keeps serving, never panics,
//! never grows without bound, and answers calls over a limit with an error naming the limit.
//!
//! - The fuzz targets' code (fuzz/src/lib.rs) on the seed corpus, the kept regression inputs and
//!   a fixed-seed mutation loop: the stable, bounded part of `scripts/fuzz.sh`.
//! - A raw ZeroMQ DEALER (not multifrost's parent) sending random and mutated frames to a Rust
//!   child, interleaved with valid calls checked by content. 20,000 messages here; 1,000,000
//!   with `MULTIFROST_LONG=1` (`scripts/soak.sh`).
//! - Calls over each limit (child side) and replies over each limit (parent side, against a
//!   raw ROUTER standing in for the child).
//! - ZMTP frames that announce a huge size, which the zeromq crate handles before multifrost
//!   sees anything.

mod fuzzing;
mod support;

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fuzzing::{enc, Rng};
use multifrost::protocol::{
    encode_error, encode_heartbeat, encode_heartbeat_reply, encode_response, new_id, unix_now,
    MessageKind, RawMessage,
};
use multifrost::{CallOptions, EncodedValue, Error, Limits, ParentWorker, Value};
use serde_bytes::ByteBuf;
use tokio::sync::mpsc;
use zeromq::{
    DealerSendHalf, DealerSocket, RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage,
};

/// Counts the bytes allocated by the current thread, to bound what decoding costs.
struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
    static PEAK_BYTES: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

fn count_allocation(delta: isize) {
    let _ = LIVE_BYTES.try_with(|live| {
        live.set(live.get() + delta);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

// SAFETY: forwards to the system allocator; the counters are plain thread-local cells.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count_allocation(layout.size() as isize);
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        count_allocation(-(layout.size() as isize));
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        count_allocation(new_size as isize - layout.size() as isize);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The most this thread had allocated at once while running `f`, above what it held before.
fn peak_allocation_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE_BYTES.with(|live| live.get());
    PEAK_BYTES.with(|peak| peak.set(base));
    let result = f();
    let peak = PEAK_BYTES.with(|peak| peak.get());
    (result, (peak - base).max(0) as usize)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// The fuzz targets on stable: corpus, regressions, mutation loop.

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else if path
            .file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The seed corpus (fuzz/seeds/) as byte strings.
fn seeds() -> Vec<Vec<u8>> {
    files_under(&support::repo().join("fuzz/seeds"))
        .iter()
        .map(|path| std::fs::read(path).expect("reading a seed"))
        .collect()
}

/// Runs both fuzz targets on one input; on a panic, names the input so it can be kept.
fn run_targets(input: &[u8], origin: &str) {
    let outcome = std::panic::catch_unwind(|| {
        harness::decode_message(input);
        harness::child_dispatch(input);
    });
    if let Err(panic) = outcome {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!(
            "fuzz target panicked on {origin}: {text}\ninput ({} bytes): {}",
            input.len(),
            hex(input)
        );
    }
}

#[test]
fn fuzz_seed_corpus_and_regressions_replay_without_panic() {
    let seeds = files_under(&support::repo().join("fuzz/seeds"));
    assert!(
        seeds.len() >= 100,
        "fuzz/seeds/ holds only {} files",
        seeds.len()
    );
    let regressions = files_under(&support::repo().join("fuzz/regressions"));
    for path in seeds.iter().chain(&regressions) {
        let input = std::fs::read(path).expect("reading a fuzz input");
        run_targets(&input, &path.display().to_string());
    }
}

#[test]
fn fuzz_mutation_loop_finds_no_panic() {
    // Inputs per target; about 10 s in a debug build. MULTIFROST_LONG=1 runs ten times more.
    let rounds = if support::long_run() {
        2_000_000
    } else {
        200_000
    };
    let seeds = seeds();
    let mut rng = Rng::new(0x6d75_6c74_6966_726f);
    let started = Instant::now();
    for round in 0..rounds {
        let base = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let input = if rng.one_in(50) {
            let n = rng.below(64);
            rng.bytes(n)
        } else {
            fuzzing::mutate(&mut rng, base, other)
        };
        run_targets(&input, &format!("mutation round {round}"));
    }
    eprintln!("mutation loop: {rounds} inputs in {:?}", started.elapsed());
}

#[test]
fn decoding_a_deeply_nested_frame_allocates_a_bounded_amount() {
    // Regression (found by measuring, not by the fuzzer): the scanner went on walking past the
    // depth limit with one 8-byte stack entry per level, so a 64 MiB frame of nested arrays,
    // within the message size limit, cost 577 MiB and 1.8 s to refuse, and a 190 MiB frame
    // 1.7 GiB: memory proportional to the input, nine times over. It now stops at the limit.
    let limits = Limits::default();
    for (name, value) in [
        ("arrays", fuzzing::nested(limits.max_message_len - 200)),
        (
            "maps",
            fuzzing::nested_maps((limits.max_message_len - 200) / 3),
        ),
        ("arrays with a second item per level", {
            let mut v = vec![0x92u8; 8_000_000];
            v.extend(std::iter::repeat_n(0xc0, 8_000_001));
            v
        }),
    ] {
        let frame = Bytes::from(fuzzing::call_with("deep-call", "echo", &[&value]));
        drop(value);
        let (message, peak) = peak_allocation_of(|| RawMessage::parse(frame.clone(), &limits));
        let message = message.expect("a call over the depth limit still parses");
        assert_eq!(message.id.as_deref(), Some("deep-call"), "{name}");
        assert_eq!(
            message.violation,
            Some(multifrost::protocol::DecodeError::TooDeep { limit: 256 }),
            "{name}"
        );
        assert!(
            peak < 64 * 1024,
            "{name}: refusing a {} byte frame allocated {peak} bytes",
            frame.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A Rust child behind a raw DEALER.

/// A hand_worker child in spawn mode, connected to a raw DEALER this test bound.
struct RawChild {
    sender: DealerSendHalf,
    replies: mpsc::UnboundedReceiver<Bytes>,
    receiving: tokio::task::JoinHandle<()>,
    process: tokio::process::Child,
    pid: u32,
}

impl RawChild {
    async fn start() -> RawChild {
        let mut dealer = DealerSocket::new();
        let endpoint = dealer
            .bind("tcp://127.0.0.1:0")
            .await
            .expect("bind a DEALER");
        let zeromq::Endpoint::Tcp(_, port) = endpoint else {
            panic!("not a tcp endpoint: {endpoint}")
        };
        let process = tokio::process::Command::new(support::hand_worker())
            .env("COMLINK_ZMQ_PORT", port.to_string())
            // glibc raises its mmap threshold after a large free (up to 32 MiB), so the buffers
            // of frames over 10 MiB would come from the heap and stay resident after being
            // freed. A fixed threshold makes RSS show what the child holds, not what the
            // allocator keeps for later.
            .env("MALLOC_MMAP_THRESHOLD_", "131072")
            .kill_on_drop(true)
            .spawn()
            .expect("spawning hand_worker");
        let pid = process.id().expect("a pid");
        let (sender, mut receiver) = dealer.split();
        let (tx, replies) = mpsc::unbounded_channel();
        let receiving = tokio::spawn(async move {
            while let Ok(message) = receiver.recv().await {
                let payload = message.into_vec().pop().unwrap_or_default();
                if tx.send(payload).is_err() {
                    return;
                }
            }
        });
        let mut child = RawChild {
            sender,
            replies,
            receiving,
            process,
            pid,
        };
        // Ready once a heartbeat comes back; until the child connects, sends are refused.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                Instant::now() < deadline,
                "the child never answered a heartbeat"
            );
            let id = new_id();
            if child
                .send_payload(encode_heartbeat(&id, unix_now()))
                .await
                .is_ok()
            {
                if let Ok(Some(reply)) =
                    tokio::time::timeout(Duration::from_millis(500), child.replies.recv()).await
                {
                    let reply =
                        RawMessage::parse(reply, &Limits::default()).expect("a heartbeat reply");
                    assert_eq!(reply.id.as_deref(), Some(id.as_str()));
                    return child;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    async fn send_frames(&mut self, frames: Vec<Bytes>) -> zeromq::ZmqResult<()> {
        let message = ZmqMessage::try_from(frames).expect("at least one frame");
        self.sender.send(message).await
    }

    async fn send_payload(&mut self, payload: Vec<u8>) -> zeromq::ZmqResult<()> {
        self.send_frames(vec![Bytes::new(), Bytes::from(payload)])
            .await
    }

    /// Waits for the reply with this id, skipping others (output, replies to junk).
    async fn reply_to(&mut self, id: &str, within: Duration) -> RawMessage {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let payload = tokio::time::timeout(left, self.replies.recv())
                .await
                .unwrap_or_else(|_| panic!("no reply to {id} within {within:?}"))
                .expect("the DEALER's receive task ended");
            let limits = Limits {
                max_message_len: usize::MAX,
                ..Limits::default()
            };
            if let Ok(reply) = RawMessage::parse(payload, &limits) {
                if reply.id.as_deref() == Some(id) {
                    return reply;
                }
            }
        }
    }

    /// Calls `function` with encoded arguments and returns its reply.
    async fn call(&mut self, function: &str, args: &[&[u8]]) -> RawMessage {
        let id = new_id();
        self.send_payload(fuzzing::call_with(&id, function, args))
            .await
            .expect("send");
        self.reply_to(&id, Duration::from_secs(60)).await
    }

    async fn add(&mut self, a: i64, b: i64) -> i64 {
        let reply = self.call("add", &[&enc(&a), &enc(&b)]).await;
        assert_eq!(
            reply.kind,
            MessageKind::Response,
            "add failed: {:?}",
            reply.error
        );
        reply.result().decode().expect("an integer sum")
    }

    /// Closes the DEALER; the child sees its parent leave and must exit cleanly.
    async fn finish(mut self) {
        // The socket closes once both halves are gone.
        self.receiving.abort();
        let _ = (&mut self.receiving).await;
        drop(self.sender);
        let status = tokio::time::timeout(Duration::from_secs(20), self.process.wait())
            .await
            .expect("the child exits once its parent is gone")
            .expect("wait");
        assert!(
            status.success(),
            "the child did not exit cleanly: {status:?}"
        );
    }
}

/// The frames of one hostile message (not a tracked call), chosen at random.
struct Junk {
    /// Seeds and valid calls to mutate: no shutdown, nothing that sleeps, exits or allocates on
    /// request.
    bases: Vec<Vec<u8>>,
    big: Vec<(&'static str, Bytes)>,
}

/// Functions of hand_worker that a fuzzer must not reach: they stop the child or run (or
/// allocate) as long (or as much) as the caller asks.
const UNSAFE_FUNCTIONS: &[&str] = &[
    "exit",
    "sleep",
    "large_data",
    "fibonacci",
    "fibonacci_async",
];

fn safe_for_hand_worker(payload: &[u8]) -> bool {
    match RawMessage::parse(payload.to_vec().into(), &Limits::default()) {
        Ok(message) => {
            message.kind != MessageKind::Shutdown
                && !message
                    .function
                    .as_deref()
                    .is_some_and(|f| UNSAFE_FUNCTIONS.contains(&f))
        }
        Err(_) => true,
    }
}

impl Junk {
    fn new() -> Junk {
        let mut bases: Vec<Vec<u8>> = seeds()
            .into_iter()
            .filter(|s| safe_for_hand_worker(s))
            .collect();
        for (_, value) in fuzzing::odd_values() {
            bases.push(fuzzing::call_with(&new_id(), "echo", &[&value]));
            bases.push(fuzzing::call_with(&new_id(), "add", &[&value, &value]));
        }
        bases.push(fuzzing::call_with(&new_id(), "add", &[&enc(&1), &enc(&2)]));
        bases.push(fuzzing::call_with(&new_id(), "panic", &[&enc("fuzz")]));
        const TEN_MIB: usize = 10 * 1024 * 1024;
        let big = vec![
            ("nested 100k deep", fuzzing::nested(100_000)),
            ("nested maps 100k deep", fuzzing::nested_maps(100_000)),
            ("str over 10 MiB", fuzzing::big_str(TEN_MIB + 1)),
            ("bin over 10 MiB", fuzzing::big_bin(TEN_MIB + 1)),
            ("array of 100,001 items", fuzzing::big_array(100_001)),
            ("map of 100,001 int keys", fuzzing::big_int_key_map(100_001)),
        ]
        .into_iter()
        .map(|(name, value)| {
            (
                name,
                Bytes::from(fuzzing::call_with(&new_id(), "echo", &[&value])),
            )
        })
        .collect();
        Junk { bases, big }
    }

    fn frames(&self, rng: &mut Rng) -> Vec<Bytes> {
        let empty = Bytes::new;
        loop {
            let payload = match rng.below(12) {
                0 => {
                    let n = rng.below(300);
                    rng.bytes(n)
                }
                1 => {
                    // Truncated valid message.
                    let base = &self.bases[rng.below(self.bases.len())];
                    base[..rng.below(base.len())].to_vec()
                }
                2 => {
                    // A call around an odd value, to a function that decodes it.
                    let odd = fuzzing::odd_values();
                    let (_, value) = &odd[rng.below(odd.len())];
                    let function = [
                        "add",
                        "echo",
                        "multiply",
                        "divide",
                        "factorial",
                        "throw_error",
                        "get_metadata",
                    ][rng.below(7)];
                    fuzzing::call_with(&new_id(), function, &[value, value])
                }
                3 => {
                    // Frame-count games around a valid-looking payload.
                    let base = Bytes::from(self.bases[rng.below(self.bases.len())].clone());
                    let junk = Bytes::from(rng.bytes(8));
                    return match rng.below(6) {
                        0 => vec![base],
                        1 => vec![empty()],
                        2 => vec![empty(), empty(), base],
                        3 => vec![junk, empty(), base],
                        4 => vec![empty(), base, junk],
                        _ => (0..2 + rng.below(6))
                            .map(|_| Bytes::from(rng.bytes(4)))
                            .collect(),
                    };
                }
                4 => {
                    // Protocol-level oddities: wrong app, missing id or function, bad namespace.
                    let (id, call, add, args) =
                        (enc(&new_id()), enc("call"), enc("add"), enc(&(1, 2)));
                    let key = |k: &str| enc(k);
                    let entries: Vec<(Vec<u8>, Vec<u8>)> = match rng.below(6) {
                        0 => vec![
                            (key("app"), enc("comlink_ipc_v3")),
                            (key("id"), id),
                            (key("type"), call),
                            (key("function"), add),
                            (key("args"), args),
                        ],
                        1 => vec![
                            (key("type"), call),
                            (key("function"), add),
                            (key("args"), args),
                        ],
                        2 => vec![(key("id"), id), (key("type"), call), (key("args"), args)],
                        3 => vec![
                            (key("id"), enc("")),
                            (key("type"), call),
                            (key("function"), add),
                        ],
                        4 => vec![
                            (key("id"), id),
                            (key("type"), call),
                            (key("function"), add),
                            (key("namespace"), vec![0xc0]),
                        ],
                        _ => vec![
                            (key("id"), id),
                            (key("type"), enc("bogus")),
                            (key("function"), add),
                            (vec![0x07], vec![0x07]),
                        ],
                    };
                    fuzzing::map_of(&entries)
                }
                _ => {
                    let base = &self.bases[rng.below(self.bases.len())];
                    let other = &self.bases[rng.below(self.bases.len())];
                    fuzzing::mutate(rng, base, other)
                }
            };
            if safe_for_hand_worker(&payload) {
                return vec![empty(), Bytes::from(payload)];
            }
        }
    }
}

/// The real-socket fuzz run: `messages` hostile or valid messages at a Rust child.
async fn fuzz_child_over_a_real_socket(messages: usize) {
    let mut child = RawChild::start().await;
    let junk = Junk::new();
    // Warm up (allocator, runtime threads, and the buffers large frames leave behind in the
    // allocator and the transport) before taking the reference figure, so that what the run
    // measures is growth: a leak, not memory kept for reuse.
    for i in 0..200 {
        assert_eq!(child.add(i, 1).await, i + 1);
    }
    for (_, payload) in &junk.big {
        child
            .send_frames(vec![Bytes::new(), payload.clone()])
            .await
            .expect("send");
        assert_eq!(child.add(1, 1).await, 2);
    }
    // A round of junk like the run's own (another seed): the child's allocator settles at a
    // working size for this traffic (about 90 MiB here, whatever the count), and the figure
    // after the run must not grow beyond it: growth would be a leak.
    let mut warm_rng = Rng::new(0x05ee_d0fa_110c);
    for _ in 0..messages.min(20_000) {
        child
            .send_frames(junk.frames(&mut warm_rng))
            .await
            .expect("send");
    }
    assert_eq!(child.add(1, 1).await, 2);
    let rss_before = support::rss_kib(child.pid);
    let mut rng = Rng::new(0x00c0_ffee_1234_5678);
    let mut expected: HashMap<String, i64> = HashMap::new();
    let mut answered: HashSet<String> = HashSet::new();
    let (mut valid, mut hostile, mut other_replies, mut big_sent) =
        (0usize, 0usize, 0usize, 0usize);
    let big_every = (messages / 12).max(1);
    let started = Instant::now();
    let mut peak_rss = rss_before;
    let batch = 1000;
    let mut sent = 0;
    while sent < messages {
        let end = (sent + batch).min(messages);
        for i in sent..end {
            if i % 8 == 0 {
                let (a, b) = (i as i64, (rng.next() >> 2) as i64 % 1_000_000_007);
                let id = new_id();
                expected.insert(id.clone(), a + b);
                child
                    .send_payload(fuzzing::call_with(&id, "add", &[&enc(&a), &enc(&b)]))
                    .await
                    .expect("send a valid call");
                valid += 1;
            } else if i % big_every == big_every / 2 {
                let (_, payload) = &junk.big[big_sent % junk.big.len()];
                big_sent += 1;
                child
                    .send_frames(vec![Bytes::new(), payload.clone()])
                    .await
                    .expect("send");
                hostile += 1;
            } else {
                child
                    .send_frames(junk.frames(&mut rng))
                    .await
                    .expect("send");
                hostile += 1;
            }
        }
        sent = end;
        // Every valid call of the batch answered before the next batch: in-flight stays bounded.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !expected.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some(payload)) = tokio::time::timeout(left, child.replies.recv()).await else {
                panic!(
                    "{} valid calls of the batch ending at message {sent} got no reply within 60 s (child alive: {})",
                    expected.len(),
                    support::process_alive(child.pid)
                );
            };
            let Ok(reply) = RawMessage::parse(payload, &Limits::default()) else {
                panic!("the child sent a reply that does not parse");
            };
            let Some(id) = reply.id.clone() else {
                other_replies += 1;
                continue;
            };
            match expected.remove(&id) {
                Some(sum) => {
                    assert_eq!(
                        reply.kind,
                        MessageKind::Response,
                        "valid add {id} failed: {:?}",
                        reply.error
                    );
                    assert_eq!(
                        reply.result().decode::<i64>().ok(),
                        Some(sum),
                        "wrong sum for {id}"
                    );
                    answered.insert(id);
                }
                None => {
                    assert!(!answered.contains(&id), "a second reply to valid call {id}");
                    other_replies += 1;
                }
            }
        }
        peak_rss = peak_rss.max(support::rss_kib(child.pid));
    }
    let elapsed = started.elapsed();
    assert_eq!(answered.len(), valid, "every valid call got its reply");
    assert_eq!(child.add(20, 22).await, 42);
    // Give replies to the last junk a moment to drain, then read the figure.
    let _ = child.add(1, 1).await;
    let rss_after = support::rss_kib(child.pid);
    eprintln!(
        "real-socket fuzz: {messages} messages ({valid} valid calls, {hostile} hostile, {big_sent} over 10 MiB/100k items/100k deep) \
         in {elapsed:?} = {:.0} messages/s; {other_replies} replies to hostile messages; child RSS {} KiB before, \
         {} KiB peak, {} KiB after",
        messages as f64 / elapsed.as_secs_f64(),
        rss_before,
        peak_rss,
        rss_after
    );
    assert!(
        rss_after <= rss_before + 64 * 1024,
        "child RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    child.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_child_survives_a_raw_dealer_sending_random_and_mutated_frames() {
    // MULTIFROST_FUZZ_MESSAGES overrides the count (for longer soaks by hand).
    let messages = std::env::var("MULTIFROST_FUZZ_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if support::long_run() {
            1_000_000
        } else {
            20_000
        });
    fuzz_child_over_a_real_socket(messages).await;
}

// ---------------------------------------------------------------------------------------------
// Over-limit calls: the child answers with an error naming the limit.

const TEN_MIB: usize = 10 * 1024 * 1024;

fn assert_refused(reply: &RawMessage, needle: &str) {
    assert_eq!(
        reply.kind,
        MessageKind::Error,
        "expected an error reply, got {:?}",
        reply.kind
    );
    let text = reply.error.as_deref().unwrap_or("");
    assert!(
        text.contains(needle),
        "error {text:?} does not name the limit ({needle:?})"
    );
}

#[tokio::test]
async fn calls_over_a_limit_get_an_error_reply_naming_the_limit() {
    let mut child = RawChild::start().await;
    // str and bin: 10 MiB is the limit.
    let reply = child.call("echo", &[&fuzzing::big_str(TEN_MIB + 1)]).await;
    assert_refused(
        &reply,
        "str or bin of 10485761 bytes exceeds the limit of 10485760 bytes",
    );
    let reply = child.call("echo", &[&fuzzing::big_bin(TEN_MIB + 1)]).await;
    assert_refused(&reply, "exceeds the limit of 10485760 bytes");
    let reply = child.call("echo", &[&fuzzing::big_str(TEN_MIB)]).await;
    assert_eq!(
        reply.kind,
        MessageKind::Response,
        "exactly 10 MiB is allowed: {:?}",
        reply.error
    );
    assert_eq!(reply.result().decode::<String>().unwrap().len(), TEN_MIB);
    // Arrays and maps: 100,000 items.
    let reply = child.call("echo", &[&fuzzing::big_array(100_001)]).await;
    assert_refused(
        &reply,
        "array or map of 100001 items exceeds the limit of 100000 items",
    );
    let reply = child
        .call("echo", &[&fuzzing::big_int_key_map(100_001)])
        .await;
    assert_refused(&reply, "exceeds the limit of 100000 items");
    let reply = child.call("echo", &[&fuzzing::big_array(100_000)]).await;
    assert_eq!(
        reply.kind,
        MessageKind::Response,
        "exactly 100,000 items is allowed: {:?}",
        reply.error
    );
    // Depth: the message map is level 1 and `args` level 2, so an argument of 254 nested arrays
    // reaches the limit of 256 and one of 255 goes over it.
    let reply = child.call("echo", &[&fuzzing::nested(255)]).await;
    assert_refused(&reply, "nesting exceeds the depth limit of 256 levels");
    let reply = child.call("echo", &[&fuzzing::nested(100_000)]).await;
    assert_refused(&reply, "depth limit of 256 levels");
    let reply = child.call("echo", &[&fuzzing::nested(254)]).await;
    assert_eq!(
        reply.kind,
        MessageKind::Response,
        "depth 256 is allowed: {:?}",
        reply.error
    );
    // The whole message: 64 MiB.
    let bin = fuzzing::big_bin(TEN_MIB);
    let reply = child
        .call("echo", &[&bin, &bin, &bin, &bin, &bin, &bin, &bin])
        .await;
    assert_refused(&reply, "exceeds the limit of 67108864 bytes");
    assert_eq!(child.add(20, 22).await, 42);
    child.finish().await;
}

#[tokio::test]
async fn an_over_limit_call_through_the_parent_fails_with_the_limit_named() {
    let worker = support::rust_worker();
    let handle = worker.handle();
    handle.start().await.expect("start");
    let err = handle
        .call_dyn::<Value>("echo", (ByteBuf::from(vec![1u8; TEN_MIB + 1]),))
        .await
        .unwrap_err();
    // The parent applies the receive limits before sending: nothing reaches the child.
    match &err {
        Error::Encode { reason, .. } => assert!(
            reason.contains(
                "argument 1: str or bin of 10485761 bytes exceeds the limit of 10485760 bytes"
            ),
            "{reason}"
        ),
        other => panic!("expected an encode error naming the limit, got {other:?}"),
    }
    assert_eq!(handle.call_dyn::<i64>("add", (20, 22)).await.unwrap(), 42);
    assert_eq!(handle.pending_calls(), 0);
    handle.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Over-limit and garbage replies: a raw ROUTER plays the child of a multifrost parent.

/// What the fake child answers to one call.
fn fake_child_replies(call: &RawMessage) -> Vec<Vec<u8>> {
    let id = call.id.clone().unwrap_or_default();
    let args = call.args().unwrap_or_default();
    let response_with = |raw: &[u8]| {
        encode_response(
            &id,
            &EncodedValue::from_bytes(
                raw.to_vec().into(),
                &Limits {
                    max_str_bin_len: usize::MAX,
                    max_items: usize::MAX,
                    max_depth: usize::MAX,
                    max_message_len: usize::MAX,
                },
            )
            .expect("valid msgpack"),
        )
    };
    match call.function.as_deref().unwrap_or("") {
        "add" => {
            let a: i64 = args[0].decode().unwrap();
            let b: i64 = args[1].decode().unwrap();
            vec![encode_response(
                &id,
                &EncodedValue::encode(&(a + b)).unwrap(),
            )]
        }
        "over_str" => vec![response_with(&fuzzing::big_str(TEN_MIB + 1))],
        "over_bin" => vec![response_with(&fuzzing::big_bin(TEN_MIB + 1))],
        "over_items" => vec![response_with(&fuzzing::big_array(100_001))],
        "over_depth" => vec![response_with(&fuzzing::nested(300))],
        "over_error_text" => {
            // An error reply whose text is over the limit.
            let mut reply = fuzzing::raw_map(&[
                (&enc("app"), &enc("comlink_ipc_v4")),
                (&enc("id"), &enc(&id)),
                (&enc("type"), &enc("error")),
            ]);
            reply[0] += 1;
            reply.extend_from_slice(&enc("error"));
            reply.extend_from_slice(&fuzzing::big_str(TEN_MIB + 1));
            vec![reply]
        }
        "garbage_then_answer" => {
            let mut replies: Vec<Vec<u8>> = vec![
                vec![],
                vec![0xc1],
                b"not msgpack at all".to_vec(),
                enc(&[1, 2, 3]),
                fuzzing::call_with(&id, "add", &[&enc(&1)]),
                // Right id, wrong protocol: ignored.
                fuzzing::raw_map(&[
                    (&enc("app"), &enc("comlink_ipc_v3")),
                    (&enc("id"), &enc(&id)),
                    (&enc("type"), &enc("response")),
                    (&enc("result"), &enc(&-1)),
                ]),
                // A reply for a call nobody made.
                encode_response(&new_id(), &EncodedValue::encode(&-2).unwrap()),
                // Non-string id, int keys, odd values.
                fuzzing::raw_map(&[
                    (&enc("id"), &enc(&7)),
                    (&enc("type"), &enc("response")),
                    (&[0x01], &[0x02]),
                ]),
                fuzzing::raw_map(&[
                    (&enc("id"), &[0xa2, 0xff, 0xfe]),
                    (&enc("type"), &enc("response")),
                    (&enc("result"), &enc(&-3)),
                ]),
                fuzzing::raw_map(&[
                    (&enc("type"), &enc("stdout")),
                    (&enc("output"), &[0xa2, 0xff, 0xfe]),
                ]),
            ];
            let mut truncated = encode_response(&id, &EncodedValue::encode(&-4).unwrap());
            truncated.truncate(truncated.len() - 2);
            replies.push(truncated);
            replies.push(encode_response(
                &id,
                &EncodedValue::encode("the answer").unwrap(),
            ));
            replies
        }
        "broken_reply" => {
            // Only a truncated reply: nobody can tell which call it was for.
            let mut truncated = encode_response(&id, &EncodedValue::encode(&-5).unwrap());
            truncated.truncate(truncated.len() - 2);
            vec![truncated]
        }
        other => vec![encode_error(&id, &format!("Function '{other}' not found"))],
    }
}

/// A raw ROUTER bound on loopback that answers like `fake_child_replies`; returns its port.
async fn fake_child() -> u16 {
    let mut router = RouterSocket::new();
    let endpoint = router
        .bind("tcp://127.0.0.1:0")
        .await
        .expect("bind a ROUTER");
    let zeromq::Endpoint::Tcp(_, port) = endpoint else {
        panic!("not a tcp endpoint")
    };
    tokio::spawn(async move {
        while let Ok(message) = router.recv().await {
            let frames = message.into_vec();
            let routing = frames[0].clone();
            let payload = frames.last().cloned().unwrap_or_default();
            let Ok(message) = RawMessage::parse(payload, &Limits::default()) else {
                continue;
            };
            let replies = match message.kind {
                MessageKind::Heartbeat => vec![encode_heartbeat_reply(&message)],
                MessageKind::Call => fake_child_replies(&message),
                _ => continue,
            };
            for reply in replies {
                let mut out = ZmqMessage::from(routing.clone());
                out.push_back(Bytes::new());
                out.push_back(Bytes::from(reply));
                if router.send(out).await.is_err() {
                    return;
                }
            }
        }
    });
    port
}

#[tokio::test]
async fn replies_over_a_limit_fail_only_their_call_with_a_protocol_error() {
    let port = fake_child().await;
    let worker =
        ParentWorker::connect_endpoint(format!("tcp://127.0.0.1:{port}")).name("fake-child");
    let handle = worker.handle();
    handle
        .start()
        .await
        .expect("the parent connects to the fake child");
    let options = CallOptions::new().timeout(Duration::from_secs(30));
    for (function, needle) in [
        ("over_str", "exceeds the limit of 10485760 bytes"),
        ("over_bin", "exceeds the limit of 10485760 bytes"),
        ("over_items", "exceeds the limit of 100000 items"),
        ("over_depth", "depth limit of 256 levels"),
        ("over_error_text", "exceeds the limit of 10485760 bytes"),
    ] {
        let err = handle
            .call_dyn_with::<Value>(function, (), &options)
            .await
            .unwrap_err();
        match &err {
            Error::Protocol { reason, .. } => {
                assert!(reason.contains(needle), "{function}: {reason}")
            }
            other => panic!("{function}: expected a protocol error, got {other:?}"),
        }
        // The next call is unaffected.
        assert_eq!(
            handle
                .call_dyn_with::<i64>("add", (20, 22), &options)
                .await
                .unwrap(),
            42
        );
    }
    assert_eq!(handle.pending_calls(), 0);
    handle.stop().await;
}

#[tokio::test]
async fn the_parent_survives_garbage_replies_and_keeps_calling() {
    let port = fake_child().await;
    let worker =
        ParentWorker::connect_endpoint(format!("tcp://127.0.0.1:{port}")).name("fake-child");
    let handle = worker.handle();
    handle
        .start()
        .await
        .expect("the parent connects to the fake child");
    let options = CallOptions::new().timeout(Duration::from_secs(30));
    // Garbage, wrong protocol, strangers' ids and a truncated reply, then the real answer.
    for _ in 0..20 {
        let answer: String = handle
            .call_dyn_with("garbage_then_answer", (), &options)
            .await
            .unwrap();
        assert_eq!(answer, "the answer");
    }
    // A reply that does not parse cannot be matched to its call: that call times out.
    let short = CallOptions::new().timeout(Duration::from_millis(500));
    let err = handle
        .call_dyn_with::<Value>("broken_reply", (), &short)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(
        handle
            .call_dyn_with::<i64>("add", (20, 22), &options)
            .await
            .unwrap(),
        42
    );
    assert_eq!(handle.pending_calls(), 0);
    handle.heartbeat().await.expect("heartbeats still work");
    handle.stop().await;
}

// ---------------------------------------------------------------------------------------------
// ZMTP frames announcing a huge size, below multifrost: the zeromq crate's codec.

/// The 64-byte ZMTP 3.0 greeting with the NULL mechanism.
fn zmtp_greeting(as_server: bool) -> [u8; 64] {
    let mut greeting = [0u8; 64];
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting[11] = 0;
    greeting[12..16].copy_from_slice(b"NULL");
    greeting[32] = as_server as u8;
    greeting
}

/// A READY command announcing `socket_type`.
fn zmtp_ready(socket_type: &str) -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    body.extend_from_slice(socket_type.as_bytes());
    let mut frame = vec![0x04, body.len() as u8];
    frame.extend_from_slice(&body);
    frame
}

/// One ZMTP message frame.
fn zmtp_frame(payload: &[u8], more: bool) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 9);
    if payload.len() > 255 {
        frame.push(0x02 | more as u8);
        frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    } else {
        frame.push(more as u8);
        frame.push(payload.len() as u8);
    }
    frame.extend_from_slice(payload);
    frame
}

/// Reads one ZMTP frame: (flags, body).
fn read_zmtp_frame(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut flags = [0u8; 1];
    stream.read_exact(&mut flags)?;
    let len = if flags[0] & 0x02 != 0 {
        let mut len = [0u8; 8];
        stream.read_exact(&mut len)?;
        u64::from_be_bytes(len) as usize
    } else {
        let mut len = [0u8; 1];
        stream.read_exact(&mut len)?;
        len[0] as usize
    };
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok((flags[0], body))
}

/// A hand_worker child connected to a raw TCP listener speaking ZMTP by hand, past the
/// handshake and one answered call.
struct ZmtpPeer {
    stream: TcpStream,
    process: std::process::Child,
}

impl ZmtpPeer {
    fn start() -> ZmtpPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let process = std::process::Command::new(support::hand_worker())
            .env("COMLINK_ZMQ_PORT", port.to_string())
            .spawn()
            .expect("spawning hand_worker");
        let (mut stream, _) = listener.accept().expect("the child connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(&zmtp_greeting(true)).unwrap();
        stream.write_all(&zmtp_ready("DEALER")).unwrap();
        let mut greeting = [0u8; 64];
        stream
            .read_exact(&mut greeting)
            .expect("the child's greeting");
        assert_eq!(greeting[0], 0xff);
        let (flags, body) = read_zmtp_frame(&mut stream).expect("the child's READY");
        assert!(
            flags & 0x04 != 0 && body.starts_with(b"\x05READY"),
            "not a READY: {flags:#x}"
        );
        let mut peer = ZmtpPeer { stream, process };
        assert_eq!(peer.add(20, 22), 42, "a call over the hand-made connection");
        peer
    }

    fn add(&mut self, a: i64, b: i64) -> i64 {
        let id = new_id();
        let call = fuzzing::call_with(&id, "add", &[&enc(&a), &enc(&b)]);
        self.stream.write_all(&zmtp_frame(&[], true)).unwrap();
        self.stream.write_all(&zmtp_frame(&call, false)).unwrap();
        loop {
            let (flags, body) = read_zmtp_frame(&mut self.stream).expect("a reply frame");
            if flags & 0x01 != 0 || flags & 0x04 != 0 {
                continue; // the empty delimiter, or a command
            }
            let reply = RawMessage::parse(body.into(), &Limits::default()).expect("a reply");
            if reply.id.as_deref() == Some(id.as_str()) {
                return reply.result().decode().expect("a sum");
            }
        }
    }

    fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Sends the header of a data frame announcing `size` bytes, and a few bytes of it.
    fn announce(&mut self, size: u64) {
        let mut header = vec![0x02];
        header.extend_from_slice(&size.to_be_bytes());
        header.extend_from_slice(&[0u8; 16]);
        self.stream.write_all(&header).unwrap();
    }

    /// The exit status if the process ended within `within`.
    fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ZmtpPeer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
fn a_zmtp_frame_announcing_one_gib_only_reserves_address_space() {
    // The zeromq crate reserves the announced size (+64 KiB) as soon as it reads the header and
    // then waits for the bytes. Below the machine's memory that reservation is only address
    // space: the child stays up and its resident memory does not move.
    let mut peer = ZmtpPeer::start();
    let before = support::rss_kib(peer.pid());
    peer.announce(1 << 30);
    // Nothing to wait for but the absence of a crash: observe for a bounded window.
    assert_eq!(
        peer.exited_within(Duration::from_secs(2)),
        None,
        "the child died on a 1 GiB announcement"
    );
    let after = support::rss_kib(peer.pid());
    assert!(
        after < before + 64 * 1024,
        "RSS went from {before} KiB to {after} KiB"
    );
    // The connection now waits for 1 GiB that never comes: no call can get through it.
    peer.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        peer.stream.read(&mut byte).is_err(),
        "nothing comes back on the stalled connection"
    );
    // Closing it is the parent leaving: the child exits cleanly.
    peer.stream.shutdown(std::net::Shutdown::Both).unwrap();
    let status = peer
        .exited_within(Duration::from_secs(20))
        .expect("the child exits when its parent leaves");
    assert!(status.success(), "{status:?}");
}

#[test]
#[ignore = "aborts the child (by design of the test): the zeromq codec reserves the announced \
            frame size up front, and an allocation beyond the machine's memory aborts the \
            process (`memory allocation of N bytes failed`); run with --ignored to see it"]
fn a_zmtp_frame_announcing_a_terabyte_aborts_the_receiving_process() {
    let mut peer = ZmtpPeer::start();
    peer.announce(1 << 40);
    let status = peer
        .exited_within(Duration::from_secs(20))
        .expect("the child is gone");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
}

#[test]
#[ignore = "a measuring tool, not a check: MULTIFROST_ZMTP_SIZES=30,34,40 cargo test --test hostile \
            zmtp_probe -- --ignored --nocapture"]
fn zmtp_probe() {
    // For each power of two, a fresh child gets a frame header announcing 2^n bytes; report
    // what became of it after a few seconds.
    let sizes = std::env::var("MULTIFROST_ZMTP_SIZES")
        .unwrap_or_else(|_| "20,30,34,36,40,50,62,63,64".into());
    // "34" is 2^34 bytes, "24G" 24 GiB.
    for spec in sizes.split(',').map(str::trim) {
        let (size, exponent) = match spec.strip_suffix('G') {
            Some(gib) => (gib.parse::<u64>().expect("a size") << 30, spec.to_string()),
            None => {
                let exponent: u32 = spec.parse().expect("a power of two");
                (
                    if exponent >= 64 {
                        u64::MAX
                    } else {
                        1u64 << exponent
                    },
                    format!("2^{exponent}"),
                )
            }
        };
        let mut peer = ZmtpPeer::start();
        let pid = peer.pid();
        let vm = |field: &str| -> String {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find(|l| l.starts_with(field))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| "-".into())
        };
        let (rss0, size0) = (vm("VmRSS"), vm("VmSize"));
        peer.announce(size);
        let exited = peer.exited_within(Duration::from_secs(3));
        let stalled = exited.is_none() && {
            peer.stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut byte = [0u8; 1];
            !matches!(peer.stream.read(&mut byte), Ok(0))
        };
        eprintln!(
            "announced {exponent} = {size} bytes: exit {exited:?}; RSS {rss0} -> {}; VmSize {size0} -> {}; connection {}",
            vm("VmRSS"),
            vm("VmSize"),
            if exited.is_some() { "gone" } else if stalled { "stalled (waiting for the bytes)" } else { "closed by the child" }
        );
    }
}

/// A multifrost parent (tests/bin/zmtp_parent.rs) in its own process, serving a hand_worker.
struct ParentProcess {
    process: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    port: u16,
}

impl ParentProcess {
    fn start() -> ParentProcess {
        use std::io::BufRead;
        let mut process = std::process::Command::new(env!("CARGO_BIN_EXE_zmtp_parent"))
            .arg(support::hand_worker())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawning zmtp_parent");
        let stdin = process.stdin.take().unwrap();
        let mut stdout = std::io::BufReader::new(process.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .expect("PORT line")
            .parse()
            .unwrap();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        ParentProcess {
            process,
            stdin,
            stdout,
            port,
        }
    }

    /// Asks the parent for add(20, 22): its answer line, or None if it is gone.
    fn call(&mut self) -> Option<String> {
        use std::io::BufRead;
        self.stdin.write_all(b"call\n").ok()?;
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim().to_string()),
        }
    }

    fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ParentProcess {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
fn a_started_parent_stops_listening_so_no_frame_can_reach_it() {
    // A spawn-mode parent listens on 127.0.0.1 only until its child connects. Before that
    // change, any local process could connect and send a frame header announcing 1 TiB,
    // which makes the zeromq codec reserve it and abort the parent (SIGABRT, measured); the
    // window is now the child's start-up only.
    let mut parent = ParentProcess::start();
    assert_eq!(parent.call().as_deref(), Some("OK 42"));
    let refused = TcpStream::connect(("127.0.0.1", parent.port));
    assert!(
        refused.is_err(),
        "the parent's port still accepts connections"
    );
    for _ in 0..5 {
        assert_eq!(parent.call().as_deref(), Some("OK 42"));
    }
    assert_eq!(parent.exited_within(Duration::from_millis(1)), None);
}

#[test]
fn a_second_peer_on_a_parents_port_gets_no_calls() {
    let mut parent = ParentProcess::start();
    assert_eq!(parent.call().as_deref(), Some("OK 42"));
    // The parent stops listening once its child connected: a stranger is refused outright.
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", parent.port)) else {
        assert_eq!(parent.call().as_deref(), Some("OK 42"));
        return;
    };
    stream.write_all(&zmtp_greeting(false)).unwrap();
    stream.write_all(&zmtp_ready("ROUTER")).unwrap();
    let mut greeting = [0u8; 64];
    stream.read_exact(&mut greeting).unwrap();
    let _ready = read_zmtp_frame(&mut stream).unwrap();
    let results: Vec<_> = (0..6).map(|_| parent.call()).collect();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut intercepted = 0;
    while let Ok((flags, body)) = read_zmtp_frame(&mut stream) {
        if flags & 0x05 == 0 && RawMessage::parse(body.into(), &Limits::default()).is_ok() {
            intercepted += 1;
        }
    }
    assert_eq!(
        intercepted, 0,
        "a stranger received {intercepted} of 6 calls; results: {results:?}"
    );
    assert!(
        results.iter().all(|r| r.as_deref() == Some("OK 42")),
        "{results:?}"
    );
}
