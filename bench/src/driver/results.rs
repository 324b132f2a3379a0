//! From samples to figures, the targets, the Markdown tables and the JSON report.

use std::time::Duration;

use multifrost_bench::Flavour;
use serde_json::{json, Value as Json};

use crate::contenders::Id;

/// What one contender's measurements collect over the rounds.
#[derive(Debug, Default)]
pub struct Samples {
    pub small: Vec<Duration>,
    /// Calls per second, one per round.
    pub pipelined: Vec<f64>,
    pub mib: Vec<Duration>,
    /// CPU time spent during the throughput measurements, summed over the rounds.
    pub driver_cpu: Duration,
    pub server_cpu: Duration,
    /// Calls made during those measurements.
    pub pipelined_calls: u64,
    /// Allocations made during those measurements (`--features count-allocations`).
    pub driver_allocations: Option<u64>,
    pub server_allocations: Option<u64>,
}

/// One contender's figures.
#[derive(Debug, Clone)]
pub struct Figures {
    pub id: Id,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Median round.
    pub per_s: f64,
    pub per_s_rounds: Vec<f64>,
    pub mib_p50_ms: f64,
    pub mib_p99_ms: f64,
    /// CPU microseconds per call at 1,000 in flight, this process and the server's.
    pub driver_cpu_us: f64,
    pub server_cpu_us: f64,
    pub driver_allocations: Option<f64>,
    pub server_allocations: Option<f64>,
}

impl Samples {
    pub fn figures(mut self, id: Id) -> Figures {
        self.small.sort();
        self.mib.sort();
        let latency = |sorted: &[Duration], p: f64, scale: f64| {
            if sorted.is_empty() {
                f64::NAN
            } else {
                percentile(sorted, p).as_secs_f64() * scale
            }
        };
        let calls = self.pipelined_calls.max(1) as f64;
        let per_s_rounds = self.pipelined.clone();
        Figures {
            id,
            p50_us: latency(&self.small, 0.50, 1e6),
            p99_us: latency(&self.small, 0.99, 1e6),
            per_s: median(&mut self.pipelined),
            per_s_rounds,
            mib_p50_ms: latency(&self.mib, 0.50, 1e3),
            mib_p99_ms: latency(&self.mib, 0.99, 1e3),
            driver_cpu_us: self.driver_cpu.as_secs_f64() * 1e6 / calls,
            server_cpu_us: self.server_cpu.as_secs_f64() * 1e6 / calls,
            driver_allocations: self.driver_allocations.map(|n| n as f64 / calls),
            server_allocations: self.server_allocations.map(|n| n as f64 / calls),
        }
    }
}

impl Figures {
    pub fn cpu_us(&self) -> f64 {
        self.driver_cpu_us + self.server_cpu_us
    }

    fn to_json(&self, floor: &Figures) -> Json {
        let mut row = json!({
            "label": self.id.label(),
            "pipelined_per_s": self.per_s.round(),
            "pipelined_per_s_rounds": self.per_s_rounds.iter().map(|r| r.round()).collect::<Vec<_>>(),
            "cpu_us_per_call": {
                "driver": round(self.driver_cpu_us, 2),
                "server": round(self.server_cpu_us, 2),
                "both": round(self.cpu_us(), 2),
            },
        });
        let mut ratios = json!({
            "pipelined": round(self.per_s / floor.per_s, 3),
            "cpu": round(self.cpu_us() / floor.cpu_us(), 3),
        });
        if self.id.has_latency() {
            row["p50_us"] = json!(round(self.p50_us, 2));
            row["p99_us"] = json!(round(self.p99_us, 2));
            row["mib_p50_ms"] = json!(round(self.mib_p50_ms, 3));
            row["mib_p99_ms"] = json!(round(self.mib_p99_ms, 3));
            ratios["p50"] = json!(round(self.p50_us / floor.p50_us, 3));
            ratios["p99"] = json!(round(self.p99_us / floor.p99_us, 3));
            ratios["mib"] = json!(round(self.mib_p50_ms / floor.mib_p50_ms, 3));
        }
        row["ratios_to_floor"] = ratios;
        if let (Some(driver), Some(server)) = (self.driver_allocations, self.server_allocations) {
            row["allocations_per_call"] = json!({
                "driver": round(driver, 2),
                "server": round(server, 2),
            });
        }
        row
    }
}

/// Every contender under one runtime flavour.
pub struct FlavourResult {
    pub flavour: Flavour,
    pub rows: Vec<Figures>,
}

/// One of the targets, checked.
pub struct Target {
    pub what: String,
    pub met: bool,
    /// The figures it compared, e.g. `52.1 µs vs 60.3 µs (0.86x)`.
    pub detail: String,
}

impl FlavourResult {
    pub fn get(&self, id: Id) -> &Figures {
        self.rows
            .iter()
            .find(|row| row.id == id)
            .expect("every contender is measured")
    }

    /// The targets of issue 13 for the macro path's typed client: the comparisons with tarpc
    /// and the floor for a worker of `async fn` methods (as tarpc's and tonic's services are)
    /// and for one of plain `fn` methods (run on the threads for sync methods), then typed
    /// client against `call_dyn` on the same `fn` worker.
    pub fn targets(&self) -> Vec<Target> {
        let floor = self.get(Id::Floor);
        let dyn_ = self.get(Id::MultifrostCallDyn);
        let tarpc = self.get(Id::Tarpc);
        let us = |v: f64| format!("{v:.1} µs");
        let ms = |v: f64| format!("{v:.3} ms");
        let rate = |v: f64| format!("{}/s", thousands(v));
        let at_most =
            |what: String, mine: f64, theirs: f64, limit: f64, unit: &dyn Fn(f64) -> String| {
                Target {
                    what,
                    met: mine <= theirs * limit,
                    detail: format!("{} vs {} ({:.2}x)", unit(mine), unit(theirs), mine / theirs),
                }
            };
        let at_least =
            |what: String, mine: f64, theirs: f64, limit: f64, unit: &dyn Fn(f64) -> String| {
                Target {
                    what,
                    met: mine >= theirs * limit,
                    detail: format!("{} vs {} ({:.2}x)", unit(mine), unit(theirs), mine / theirs),
                }
            };
        let p99_within = |what: String, row: &Figures| Target {
            what,
            met: row.p99_us <= 2.0 * row.p50_us,
            detail: format!(
                "p99 {} / p50 {} ({:.2}x)",
                us(row.p99_us),
                us(row.p50_us),
                row.p99_us / row.p50_us
            ),
        };
        let mut targets = Vec::new();
        for (mf, methods) in [
            (self.get(Id::MultifrostTypedAsync), "async fn"),
            (self.get(Id::MultifrostTyped), "fn"),
        ] {
            let what = |text: &str| format!("{methods}: {text}");
            targets.extend([
                at_least(
                    what("1,000 in flight: at least tarpc's calls/s"),
                    mf.per_s,
                    tarpc.per_s,
                    1.0,
                    &rate,
                ),
                at_most(
                    what("CPU per call at 1,000 in flight (both processes): at most tarpc's"),
                    mf.cpu_us(),
                    tarpc.cpu_us(),
                    1.0,
                    &us,
                ),
                at_most(
                    what("small-call p50: at most tarpc's"),
                    mf.p50_us,
                    tarpc.p50_us,
                    1.0,
                    &us,
                ),
                at_most(
                    what("small-call p50: at most 1.4x the floor"),
                    mf.p50_us,
                    floor.p50_us,
                    1.4,
                    &us,
                ),
                at_most(
                    what("1 MiB echo: at most tarpc's"),
                    mf.mib_p50_ms,
                    tarpc.mib_p50_ms,
                    1.0,
                    &ms,
                ),
                at_most(
                    what("1 MiB echo: at most 1.6x the floor"),
                    mf.mib_p50_ms,
                    floor.mib_p50_ms,
                    1.6,
                    &ms,
                ),
                p99_within(what("small-call p99 within 2x p50"), mf),
            ]);
        }
        let mf = self.get(Id::MultifrostTyped);
        targets.extend([
            at_most(
                "fn: typed client within 5% of call_dyn: small-call p50".into(),
                mf.p50_us,
                dyn_.p50_us,
                1.05,
                &us,
            ),
            at_least(
                "fn: typed client within 5% of call_dyn: 1,000 in flight".into(),
                mf.per_s,
                dyn_.per_s,
                0.95,
                &rate,
            ),
            at_most(
                "fn: typed client within 5% of call_dyn: CPU per call".into(),
                mf.cpu_us(),
                dyn_.cpu_us(),
                1.05,
                &us,
            ),
            at_most(
                "fn: typed client within 5% of call_dyn: 1 MiB echo".into(),
                mf.mib_p50_ms,
                dyn_.mib_p50_ms,
                1.05,
                &ms,
            ),
            p99_within("fn: small-call p99 within 2x p50 (call_dyn)".into(), dyn_),
        ]);
        targets
    }

    pub fn to_json(&self) -> Json {
        let floor = self.get(Id::Floor);
        let mut rows = serde_json::Map::new();
        for row in &self.rows {
            rows.insert(row.id.key().to_owned(), row.to_json(floor));
        }
        let targets: Vec<Json> = self
            .targets()
            .iter()
            .map(|t| json!({ "target": t.what, "met": t.met, "figures": t.detail }))
            .collect();
        json!({
            "flavour": self.flavour.name(),
            "multifrost_rows": [Id::MultifrostTypedAsync.key(), Id::MultifrostTyped.key()],
            "rows": rows,
            "targets": targets,
        })
    }

    /// The table, then every row, then the targets: Markdown, ready for the README.
    pub fn print_markdown(&self) {
        let floor = self.get(Id::Floor);
        let columns = [
            self.get(Id::Floor),
            self.get(Id::MultifrostTypedAsync),
            self.get(Id::MultifrostTyped),
            self.get(Id::Tarpc),
            self.get(Id::Tonic),
        ];
        println!(
            "### Both ends on the {} runtime; multifrost = typed client, `#[multifrost::worker]` worker of `async fn` or `fn` methods\n",
            self.flavour.name()
        );
        println!(
            "| figure | zeromq floor | multifrost, async fn | multifrost, fn | tarpc (bincode) | tonic |"
        );
        println!("|---|---|---|---|---|---|");
        let line = |name: &str, cell: &dyn Fn(&Figures) -> String| {
            let cells: Vec<String> = columns.iter().map(|row| cell(row)).collect();
            println!("| {name} | {} |", cells.join(" | "));
        };
        let with_ratio = |text: String, ratio: f64, is_floor: bool| {
            if is_floor {
                text
            } else {
                format!("{text} ({ratio:.2}x)")
            }
        };
        line("small call p50", &|r| {
            with_ratio(
                format!("{:.1} µs", r.p50_us),
                r.p50_us / floor.p50_us,
                r.id == Id::Floor,
            )
        });
        line("small call p99", &|r| {
            with_ratio(
                format!("{:.1} µs", r.p99_us),
                r.p99_us / floor.p99_us,
                r.id == Id::Floor,
            )
        });
        line("1,000 calls in flight (calls/s)", &|r| {
            with_ratio(thousands(r.per_s), r.per_s / floor.per_s, r.id == Id::Floor)
        });
        line("1 MiB bytes echo (p50)", &|r| {
            with_ratio(
                format!("{:.3} ms", r.mib_p50_ms),
                r.mib_p50_ms / floor.mib_p50_ms,
                r.id == Id::Floor,
            )
        });
        line("1 MiB bytes echo (p99)", &|r| {
            with_ratio(
                format!("{:.3} ms", r.mib_p99_ms),
                r.mib_p99_ms / floor.mib_p99_ms,
                r.id == Id::Floor,
            )
        });
        line("CPU per call at 1,000 in flight (both processes)", &|r| {
            with_ratio(
                format!(
                    "{:.2} µs = {:.2} + {:.2}",
                    r.cpu_us(),
                    r.driver_cpu_us,
                    r.server_cpu_us
                ),
                r.cpu_us() / floor.cpu_us(),
                r.id == Id::Floor,
            )
        });
        println!(
            "\nRatios are to the floor (raw ZeroMQ echo through the zeromq crate, the same frames). \
             CPU per call is client + server, user + system time.\n"
        );

        println!("| row | p50 | p99 | 1,000 in flight | CPU/call (client + server) | 1 MiB p50 | 1 MiB p99 |");
        println!("|---|---|---|---|---|---|---|");
        for row in &self.rows {
            let (p50, p99, mib50, mib99) = if row.id.has_latency() {
                (
                    format!("{:.1} µs ({:.2}x)", row.p50_us, row.p50_us / floor.p50_us),
                    format!("{:.1} µs ({:.2}x)", row.p99_us, row.p99_us / floor.p99_us),
                    format!(
                        "{:.3} ms ({:.2}x)",
                        row.mib_p50_ms,
                        row.mib_p50_ms / floor.mib_p50_ms
                    ),
                    format!("{:.3} ms", row.mib_p99_ms),
                )
            } else {
                ("".into(), "".into(), "".into(), "".into())
            };
            println!(
                "| {} | {p50} | {p99} | {}/s ({:.2}x) | {:.2} µs = {:.2} + {:.2} ({:.2}x) | {mib50} | {mib99} |",
                row.id.label(),
                thousands(row.per_s),
                row.per_s / floor.per_s,
                row.cpu_us(),
                row.driver_cpu_us,
                row.server_cpu_us,
                row.cpu_us() / floor.cpu_us(),
            );
        }
        if self.rows.iter().any(|row| row.driver_allocations.is_some()) {
            println!("\n| row | allocations per call, client | server |");
            println!("|---|---|---|");
            for row in &self.rows {
                if let (Some(driver), Some(server)) =
                    (row.driver_allocations, row.server_allocations)
                {
                    println!("| {} | {driver:.1} | {server:.1} |", row.id.label());
                }
            }
        }

        println!("\n| target (multifrost: typed client, macro worker of async fn or fn methods) | figures | |");
        println!("|---|---|---|");
        for target in self.targets() {
            println!(
                "| {} | {} | {} |",
                target.what,
                target.detail,
                if target.met { "met" } else { "not met" }
            );
        }
        println!();
    }
}

/// The nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// A rate with thousands separators.
pub fn thousands(value: f64) -> String {
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
