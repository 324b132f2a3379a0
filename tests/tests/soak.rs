//! Load and soak over real processes: nothing is lost, nothing is duplicated, nothing hangs,
//! and memory stays bounded.
//!
//! - 8 concurrent tasks of one parent call a Rust child with payloads from 0 bytes to 1 MiB,
//!   mixing echo (a unique tag with each payload), add and throw_error (failing on purpose);
//!   every call must come back with exactly its own content. 10,000 calls here; 100,000 with
//!   `MULTIFROST_LONG=1` (`scripts/soak.sh`).
//! - A child stalled with SIGSTOP while 10,000 calls are queued with a timeout: the in-flight
//!   limit bounds what the parent sends, every call ends in a result or an error, and after
//!   SIGCONT the worker serves again.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multifrost::{CallOptions, Error, Handle};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The tests of this file measure the process's memory: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Samples the peak RSS of some processes until stopped (sampling, not synchronisation).
struct PeakRss {
    stop: Arc<AtomicBool>,
    peaks: Arc<Vec<AtomicU64>>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    fn start(pids: Vec<u32>) -> PeakRss {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks: Arc<Vec<AtomicU64>> = Arc::new(
            pids.iter()
                .map(|pid| AtomicU64::new(support::rss_kib(*pid)))
                .collect(),
        );
        let task = tokio::spawn({
            let (stop, peaks) = (stop.clone(), peaks.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    for (pid, peak) in pids.iter().zip(peaks.iter()) {
                        peak.fetch_max(support::rss_kib(*pid), Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        });
        PeakRss { stop, peaks, task }
    }

    async fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peaks
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }
}

/// What `echo` carries: a unique tag and a payload derived from it.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Tagged {
    tag: u64,
    data: ByteBuf,
}

fn payload(tag: u64, len: usize) -> ByteBuf {
    let mut state = tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let chunk = state.to_le_bytes();
        data.extend_from_slice(&chunk[..chunk.len().min(len - data.len())]);
    }
    ByteBuf::from(data)
}

/// Payload size of call `tag`: mostly small, some medium, a few up to 1 MiB (0 bytes and 1 MiB
/// exactly included).
fn payload_len(tag: u64) -> usize {
    const MIB: u64 = 1024 * 1024;
    let r = tag.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 20;
    match tag {
        0 => 0,
        1 => MIB as usize,
        _ if r.is_multiple_of(100) => (64 * 1024 + (r / 100) % (MIB - 64 * 1024 + 1)) as usize,
        _ if r.is_multiple_of(10) => (1024 + (r / 10) % (63 * 1024)) as usize,
        _ => ((r / 7) % 1025) as usize,
    }
}

/// What one call must return.
enum Expect {
    Echo,
    Sum(i64),
    Fails(String),
}

/// Makes call `tag` and checks it got exactly its own reply; returns its kind for the tally.
async fn one_call(handle: &Handle, tag: u64, options: &CallOptions) -> &'static str {
    let expect = match tag % 10 {
        0..=5 => Expect::Echo,
        6..=8 => Expect::Sum(tag as i64 * 3 + 1),
        _ => Expect::Fails(format!("deliberate failure {tag}")),
    };
    match expect {
        Expect::Echo => {
            let sent = Tagged {
                tag,
                data: payload(tag, payload_len(tag)),
            };
            let back: Tagged = handle
                .call_dyn_with("echo", (&sent,), options)
                .await
                .unwrap_or_else(|err| panic!("echo {tag} failed: {err}"));
            assert_eq!(
                back.tag, tag,
                "echo {tag} got the reply of call {}",
                back.tag
            );
            assert!(
                back.data == sent.data,
                "echo {tag}: payload of {} bytes came back altered",
                sent.data.len()
            );
            "echo"
        }
        Expect::Sum(sum) => {
            let got: i64 = handle
                .call_dyn_with("add", (tag as i64 * 2, tag as i64 + 1), options)
                .await
                .unwrap_or_else(|err| panic!("add {tag} failed: {err}"));
            assert_eq!(got, sum, "add {tag} got another call's sum");
            "add"
        }
        Expect::Fails(text) => {
            let err = handle
                .call_dyn_with::<i64>("throw_error", (&text,), options)
                .await
                .expect_err("throw_error must fail");
            match err {
                Error::Remote { message, .. } => {
                    assert_eq!(message, text, "throw_error {tag} got another call's error")
                }
                other => panic!("throw_error {tag}: expected a remote error, got {other}"),
            }
            "throw_error"
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tasks_of_mixed_calls_each_get_exactly_their_own_reply() {
    let _serial = SERIAL.lock().await;
    let calls: u64 = if support::long_run() { 100_000 } else { 10_000 };
    const TASKS: u64 = 8;
    let worker = support::rust_worker();
    let handle = worker.handle();
    handle.start().await.expect("the worker starts");
    let child = handle.pid().expect("a child pid");
    let parent = std::process::id();
    // Warm up, then take the reference figures.
    for tag in 0..100 {
        let _ = one_call(&handle, 1_000_000_000 + tag, &CallOptions::new()).await;
    }
    let (parent_before, child_before) = (support::rss_kib(parent), support::rss_kib(child));
    let metrics_before = handle.metrics();
    let sampler = PeakRss::start(vec![parent, child]);
    let returned = Arc::new(Mutex::new(HashSet::new()));
    let tally = Arc::new(Mutex::new(std::collections::BTreeMap::<&str, u64>::new()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (handle, returned, tally) = (handle.clone(), returned.clone(), tally.clone());
            tokio::spawn(async move {
                // Generous: a call only fails this way if it is lost.
                let options = CallOptions::new().timeout(Duration::from_secs(60));
                let mut tag = task;
                while tag < calls {
                    let kind = one_call(&handle, tag, &options).await;
                    assert!(
                        returned.lock().unwrap().insert(tag),
                        "call {tag} came back twice"
                    );
                    *tally.lock().unwrap().entry(kind).or_default() += 1;
                    tag += TASKS;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a calling task panicked");
    }
    let elapsed = started.elapsed();
    let peaks = sampler.finish().await;
    let (parent_after, child_after) = (support::rss_kib(parent), support::rss_kib(child));
    assert_eq!(
        returned.lock().unwrap().len() as u64,
        calls,
        "every call returned exactly once"
    );
    assert_eq!(handle.pending_calls(), 0, "the pending table is empty");
    let metrics = handle.metrics();
    let (succeeded, failed) = (
        metrics.requests_success - metrics_before.requests_success,
        metrics.requests_failed - metrics_before.requests_failed,
    );
    let tally = tally.lock().unwrap().clone();
    eprintln!(
        "soak: {calls} calls from {TASKS} tasks in {elapsed:?} ({:.0} calls/s), {tally:?}, {} echo payloads over 64 KiB; metrics: {} ok, {} failed; \
         parent RSS {parent_before} KiB before, {} KiB peak, {parent_after} KiB after; \
         child RSS {child_before} KiB before, {} KiB peak, {child_after} KiB after",
        calls as f64 / elapsed.as_secs_f64(),
        (0..calls).filter(|tag| tag % 10 <= 5 && payload_len(*tag) > 64 * 1024).count(),
        succeeded,
        failed,
        peaks[0],
        peaks[1],
    );
    assert_eq!(
        tally["throw_error"], failed,
        "only the deliberate failures failed"
    );
    assert_eq!(
        tally["echo"] + tally["add"],
        succeeded,
        "every other call succeeded"
    );
    let large = (0..calls)
        .filter(|tag| tag % 10 <= 5 && payload_len(*tag) > 64 * 1024)
        .count();
    assert!(large > 0, "some echo payloads are over 64 KiB");
    // Bounded: at most 8 calls of at most 1 MiB are in flight, each copied a few times.
    assert!(
        peaks[0] < parent_before + 256 * 1024,
        "parent RSS peaked at {} KiB",
        peaks[0]
    );
    assert!(
        peaks[1] < child_before + 256 * 1024,
        "child RSS peaked at {} KiB",
        peaks[1]
    );
    assert!(
        child_after < child_before + 64 * 1024,
        "child RSS went from {child_before} to {child_after} KiB"
    );
    assert_eq!(handle.call_dyn::<i64>("add", (20, 22)).await.unwrap(), 42);
    let status = handle.stop().await.expect("an exit status");
    assert_eq!(status.code, Some(0), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_child_with_ten_thousand_queued_calls_keeps_the_parent_bounded() {
    let _serial = SERIAL.lock().await;
    const QUEUED: u64 = 10_000;
    const MAX_IN_FLIGHT: usize = 100;
    const PAYLOAD: usize = 1024;
    let worker = support::rust_worker()
        .max_in_flight(MAX_IN_FLIGHT)
        // Every call here times out: keep the circuit closed so that they all really queue.
        .circuit_threshold(u32::MAX);
    let handle = worker.handle();
    handle.start().await.expect("the worker starts");
    let child = handle.pid().expect("a child pid");
    let parent = std::process::id();
    assert_eq!(handle.call_dyn::<i64>("add", (1, 2)).await.unwrap(), 3);
    let parent_before = support::rss_kib(parent);
    support::signal(child, libc::SIGSTOP);
    let sampler = PeakRss::start(vec![parent]);
    let timeout = Duration::from_secs(3);
    let started = Instant::now();
    let calls: Vec<_> = (0..QUEUED)
        .map(|tag| {
            let handle = handle.clone();
            tokio::spawn(async move {
                let sent = Tagged {
                    tag,
                    data: payload(tag, PAYLOAD),
                };
                let options = CallOptions::new().timeout(timeout);
                handle
                    .call_dyn_with::<Tagged>("echo", (&sent,), &options)
                    .await
                    .map(|back| back.tag == tag)
            })
        })
        .collect();
    let sent_seen = {
        // While the calls wait, no more than the limit are sent and waiting for a reply.
        let mut most = 0;
        while !calls.iter().all(|c| c.is_finished()) {
            most = most.max(handle.pending_calls());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        most
    };
    let (mut ok, mut timed_out, mut other) = (0, 0, Vec::new());
    for call in calls {
        match call.await.expect("a calling task panicked") {
            Ok(true) => ok += 1,
            Ok(false) => panic!("a call got another call's reply"),
            Err(Error::Timeout { .. }) => timed_out += 1,
            Err(err) => other.push(err.to_string()),
        }
    }
    let ended_after = started.elapsed();
    let peaks = sampler.finish().await;
    eprintln!(
        "stalled child: {QUEUED} calls of {PAYLOAD} bytes, max_in_flight {MAX_IN_FLIGHT}: {ok} ok, {timed_out} timed out, \
         {} other errors, all ended after {ended_after:?}; most sent at once {sent_seen}; parent RSS \
         {parent_before} KiB before, {} KiB peak",
        other.len(),
        peaks[0]
    );
    assert_eq!(
        ok + timed_out + other.len() as u64,
        QUEUED,
        "every call ended"
    );
    assert!(
        other.is_empty(),
        "unexpected errors: {:?}",
        &other[..other.len().min(5)]
    );
    assert_eq!(
        timed_out, QUEUED,
        "nothing can answer while the child is stopped"
    );
    assert_eq!(
        handle.pending_calls(),
        0,
        "timed-out calls leave nothing behind"
    );
    // Only what is in flight is encoded into a call and sent; the rest waits for a slot.
    assert!(
        sent_seen <= MAX_IN_FLIGHT,
        "{sent_seen} calls were sent at once"
    );
    assert!(
        peaks[0] < parent_before + 128 * 1024,
        "parent RSS peaked at {} KiB",
        peaks[0]
    );
    support::signal(child, libc::SIGCONT);
    let options = CallOptions::new().timeout(Duration::from_secs(30));
    assert_eq!(
        handle
            .call_dyn_with::<i64>("add", (20, 22), &options)
            .await
            .unwrap(),
        42
    );
    let status = handle.stop().await.expect("an exit status");
    assert_eq!(status.code, Some(0), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_against_a_stalled_child_keeps_the_parent_bounded() {
    let _serial = SERIAL.lock().await;
    const MAX_IN_FLIGHT: usize = 16;
    let worker = support::rust_worker()
        .max_in_flight(MAX_IN_FLIGHT)
        .circuit_threshold(u32::MAX);
    let handle = worker.handle();
    handle.start().await.expect("the worker starts");
    let child = handle.pid().expect("a child pid");
    let parent = std::process::id();
    support::signal(child, libc::SIGSTOP);
    let before = support::rss_kib(parent);
    let sampler = PeakRss::start(vec![parent]);
    let options = CallOptions::new().timeout(Duration::from_millis(200));
    // 30 waves of 16 calls of 1 MiB, each wave timing out: 480 MiB offered in all, never more
    // than 16 MiB of it in flight.
    for _wave in 0..30 {
        let calls: Vec<_> = (0..MAX_IN_FLIGHT)
            .map(|_| {
                let (handle, options) = (handle.clone(), options.clone());
                tokio::spawn(async move {
                    let data = ByteBuf::from(vec![7u8; 1024 * 1024]);
                    handle
                        .call_dyn_with::<ByteBuf>("echo", (data,), &options)
                        .await
                })
            })
            .collect();
        for call in calls {
            let result = call.await.expect("a calling task panicked");
            assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
        }
    }
    let peaks = sampler.finish().await;
    let after = support::rss_kib(parent);
    support::signal(child, libc::SIGCONT);
    handle.stop().await;
    assert!(
        peaks[0] < before + 128 * 1024,
        "parent RSS {before} KiB before, {} KiB peak, {after} KiB after the calls all timed out",
        peaks[0]
    );
}
