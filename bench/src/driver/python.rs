//! The Python-parent rows: the test peer (`tests/python/comlink_peer.py parent-bench`) as the
//! parent, calling `add` on the `#[multifrost::worker]` worker (`bench_macro_worker`) and on
//! the test peer's own Python worker, the two children interleaved within each round. The
//! peer does the measuring (its parent is the same for both children, so the difference is
//! the child) and prints one JSON object, read here.

use std::path::{Path, PathBuf};

use multifrost_bench::{Flavour, FLAVOUR_ENV};
use serde_json::{json, Value as Json};

use crate::results::{round, thousands};
use crate::{Plan, Result};

/// Calls the Python parent keeps in flight. Not 1,000: at 1,000 a Python parent calling the
/// Python worker lost replies (a call waited 30 s for one that never came), most likely at
/// libzmq's default high-water mark of 1,000 messages, past which a ROUTER drops what it
/// sends.
pub const PYTHON_IN_FLIGHT: usize = 100;

/// The repository's root (this crate is `bench/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// The Python to run the peer with: `--python` if given, else the project's virtualenv
/// (`scripts/python-env.sh` creates it once and prints its python). `Err` says why there is
/// none; the caller skips the rows.
pub fn find_python(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(python) = given {
        return Ok(python.to_path_buf());
    }
    let script = repo_root().join("scripts").join("python-env.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|err| format!("running {}: {err}", script.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", script.display(), output.status).into());
    }
    let python = String::from_utf8(output.stdout)?.trim().to_owned();
    if python.is_empty() {
        return Err(format!("{} printed no python", script.display()).into());
    }
    Ok(PathBuf::from(python))
}

/// One child's figures, as the peer measured them.
#[derive(Debug, Clone)]
pub struct PythonRow {
    pub p50_us: f64,
    pub p99_us: f64,
    pub per_s: f64,
    pub parent_cpu_us: f64,
    pub child_cpu_us: f64,
}

impl PythonRow {
    fn from_json(row: &Json) -> Result<PythonRow> {
        let get = |key: &str| {
            row[key]
                .as_f64()
                .ok_or_else(|| format!("parent-bench: no number {key:?} in {row}"))
        };
        Ok(PythonRow {
            p50_us: get("p50_us")?,
            p99_us: get("p99_us")?,
            per_s: get("per_s")?,
            parent_cpu_us: get("parent_cpu_us")?,
            child_cpu_us: get("child_cpu_us")?,
        })
    }

    fn cpu_us(&self) -> f64 {
        self.parent_cpu_us + self.child_cpu_us
    }

    fn to_json(&self) -> Json {
        json!({
            "p50_us": round(self.p50_us, 1),
            "p99_us": round(self.p99_us, 1),
            "per_s": self.per_s.round(),
            "cpu_us_per_call": {
                "parent": round(self.parent_cpu_us, 2),
                "child": round(self.child_cpu_us, 2),
                "both": round(self.cpu_us(), 2),
            },
        })
    }
}

/// Python parent to a Rust worker, and to a Python worker.
pub struct PythonRows {
    pub rust: PythonRow,
    pub python: PythonRow,
}

/// Runs the peer's `parent-bench` with `python` (a Python with pyzmq and msgpack). The
/// Python parent is much slower than ours, so it makes a fifth of the sequential calls and a
/// quarter of the pipelined ones the Rust rows make, in three times as many rounds: its rate
/// drifts a lot from round to round, and more, shorter rounds give a steadier median.
pub async fn measure(
    python: &Path,
    bin_dir: &Path,
    flavour: Flavour,
    plan: Plan,
) -> Result<PythonRows> {
    let peer = repo_root()
        .join("tests")
        .join("python")
        .join("comlink_peer.py");
    let worker = bin_dir.join("bench_macro_worker");
    let config = json!({
        "rounds": plan.rounds * 3,
        "sequential": (plan.sequential / 15).max(100),
        "pipelined": (plan.pipelined / 12).max(10 * PYTHON_IN_FLIGHT),
        "in_flight": PYTHON_IN_FLIGHT,
        "children": [
            ["rust", [worker]],
            ["python", [python, peer, "worker"]],
        ],
    });
    let output = tokio::process::Command::new(python)
        .arg(&peer)
        .arg("parent-bench")
        .arg(config.to_string())
        .env(FLAVOUR_ENV, flavour.name())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await?;
    if !output.status.success() {
        return Err(format!("{} parent-bench failed ({})", peer.display(), output.status).into());
    }
    let report: Json = serde_json::from_slice(&output.stdout)
        .map_err(|err| format!("parent-bench printed no JSON report: {err}"))?;
    Ok(PythonRows {
        rust: PythonRow::from_json(&report["rows"]["rust"])?,
        python: PythonRow::from_json(&report["rows"]["python"])?,
    })
}

impl PythonRows {
    /// The target: Python to Rust at least as fast as Python to Python.
    fn met(&self) -> bool {
        self.rust.per_s >= self.python.per_s && self.rust.p50_us <= self.python.p50_us
    }

    pub fn to_json(&self) -> Json {
        json!({
            "in_flight": PYTHON_IN_FLIGHT,
            "rust_worker": self.rust.to_json(),
            "python_worker": self.python.to_json(),
            "target": {
                "target": "Python parent: a Rust worker at least as fast as a Python worker \
                           (small-call p50 and calls/s)",
                "met": self.met(),
            },
        })
    }

    pub fn print_markdown(&self) {
        println!("### Python parent (the test peer, tests/python/comlink_peer.py) calling `add`\n");
        println!(
            "| child | small call p50 | p99 | {PYTHON_IN_FLIGHT} calls in flight | CPU per call (parent + child) |"
        );
        println!("|---|---|---|---|---|");
        for (name, row) in [
            (
                "Rust, `#[multifrost::worker]` (bench_macro_worker)",
                &self.rust,
            ),
            ("Python (the test peer's worker)", &self.python),
        ] {
            println!(
                "| {name} | {:.1} µs | {:.1} µs | {}/s | {:.1} µs = {:.1} + {:.1} |",
                row.p50_us,
                row.p99_us,
                thousands(row.per_s),
                row.cpu_us(),
                row.parent_cpu_us,
                row.child_cpu_us
            );
        }
        println!(
            "\n| target | figures | |\n|---|---|---|\n| Python to Rust at least as fast as Python to \
             Python | p50 {:.1} vs {:.1} µs, {}/s vs {}/s | {} |\n",
            self.rust.p50_us,
            self.python.p50_us,
            thousands(self.rust.per_s),
            thousands(self.python.per_s),
            if self.met() { "met" } else { "not met" }
        );
    }
}
