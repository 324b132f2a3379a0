//! Hostile input over a real socket: a raw ZeroMQ DEALER (not multifrost's parent) sends random
//! and mutated frames to a Rust child, interleaved with valid calls checked by content; the
//! child keeps serving, never panics and does not grow. 20,000 messages here; 1,000,000 with
//! `MULTIFROST_LONG=1` (`scripts/soak.sh`).

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use multifrost::protocol::{new_id, MessageKind, RawMessage};
use multifrost::Limits;
use multifrost_fuzz_harness::payloads::{self as fuzzing, enc, Rng};
use support::corpus::seeds;
use support::raw_child::RawChild;

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
                    .function()
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
            let Some(id) = reply.id().map(str::to_owned) else {
                other_replies += 1;
                continue;
            };
            match expected.remove(&id) {
                Some(sum) => {
                    assert_eq!(
                        reply.kind,
                        MessageKind::Response,
                        "valid add {id} failed: {:?}",
                        reply.error()
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
