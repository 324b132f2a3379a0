//! `rpc-bench`: multifrost against the floor, tarpc and tonic, in one run.
//!
//! The floor is a raw ZeroMQ DEALER (this process) talking to a raw ROUTER echo (`raw_echo`)
//! through the zeromq crate, with the frame layout multifrost uses (multifrost speaks ZMTP
//! itself since its eighth round of optimisation); its msgpack variant also encodes and
//! decodes one msgpack call and reply per request. multifrost is measured three ways:
//! `Handle::call_dyn` on the hand-written `bench_worker`, and `call_dyn` and the typed client
//! on `bench_macro_worker` (`#[multifrost::worker]`). tarpc (`bench_tarpc_server`: serde
//! transport, bincode, TCP with `TCP_NODELAY` at both ends) and tonic (`bench_tonic_server`:
//! gRPC, a service written by hand) answer the same `add` and `echo_bytes`. Every server is a
//! process of its own on 127.0.0.1, and every contender runs on the same runtime flavour at both
//! ends (current-thread unless told otherwise).
//!
//! Each round measures, contender after contender (A B C D, A B C D, ...), so that the
//! machine's drift hits all alike: a small call's sequential round trip (p50/p99), the
//! throughput with 1,000 calls in flight together with the CPU time both processes spend on it
//! (`getrusage` here, `/proc/<pid>/stat` for the server), and a 1 MiB bytes echo. It prints
//! Markdown tables with every figure's ratio to the floor and the issue's targets, and writes
//! the JSON report.
//!
//! Then the Python-parent rows: the Python test peer as the parent, calling the macro worker
//! and the peer's own Python worker in turn (see `python.rs`), with the Python of the
//! project's virtualenv (`scripts/python-env.sh`, made on first use) unless `--python` names
//! another; `--no-python` leaves them out.
//!
//! ```text
//! cargo run --release -p multifrost-bench -- [--quick] [--flavour current-thread] [--out PATH]
//!     [--python PATH | --no-python]
//! ```

mod contenders;
mod floor;
mod python;
mod results;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use multifrost_bench::{cpu, Flavour};
use serde_json::json;

use contenders::{ChildEnv, Contender, Id, Lineup};
use results::{round, FlavourResult, Samples};

#[cfg(feature = "count-allocations")]
#[global_allocator]
static ALLOCATOR: multifrost_bench::alloc_count::Counting = multifrost_bench::alloc_count::Counting;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Calls kept in flight by the throughput measurements.
const IN_FLIGHT: usize = 1_000;

/// 1 MiB, the bytes echo's payload.
const MIB: usize = 1 << 20;

/// The child programs, built next to `rpc-bench`.
const CHILDREN: [&str; 5] = [
    "raw_echo",
    "bench_worker",
    "bench_macro_worker",
    "bench_tarpc_server",
    "bench_tonic_server",
];

#[derive(Parser, Debug)]
#[command(
    name = "rpc-bench",
    about = "multifrost against a raw ZeroMQ echo floor, tarpc and tonic, in one run"
)]
struct Args {
    /// A smoke run (about 10 s instead of about 1.5 minutes): small counts, two rounds.
    #[arg(long)]
    quick: bool,

    /// The tokio runtime flavour, used by this process and every child program.
    #[arg(long, value_enum, default_value_t = FlavourArg::CurrentThread)]
    flavour: FlavourArg,

    /// Instead of the benchmark, only this contender's 1,000-in-flight measurement, over and
    /// over for `--seconds`, for a profiler to watch (`perf record -g -- rpc-bench --profile
    /// multifrost_typed` records the server child too). Keys as in the JSON's `rows`.
    #[arg(long, value_name = "ROW")]
    profile: Option<String>,

    /// With `--profile`: repeat the 1 MiB echo instead of the throughput measurement.
    #[arg(long, requires = "profile")]
    mib: bool,

    /// With `--profile`: repeat small calls one at a time (the p50/p99 measurement) instead
    /// of the throughput measurement.
    #[arg(long, requires = "profile", conflicts_with = "mib")]
    sequential: bool,

    /// How long `--profile` runs.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,

    /// The Python (with pyzmq and msgpack) that runs the Python-parent rows (default: the
    /// project's virtualenv, made by scripts/python-env.sh).
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,

    /// Leave out the Python-parent rows.
    #[arg(long)]
    no_python: bool,

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
    /// Rounds of measurements, contenders interleaved within each; samples are pooled and
    /// throughputs take the median round.
    rounds: usize,
    /// Sequential round trips per contender and round.
    sequential: usize,
    /// Calls per throughput measurement.
    pipelined: usize,
    /// 1 MiB echoes per contender and round.
    mib: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                rounds: 2,
                sequential: 1_000,
                pipelined: 10_000,
                mib: 10,
            }
        } else {
            Plan {
                rounds: 5,
                sequential: 10_000,
                pipelined: 60_000,
                mib: 40,
            }
        }
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
    if let Some(key) = &args.profile {
        let id = Id::from_key(key).ok_or_else(|| {
            let keys: Vec<&str> = Id::ALL.iter().map(|id| id.key()).collect();
            format!("--profile {key}: no such row (one of {})", keys.join(", "))
        })?;
        let flavour = flavours[0];
        let runtime = flavour.runtime()?;
        runtime.block_on(profile(
            id,
            flavour,
            &bin_dir,
            Duration::from_secs_f64(args.seconds),
            args.mib,
            args.sequential,
        ))?;
        runtime.shutdown_timeout(Duration::from_secs(2));
        return Ok(());
    }
    eprintln!(
        "rpc-bench: {} run, {} round(s): {} sequential calls, {} calls with {IN_FLIGHT} in flight, \
         {} x 1 MiB echoes per contender and round",
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
             compete for the CPUs and the latencies will be noisy (CPU per call much less so)",
            load_before.unwrap_or_default()
        );
    }
    let alloc_dir = AllocationDir::create()?;
    let alloc_dir = alloc_dir.as_ref().map(|dir| dir.0.as_path());
    let started = Instant::now();
    let mut results = Vec::new();
    for flavour in flavours {
        eprintln!("rpc-bench: measuring on the {} runtime", flavour.name());
        let runtime = flavour.runtime()?;
        let result = runtime.block_on(measure_flavour(flavour, plan, &bin_dir, alloc_dir))?;
        runtime.shutdown_timeout(Duration::from_secs(2));
        results.push(result);
    }
    let python_rows = if args.no_python {
        Err("--no-python".to_string())
    } else {
        match python::find_python(args.python.as_deref()) {
            Ok(python) => {
                eprintln!("rpc-bench: Python parent rows, with {}", python.display());
                let runtime = results[0].flavour.runtime()?;
                let rows = runtime.block_on(python::measure(
                    &python,
                    &bin_dir,
                    results[0].flavour,
                    plan,
                ))?;
                runtime.shutdown_timeout(Duration::from_secs(2));
                Ok(rows)
            }
            Err(err) => {
                eprintln!("rpc-bench: warning: no Python for the Python-parent rows: {err}");
                Err(err.to_string())
            }
        }
    };
    let load_after = load_average();

    println!();
    for result in &results {
        result.print_markdown();
    }
    if let Ok(rows) = &python_rows {
        rows.print_markdown();
    }
    if let (Some(before), Some(after)) = (load_before, load_after) {
        println!(
            "load average: {before:.2} before, {after:.2} after (the benchmark itself adds about 1 to 2)"
        );
    }

    let mut report = results[0].to_json();
    if results.len() > 1 {
        let flavours_json: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|result| (result.flavour.name().to_owned(), result.to_json()))
            .collect();
        report["flavours"] = flavours_json.into();
    }
    report["python_parent"] = match &python_rows {
        Ok(rows) => rows.to_json(),
        Err(why) => json!({ "skipped": why }),
    };
    report["run"] = json!({
        "quick": args.quick,
        "rounds": plan.rounds,
        "sequential_calls_per_round": plan.sequential,
        "pipelined_calls": plan.pipelined,
        "in_flight": IN_FLIGHT,
        "mib_echoes_per_round": plan.mib,
        "small_payload_bytes": floor::SMALL_PAYLOAD.len(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "seconds": round(started.elapsed().as_secs_f64(), 1),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "allocations_counted": alloc_dir.is_some(),
    });
    write_report(&out, &report)?;
    println!(
        "JSON ({} figures at the top level) written to {}",
        results[0].flavour.name(),
        out.display()
    );
    Ok(())
}

/// With `--features count-allocations`, the fresh directory where the children write their
/// allocation counts; removed on drop.
struct AllocationDir(PathBuf);

impl AllocationDir {
    fn create() -> Result<Option<AllocationDir>> {
        if !cfg!(feature = "count-allocations") {
            return Ok(None);
        }
        let dir =
            std::env::temp_dir().join(format!("rpc-bench-allocations-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Some(AllocationDir(dir)))
    }
}

impl Drop for AllocationDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cargo run` builds only `rpc-bench`: build (or refresh) the child programs next to it, with
/// the same profile and features, when running under cargo. Outside cargo they must already be
/// there.
fn build_children(bin_dir: &Path) -> Result<()> {
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut command = std::process::Command::new(cargo);
        command.args(["build", "--quiet", "-p", "multifrost-bench"]);
        for child in CHILDREN {
            command.args(["--bin", child]);
        }
        if cfg!(feature = "count-allocations") {
            command.args(["--features", "count-allocations"]);
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

fn write_report(out: &Path, report: &serde_json::Value) -> Result<()> {
    if let Some(dir) = out.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(out, serde_json::to_string_pretty(report)? + "\n")?;
    Ok(())
}

/// Runs every measurement under the current runtime, contenders interleaved within each round.
async fn measure_flavour(
    flavour: Flavour,
    plan: Plan,
    bin_dir: &Path,
    alloc_dir: Option<&Path>,
) -> Result<FlavourResult> {
    let env = alloc_env(alloc_dir);
    let mut lineup = Lineup::start(bin_dir, flavour, &env).await?;
    let mib_payload = Bytes::from(vec![0xa5u8; MIB]);

    // Warm-up: connections, allocators, caches, the runtimes' worker threads.
    for contender in &mut lineup.contenders {
        contender.small((plan.sequential / 5).max(200)).await?;
        contender.pipelined(plan.pipelined / 5).await?;
        contender.mib(&mib_payload, 3).await?;
    }

    let mut samples: Vec<Samples> = lineup
        .contenders
        .iter()
        .map(|_| Samples::default())
        .collect();
    for round in 0..plan.rounds {
        eprintln!("  round {}/{}", round + 1, plan.rounds);
        for (contender, samples) in lineup.contenders.iter_mut().zip(&mut samples) {
            if let Some(small) = contender.small(plan.sequential).await? {
                samples.small.extend(small);
            }
        }
        for (contender, samples) in lineup.contenders.iter_mut().zip(&mut samples) {
            measure_pipelined(contender, plan.pipelined, samples, alloc_dir).await?;
        }
        for (contender, samples) in lineup.contenders.iter_mut().zip(&mut samples) {
            if let Some(mib) = contender.mib(&mib_payload, plan.mib).await? {
                samples.mib.extend(mib);
            }
        }
    }

    let ids: Vec<Id> = lineup.contenders.iter().map(|c| c.id).collect();
    lineup.stop().await;
    Ok(FlavourResult {
        flavour,
        rows: samples
            .into_iter()
            .zip(ids)
            .map(|(samples, id)| samples.figures(id))
            .collect(),
    })
}

/// `--profile`: one contender's throughput measurement, repeated until `seconds` have passed,
/// then its rate and CPU per call (and allocations per call, when counted).
/// The CPU time of this process and of a server since a moment, for `--profile`.
struct CpuSince {
    server_pid: u32,
    server: Duration,
    driver: Duration,
}

impl CpuSince {
    fn now(server_pid: u32) -> Result<CpuSince> {
        Ok(CpuSince {
            server_pid,
            server: cpu::of_process(server_pid)?,
            driver: cpu::own(),
        })
    }

    /// Microseconds of CPU per item since then, over `count` items: here, and in the server.
    fn per(&self, count: f64) -> Result<(f64, f64)> {
        let driver = cpu::own().saturating_sub(self.driver).as_secs_f64() * 1e6 / count;
        let server = cpu::of_process(self.server_pid)?
            .saturating_sub(self.server)
            .as_secs_f64()
            * 1e6
            / count;
        Ok((driver, server))
    }
}

async fn profile(
    id: Id,
    flavour: Flavour,
    bin_dir: &Path,
    seconds: Duration,
    mib: bool,
    sequential: bool,
) -> Result<()> {
    let alloc_dir = AllocationDir::create()?;
    let alloc_dir = alloc_dir.as_ref().map(|dir| dir.0.as_path());
    let env: ChildEnv = alloc_env(alloc_dir);
    let mut lineup = Lineup::start(bin_dir, flavour, &env).await?;
    let contender = lineup
        .contenders
        .iter_mut()
        .find(|c| c.id == id)
        .ok_or("the contender is not in the lineup")?;
    eprintln!(
        "rpc-bench: profiling {} for {:.0} s: this process is {}, its server {}",
        id.label(),
        seconds.as_secs_f64(),
        std::process::id(),
        contender.server_pid
    );
    let mut samples = Samples::default();
    let started = Instant::now();
    if mib {
        let payload = Bytes::from(vec![0xa5u8; MIB]);
        let cpu = CpuSince::now(contender.server_pid)?;
        while started.elapsed() < seconds {
            let echoes = contender
                .mib(&payload, 20)
                .await?
                .ok_or("this row has no 1 MiB echo")?;
            samples.mib.extend(echoes);
        }
        let count = samples.mib.len() as f64;
        let (driver, server) = cpu.per(count)?;
        let figures = samples.figures(id);
        println!(
            "{}: 1 MiB echo p50 {:.3} ms, p99 {:.3} ms over {count} echoes; CPU per echo \
             {:.0} µs here + {:.0} µs in the server",
            id.label(),
            figures.mib_p50_ms,
            figures.mib_p99_ms,
            driver,
            server
        );
        lineup.stop().await;
        return Ok(());
    }
    if sequential {
        let cpu = CpuSince::now(contender.server_pid)?;
        while started.elapsed() < seconds {
            let calls = contender
                .small(2_000)
                .await?
                .ok_or("this row has no sequential measurement")?;
            samples.small.extend(calls);
        }
        let count = samples.small.len() as f64;
        let (driver, server) = cpu.per(count)?;
        let figures = samples.figures(id);
        println!(
            "{}: small call p50 {:.1} µs, p99 {:.1} µs over {count} calls one at a time; CPU \
             per call {driver:.2} µs here + {server:.2} µs in the server",
            id.label(),
            figures.p50_us,
            figures.p99_us,
        );
        lineup.stop().await;
        return Ok(());
    }
    while started.elapsed() < seconds {
        measure_pipelined(contender, 50_000, &mut samples, alloc_dir).await?;
    }
    let figures = samples.figures(id);
    println!(
        "{}: {}/s (median of {} runs), CPU per call {:.2} µs = {:.2} here + {:.2} in the server",
        id.label(),
        results::thousands(figures.per_s),
        figures.per_s_rounds.len(),
        figures.cpu_us(),
        figures.driver_cpu_us,
        figures.server_cpu_us
    );
    if let (Some(driver), Some(server)) = (figures.driver_allocations, figures.server_allocations) {
        println!("allocations per call: {driver:.1} here, {server:.1} in the server");
    }
    lineup.stop().await;
    Ok(())
}

fn alloc_env(alloc_dir: Option<&Path>) -> ChildEnv {
    alloc_dir
        .map(|dir| {
            vec![(
                multifrost_bench::ALLOC_DIR_ENV.to_owned(),
                dir.display().to_string(),
            )]
        })
        .unwrap_or_default()
}

/// One throughput measurement, with the CPU time (and allocations, when counted) that this
/// process and the contender's server spend during it and only during it.
async fn measure_pipelined(
    contender: &mut Contender,
    count: usize,
    samples: &mut Samples,
    alloc_dir: Option<&Path>,
) -> Result<()> {
    let allocations_before = match alloc_dir {
        Some(dir) => Some(allocations(dir, contender.server_pid).await?),
        None => None,
    };
    let server_before = cpu::of_process(contender.server_pid)?;
    let driver_before = cpu::own();
    let rate = contender.pipelined(count).await?;
    let driver = cpu::own().saturating_sub(driver_before);
    let server = cpu::of_process(contender.server_pid)?.saturating_sub(server_before);
    samples.pipelined.push(rate);
    samples.driver_cpu += driver;
    samples.server_cpu += server;
    samples.pipelined_calls += count as u64;
    if let (Some(dir), Some((driver_before, server_before))) = (alloc_dir, allocations_before) {
        let (driver_after, server_after) = allocations(dir, contender.server_pid).await?;
        *samples.driver_allocations.get_or_insert(0) += driver_after - driver_before;
        *samples.server_allocations.get_or_insert(0) += server_after - server_before;
    }
    Ok(())
}

/// This process's allocation count and the server's latest report, once the server has had
/// time to write one (it writes every 20 ms; both are idle here).
#[cfg(feature = "count-allocations")]
async fn allocations(dir: &Path, server_pid: u32) -> Result<(u64, u64)> {
    let driver = multifrost_bench::alloc_count::count();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        if let Some(server) = multifrost_bench::alloc_count::read_child(dir, server_pid) {
            return Ok((driver, server));
        }
    }
    Err(format!("no allocation count from process {server_pid} in 3 s").into())
}

#[cfg(not(feature = "count-allocations"))]
async fn allocations(_dir: &Path, _server_pid: u32) -> Result<(u64, u64)> {
    Err("allocations are counted only with --features count-allocations".into())
}

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}
