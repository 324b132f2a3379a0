//! `rpc-bench`: multifrost against the floor, in one run.
//!
//! The floor is a raw ZeroMQ DEALER (this process) talking to a raw ROUTER echo (`raw_echo`)
//! with the same crate and frame layout multifrost uses; its msgpack variant also encodes and
//! decodes one msgpack call and reply per request. multifrost is a `ParentWorker` calling the
//! Rust child `bench_worker` through `Handle::call_dyn`. For each tokio runtime flavour (both
//! ends run the same one) it measures a small call's sequential round trip (p50/p99), the
//! throughput with 1,000 calls in flight, and a 1 MiB bytes echo, then prints each multifrost
//! figure as a ratio to the floor measured in the same run and writes the JSON report.
//!
//! ```text
//! cargo run --release -p multifrost-bench -- [--quick] [--flavour both] [--out PATH]
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures_util::StreamExt;
use multifrost::ParentWorker;
use multifrost_bench::{unix_now, Flavour, FloorCall, FloorReply, FLAVOUR_ENV, PORT_ENV};
use serde_json::{json, Value as Json};
use zeromq::prelude::{Socket, SocketRecv, SocketSend};
use zeromq::{DealerSocket, Endpoint, SocketEvent, ZmqMessage};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The flavour whose figures fill the JSON's top-level `floor` and `multifrost` when both run.
/// Chosen from measurements on the 2-core machine: with both ends on the current-thread runtime
/// the small-call p50 was 1.7x to 2x lower (floor and multifrost alike) and multifrost's
/// throughput 1.05x to 1.4x higher than with both on the multi-thread runtime.
const DEFAULT_FLAVOUR: Flavour = Flavour::CurrentThread;

/// Calls kept in flight by the throughput measurements.
const IN_FLIGHT: usize = 1_000;

/// The small payload of the floor's round trip, about the size of a small call's arguments
/// and envelope keys.
const SMALL_PAYLOAD: &[u8] = b"{app: comlink_ipc_v4, type: call, function: add, args: [1, 2]}";

/// 1 MiB, the bytes echo's payload.
const MIB: usize = 1 << 20;

/// Targets from the issue.
const P50_TARGET: f64 = 1.5;
const THROUGHPUT_TARGET: f64 = 0.5;
const MIB_TARGET: f64 = 2.0;

#[derive(Parser, Debug)]
#[command(
    name = "rpc-bench",
    about = "multifrost against a raw ZeroMQ echo floor, in one run"
)]
struct Args {
    /// A short run (about 10 s instead of about 1 minute): smaller counts, two rounds.
    #[arg(long)]
    quick: bool,

    /// The tokio runtime flavour, used by this process and both child programs.
    #[arg(long, value_enum, default_value_t = FlavourArg::Both)]
    flavour: FlavourArg,

    /// Where to write the JSON report (default: target/bench/rpc.json in the build's target
    /// directory).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FlavourArg {
    CurrentThread,
    MultiThread,
    Both,
}

/// How much to measure.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Rounds of (floor, multifrost) measurements, interleaved so that drift in the machine's
    /// speed hits both alike; samples are pooled and throughputs take the median round.
    rounds: usize,
    /// Sequential round trips per round.
    sequential: usize,
    /// Calls per throughput measurement.
    pipelined: usize,
    /// 1 MiB echoes per round.
    mib: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                rounds: 2,
                sequential: 5_000,
                pipelined: 50_000,
                mib: 20,
            }
        } else {
            Plan {
                rounds: 5,
                sequential: 20_000,
                pipelined: 100_000,
                mib: 40,
            }
        }
    }
}

/// Where samples go before they become figures.
#[derive(Default)]
struct Samples {
    small: Vec<Duration>,
    pipelined: Vec<f64>,
    msgpack_pipelined: Vec<f64>,
    mib: Vec<Duration>,
}

/// The figures of one side (floor or multifrost) under one flavour.
#[derive(Debug, Clone, Copy)]
struct Figures {
    p50_us: f64,
    p99_us: f64,
    pipelined_per_s: f64,
    /// Only for the floor.
    msgpack_pipelined_per_s: Option<f64>,
    mib_ms: f64,
}

impl Samples {
    fn figures(mut self) -> Figures {
        self.small.sort();
        self.mib.sort();
        Figures {
            p50_us: percentile(&self.small, 0.50).as_secs_f64() * 1e6,
            p99_us: percentile(&self.small, 0.99).as_secs_f64() * 1e6,
            pipelined_per_s: median(&mut self.pipelined),
            msgpack_pipelined_per_s: (!self.msgpack_pipelined.is_empty())
                .then(|| median(&mut self.msgpack_pipelined)),
            mib_ms: percentile(&self.mib, 0.50).as_secs_f64() * 1e3,
        }
    }
}

impl Figures {
    fn to_json(self) -> Json {
        let mut object = json!({
            "p50_us": round(self.p50_us, 2),
            "p99_us": round(self.p99_us, 2),
            "pipelined_per_s": self.pipelined_per_s.round(),
        });
        if let Some(rate) = self.msgpack_pipelined_per_s {
            object["msgpack_pipelined_per_s"] = json!(rate.round());
        }
        object["mib_ms"] = json!(round(self.mib_ms, 3));
        object
    }
}

/// Both sides under one flavour.
struct FlavourResult {
    flavour: Flavour,
    floor: Figures,
    multifrost: Figures,
}

impl FlavourResult {
    fn p50_ratio(&self) -> f64 {
        self.multifrost.p50_us / self.floor.p50_us
    }
    fn p99_ratio(&self) -> f64 {
        self.multifrost.p99_us / self.floor.p99_us
    }
    fn raw_throughput_ratio(&self) -> f64 {
        self.multifrost.pipelined_per_s / self.floor.pipelined_per_s
    }
    fn throughput_ratio(&self) -> f64 {
        self.multifrost.pipelined_per_s / self.floor.msgpack_pipelined_per_s.unwrap_or(f64::NAN)
    }
    fn mib_ratio(&self) -> f64 {
        self.multifrost.mib_ms / self.floor.mib_ms
    }

    fn to_json(&self) -> Json {
        json!({
            "floor": self.floor.to_json(),
            "multifrost": self.multifrost.to_json(),
            "ratios": {
                "p50": round(self.p50_ratio(), 3),
                "p99": round(self.p99_ratio(), 3),
                "pipelined_vs_raw": round(self.raw_throughput_ratio(), 3),
                "pipelined_vs_msgpack": round(self.throughput_ratio(), 3),
                "mib": round(self.mib_ratio(), 3),
            },
            "targets_met": {
                "p50_within_1_5x": self.p50_ratio() <= P50_TARGET,
                "throughput_at_least_half_msgpack_floor": self.throughput_ratio() >= THROUGHPUT_TARGET,
                "mib_within_2x": self.mib_ratio() <= MIB_TARGET,
            },
        })
    }
}

fn main() {
    let args = Args::parse();
    if let Err(err) = run(args) {
        eprintln!("rpc-bench: {err}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let exe = std::env::current_exe()?;
    let bin_dir = exe
        .parent()
        .ok_or("the executable has no parent directory")?
        .to_path_buf();
    build_children(&bin_dir)?;
    let out = match args.out {
        Some(path) => path,
        None => bin_dir
            .parent()
            .ok_or("the build directory has no parent")?
            .join("bench")
            .join("rpc.json"),
    };
    let flavours: Vec<Flavour> = match args.flavour {
        FlavourArg::CurrentThread => vec![Flavour::CurrentThread],
        FlavourArg::MultiThread => vec![Flavour::MultiThread],
        FlavourArg::Both => Flavour::ALL.to_vec(),
    };
    let plan = Plan::new(args.quick);
    eprintln!(
        "rpc-bench: {} run, {} round(s) per flavour: {} sequential calls, {} calls with {IN_FLIGHT} \
         in flight, {} x 1 MiB echoes per round",
        if args.quick { "quick" } else { "full" },
        plan.rounds,
        plan.sequential,
        plan.pipelined,
        plan.mib
    );

    let load_before = load_average();
    if load_before.is_some_and(|load| load > 0.75) {
        eprintln!(
            "rpc-bench: warning: the load average is {:.2} before starting: other processes \
             compete for the CPUs and the figures will be noisy",
            load_before.unwrap_or_default()
        );
    }
    let started = Instant::now();
    let mut results = Vec::new();
    for flavour in flavours {
        eprintln!("rpc-bench: measuring on the {} runtime", flavour.name());
        let runtime = flavour.runtime()?;
        let result = runtime.block_on(measure_flavour(flavour, plan, &bin_dir))?;
        runtime.shutdown_timeout(Duration::from_secs(2));
        results.push(result);
    }

    println!();
    for result in &results {
        print_table(result);
    }
    if results.len() > 1 {
        print_flavour_comparison(&results);
    }

    let default = results
        .iter()
        .find(|r| r.flavour == DEFAULT_FLAVOUR)
        .unwrap_or(&results[0]);
    let mut flavours_json = serde_json::Map::new();
    for result in &results {
        flavours_json.insert(result.flavour.name().to_owned(), result.to_json());
    }
    let default_json = default.to_json();
    let report = json!({
        "floor": default_json["floor"],
        "multifrost": default_json["multifrost"],
        "ratios": default_json["ratios"],
        "targets_met": default_json["targets_met"],
        "flavour": default.flavour.name(),
        "flavours": flavours_json,
        "run": {
            "quick": args.quick,
            "rounds": plan.rounds,
            "sequential_calls_per_round": plan.sequential,
            "pipelined_calls": plan.pipelined,
            "in_flight": IN_FLIGHT,
            "mib_echoes_per_round": plan.mib,
            "small_payload_bytes": SMALL_PAYLOAD.len(),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "seconds": round(started.elapsed().as_secs_f64(), 1),
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
    });
    write_report(&out, &report)?;
    if let (Some(before), Some(after)) = (load_before, load_average()) {
        println!("load average: {before:.2} before, {after:.2} after (the benchmark itself adds about 1 to 2)");
    }
    println!(
        "JSON ({} figures at the top level) written to {}",
        default.flavour.name(),
        out.display()
    );
    Ok(())
}

/// `cargo run` builds only `rpc-bench`: build (or refresh) the two child programs next to it,
/// with the same profile, when running under cargo. Outside cargo they must already be there.
fn build_children(bin_dir: &Path) -> Result<()> {
    const CHILDREN: [&str; 2] = ["raw_echo", "bench_worker"];
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut command = std::process::Command::new(cargo);
        command.args(["build", "--quiet", "-p", "multifrost-bench"]);
        for child in CHILDREN {
            command.args(["--bin", child]);
        }
        match bin_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") => {
                eprintln!(
                    "rpc-bench: warning: a debug build; run with --release for meaningful figures"
                );
            }
            Some("release") => {
                command.arg("--release");
            }
            Some(profile) => {
                command.args(["--profile", profile]);
            }
            None => {}
        }
        let status = command.status()?;
        if !status.success() {
            return Err(format!("building the child programs failed ({status})").into());
        }
    }
    for child in CHILDREN {
        if !bin_dir.join(child).exists() {
            return Err(format!(
                "{} not found next to rpc-bench: run it with \
                 `cargo run --release -p multifrost-bench`",
                bin_dir.join(child).display()
            )
            .into());
        }
    }
    Ok(())
}

/// The one-minute load average (Linux), to tell a quiet machine from a busy one.
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn write_report(out: &Path, report: &Json) -> Result<()> {
    if let Some(dir) = out.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(out, serde_json::to_string_pretty(report)? + "\n")?;
    Ok(())
}

/// Runs every measurement under the current runtime, floor and multifrost interleaved per round.
async fn measure_flavour(flavour: Flavour, plan: Plan, bin_dir: &Path) -> Result<FlavourResult> {
    let mut raw = RawPeer::start(&bin_dir.join("raw_echo"), false, flavour).await?;
    let mut raw_msgpack = RawPeer::start(&bin_dir.join("raw_echo"), true, flavour).await?;
    let worker = ParentWorker::spawn(bin_dir.join("bench_worker"))
        .name("bench_worker")
        .env(FLAVOUR_ENV, flavour.name());
    let handle = worker.handle();
    handle.start().await?;

    let mib_payload = Bytes::from(vec![0xa5u8; MIB]);

    // Warm-up: connections, allocator, caches, the runtime's worker threads.
    let warm = (plan.sequential / 5).max(500);
    raw.sequential(warm).await?;
    raw.pipelined(plan.pipelined / 5).await?;
    raw_msgpack.pipelined_msgpack(plan.pipelined / 5).await?;
    raw.mib(&mib_payload, 3).await?;
    multifrost_sequential(&handle, warm).await?;
    multifrost_pipelined(&handle, plan.pipelined / 5).await?;
    multifrost_mib(&handle, 3).await?;

    let mut floor = Samples::default();
    let mut mf = Samples::default();
    for round in 0..plan.rounds {
        eprintln!("  round {}/{}", round + 1, plan.rounds);
        floor.small.extend(raw.sequential(plan.sequential).await?);
        mf.small
            .extend(multifrost_sequential(&handle, plan.sequential).await?);
        floor.pipelined.push(raw.pipelined(plan.pipelined).await?);
        floor
            .msgpack_pipelined
            .push(raw_msgpack.pipelined_msgpack(plan.pipelined).await?);
        mf.pipelined
            .push(multifrost_pipelined(&handle, plan.pipelined).await?);
        floor.mib.extend(raw.mib(&mib_payload, plan.mib).await?);
        mf.mib.extend(multifrost_mib(&handle, plan.mib).await?);
    }

    handle.stop().await;
    raw.stop().await;
    raw_msgpack.stop().await;
    Ok(FlavourResult {
        flavour,
        floor: floor.figures(),
        multifrost: mf.figures(),
    })
}

/// The floor: a DEALER bound on 127.0.0.1 and a `raw_echo` child connected to it.
struct RawPeer {
    socket: DealerSocket,
    child: tokio::process::Child,
    /// Kept so the socket's monitor channel stays open.
    _monitor: futures_channel::mpsc::Receiver<SocketEvent>,
}

impl RawPeer {
    async fn start(program: &Path, msgpack: bool, flavour: Flavour) -> Result<RawPeer> {
        let mut socket = DealerSocket::new();
        let mut monitor = socket.monitor();
        let endpoint = socket.bind("tcp://127.0.0.1:0").await?;
        let Endpoint::Tcp(_, port) = endpoint else {
            return Err("the DEALER bound a non-TCP endpoint".into());
        };
        let mut command = tokio::process::Command::new(program);
        if msgpack {
            command.arg("--msgpack");
        }
        let mut child = command
            .env(PORT_ENV, port.to_string())
            .env(FLAVOUR_ENV, flavour.name())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", program.display()))?;
        // A DEALER cannot send before a peer is connected: wait for the monitor to say so.
        let accepted = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(event) = monitor.next().await {
                if let SocketEvent::Accepted(..) = event {
                    return true;
                }
            }
            false
        })
        .await;
        if accepted != Ok(true) {
            let _ = child.kill().await;
            return Err(format!("{} did not connect within 10 s", program.display()).into());
        }
        Ok(RawPeer {
            socket,
            child,
            _monitor: monitor,
        })
    }

    async fn send(&mut self, payload: Bytes) -> Result<()> {
        let mut message = ZmqMessage::from(Bytes::new());
        message.push_back(payload);
        self.socket.send(message).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Bytes> {
        let message = self.socket.recv().await?;
        let payload = message.iter().last().cloned().unwrap_or_default();
        Ok(payload)
    }

    /// Sequential round trips of the small payload.
    async fn sequential(&mut self, count: usize) -> Result<Vec<Duration>> {
        let payload = Bytes::from_static(SMALL_PAYLOAD);
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            self.send(payload.clone()).await?;
            let reply = self.recv().await?;
            samples.push(started.elapsed());
            check(
                reply.len() == SMALL_PAYLOAD.len(),
                "echo changed the payload",
            )?;
        }
        Ok(samples)
    }

    /// `count` small messages with `IN_FLIGHT` outstanding; messages per second.
    async fn pipelined(&mut self, count: usize) -> Result<f64> {
        let payload = Bytes::from_static(SMALL_PAYLOAD);
        self.window(
            count,
            |_| Ok(payload.clone()),
            |reply| {
                check(
                    reply.len() == SMALL_PAYLOAD.len(),
                    "echo changed the payload",
                )
            },
        )
        .await
    }

    /// Like `pipelined`, encoding a msgpack call per request and decoding the msgpack reply.
    async fn pipelined_msgpack(&mut self, count: usize) -> Result<f64> {
        self.window(
            count,
            |n| {
                let call = FloorCall {
                    app: "comlink_ipc_v4".to_owned(),
                    id: id_text(n),
                    kind: "call".to_owned(),
                    timestamp: unix_now(),
                    function: "add".to_owned(),
                    args: vec![1.into(), 2.into()],
                    namespace: "default".to_owned(),
                };
                Ok(Bytes::from(rmp_serde::to_vec_named(&call)?))
            },
            |reply| {
                let reply: FloorReply = rmp_serde::from_slice(&reply)?;
                check(
                    reply.result.as_i64() == Some(3) && reply.id.len() == 36,
                    "wrong msgpack reply",
                )
            },
        )
        .await
    }

    /// Sends `count` messages keeping `IN_FLIGHT` outstanding: the first `IN_FLIGHT` at once,
    /// then one more per reply.
    async fn window(
        &mut self,
        count: usize,
        mut make: impl FnMut(u64) -> Result<Bytes>,
        mut verify: impl FnMut(Bytes) -> Result<()>,
    ) -> Result<f64> {
        let started = Instant::now();
        let mut sent = 0usize;
        while sent < count.min(IN_FLIGHT) {
            self.send(make(sent as u64)?).await?;
            sent += 1;
        }
        for _ in 0..count {
            let reply = self.recv().await?;
            verify(reply)?;
            if sent < count {
                self.send(make(sent as u64)?).await?;
                sent += 1;
            }
        }
        Ok(count as f64 / started.elapsed().as_secs_f64())
    }

    /// Round trips of a 1 MiB payload.
    async fn mib(&mut self, payload: &Bytes, count: usize) -> Result<Vec<Duration>> {
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            self.send(payload.clone()).await?;
            let reply = self.recv().await?;
            samples.push(started.elapsed());
            check(reply.len() == MIB, "echo changed the 1 MiB payload")?;
        }
        Ok(samples)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A 36-character id shaped like a UUID's text, from a counter.
fn id_text(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// Sequential `add(1, 2)` calls.
async fn multifrost_sequential(handle: &multifrost::Handle, count: usize) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let sum: i64 = handle.call_dyn("add", (1, 2)).await?;
        samples.push(started.elapsed());
        check(sum == 3, "add(1, 2) != 3")?;
    }
    Ok(samples)
}

/// `count` calls of `add(1, 2)` from `IN_FLIGHT` tasks, each calling in a loop; calls per second.
async fn multifrost_pipelined(handle: &multifrost::Handle, count: usize) -> Result<f64> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..IN_FLIGHT {
        // Spread the remainder so the total is exactly `count`.
        let calls = count / IN_FLIGHT + usize::from(task < count % IN_FLIGHT);
        let handle = handle.clone();
        tasks.spawn(async move {
            for _ in 0..calls {
                let sum: i64 = handle.call_dyn("add", (1, 2)).await?;
                check(sum == 3, "add(1, 2) != 3")?;
            }
            Ok::<(), BoxError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Round trips of `echo` with 1 MiB of bytes (msgpack bin both ways).
async fn multifrost_mib(handle: &multifrost::Handle, count: usize) -> Result<Vec<Duration>> {
    let data = vec![0xa5u8; MIB];
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let echoed: serde_bytes::ByteBuf = handle
            .call_dyn("echo", (serde_bytes::Bytes::new(&data),))
            .await?;
        samples.push(started.elapsed());
        check(echoed.len() == MIB, "echo changed the 1 MiB payload")?;
    }
    Ok(samples)
}

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn print_table(result: &FlavourResult) {
    let (floor, mf) = (&result.floor, &result.multifrost);
    let msgpack = floor.msgpack_pipelined_per_s.unwrap_or(f64::NAN);
    println!(
        "runtime flavour: {} (parent and child)",
        result.flavour.name()
    );
    println!(
        "  {:<34} {:>12} {:>12} {:>8}  target",
        "figure", "floor", "multifrost", "ratio"
    );
    println!(
        "  {:<34} {:>12.1} {:>12.1} {:>7.2}x  <= {P50_TARGET}x {}",
        "small call p50 (us)",
        floor.p50_us,
        mf.p50_us,
        result.p50_ratio(),
        verdict(result.p50_ratio() <= P50_TARGET)
    );
    println!(
        "  {:<34} {:>12.1} {:>12.1} {:>7.2}x",
        "small call p99 (us)",
        floor.p99_us,
        mf.p99_us,
        result.p99_ratio()
    );
    println!(
        "  {:<34} {:>12} {:>12} {:>7.2}x",
        "1,000 in flight, raw echo (/s)",
        thousands(floor.pipelined_per_s),
        thousands(mf.pipelined_per_s),
        result.raw_throughput_ratio()
    );
    println!(
        "  {:<34} {:>12} {:>12} {:>7.2}x  >= {THROUGHPUT_TARGET}x {}",
        "1,000 in flight, msgpack echo (/s)",
        thousands(msgpack),
        thousands(mf.pipelined_per_s),
        result.throughput_ratio(),
        verdict(result.throughput_ratio() >= THROUGHPUT_TARGET)
    );
    println!(
        "  {:<34} {:>12.3} {:>12.3} {:>7.2}x  <= {MIB_TARGET}x {}",
        "1 MiB bytes echo (ms, median)",
        floor.mib_ms,
        mf.mib_ms,
        result.mib_ratio(),
        verdict(result.mib_ratio() <= MIB_TARGET)
    );
    println!();
}

/// How the multi-thread runtime compares with the current-thread one, side by side.
fn print_flavour_comparison(results: &[FlavourResult]) {
    let find = |f: Flavour| results.iter().find(|r| r.flavour == f);
    let (Some(ct), Some(mt)) = (find(Flavour::CurrentThread), find(Flavour::MultiThread)) else {
        return;
    };
    println!("multi-thread / current-thread (same run)");
    let rows: [(&str, f64, f64); 5] = [
        ("floor p50", mt.floor.p50_us, ct.floor.p50_us),
        ("multifrost p50", mt.multifrost.p50_us, ct.multifrost.p50_us),
        (
            "floor msgpack throughput",
            mt.floor.msgpack_pipelined_per_s.unwrap_or(f64::NAN),
            ct.floor.msgpack_pipelined_per_s.unwrap_or(f64::NAN),
        ),
        (
            "multifrost throughput",
            mt.multifrost.pipelined_per_s,
            ct.multifrost.pipelined_per_s,
        ),
        (
            "multifrost 1 MiB",
            mt.multifrost.mib_ms,
            ct.multifrost.mib_ms,
        ),
    ];
    for (name, multi, current) in rows {
        println!("  {name:<34} {:>7.2}x", multi / current);
    }
    println!();
}

/// A rate with thousands separators.
fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    let digits = format!("{}", value.round() as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
