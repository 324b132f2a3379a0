//! Hostile input, in process: the fuzz targets' code (the fuzz-harness crate, what
//! `scripts/fuzz.sh` fuzzes) on the seed corpus, the kept regression inputs and a fixed-seed
//! mutation loop, the stable and bounded part of the fuzzing; and what refusing a deeply nested
//! frame costs the decoder.

mod support;

use std::time::Instant;

use bytes::Bytes;
use multifrost::protocol::RawMessage;
use multifrost::Limits;
use multifrost_fuzz_harness as harness;
use multifrost_fuzz_harness::payloads::{self as fuzzing, Rng};
use support::corpus::{files_under, seeds};

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
        assert_eq!(message.id(), Some("deep-call"), "{name}");
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
