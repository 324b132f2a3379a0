//! Shared helpers of the integration tests (each test file says `mod support;`): the Python
//! and Node peers and their environments, the helper binaries, processes and memory; and, one
//! module per concern, the fuzz corpus, a child behind a raw DEALER, the toolbox worker, and
//! ZMTP bytes written by hand.
#![allow(dead_code)]

pub mod corpus;
pub mod raw_child;
pub mod toolbox;
pub mod zmtp;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// The virtualenv python with pyzmq and msgpack, created by scripts/python-env.sh on first use.
/// Fails the test (never skips it) when the environment cannot be made.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = repo().join("scripts/python-env.sh");
            let output = Command::new("bash")
                .arg(&script)
                .output()
                .expect("running scripts/python-env.sh");
            assert!(
                output.status.success(),
                "scripts/python-env.sh failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        })
        .clone()
}

/// The Python test peer script.
pub fn peer_script() -> PathBuf {
    repo().join("tests/python/comlink_peer.py")
}

/// The hand-written Rust worker binary.
pub fn hand_worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hand_worker"))
}

/// A worker running the Python test peer in spawn mode.
pub fn python_worker() -> multifrost::ParentWorker {
    multifrost::ParentWorker::spawn(peer_script())
        .executable(python())
        .args(["worker"])
        .name("python-peer")
}

/// A worker running the hand-written Rust worker in spawn mode.
pub fn rust_worker() -> multifrost::ParentWorker {
    multifrost::ParentWorker::spawn(hand_worker()).name("hand-worker")
}

/// Whether a process with this pid exists (and is not a zombie we could still reap).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .split(") ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits (polling /proc, bounded) until the process is gone; true if it went.
pub async fn wait_until_gone(pid: u32, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    !process_alive(pid)
}

/// The parent used by the parent-death test.
pub fn orphan_parent() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orphan_parent"))
}

/// Polls `condition` every 10 ms until it holds or `within` passes; true if it held.
pub async fn eventually(within: std::time::Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Like [`eventually`], with a condition that needs to await (a call to the worker).
pub async fn eventually_async<F, Fut>(within: std::time::Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Sends `signal` to a process this test started.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid as i32, signal) };
}

/// A temporary HOME folder (for an isolated service registry), removed when dropped.
pub struct TempHome(pub PathBuf);

impl TempHome {
    pub fn new(tag: &str) -> TempHome {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "multifrost-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp home");
        TempHome(dir)
    }

    /// The registry inside this HOME.
    pub fn registry(&self) -> multifrost::registry::Registry {
        multifrost::registry::Registry::at(self.0.join(".multifrost"))
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The example math worker, defined with the macro.
pub fn macro_math_worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_macro_math_worker"))
}

/// The toolbox worker, defined with the macro.
pub fn toolbox_worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_toolbox_worker"))
}

/// Runs the Python parent's suite (`comlink_peer.py <args>`, e.g. `parent-suite <worker>`)
/// with extra environment variables, and returns its report once every check passed.
pub async fn run_python_suite<I, S>(args: I, env: &[(&str, &std::ffi::OsStr)]) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_peer_suite("Python", python().as_os_str(), &peer_script(), args, env).await
}

/// Runs the Node parent's suite (`comlink_peer.mjs <args>`, e.g. `parent-suite <worker>`)
/// with extra environment variables, and returns its report once every check passed.
pub async fn run_node_suite<I, S>(args: I, env: &[(&str, &std::ffi::OsStr)]) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_peer_suite("Node", &node(), &node_peer_script(), args, env).await
}

async fn run_peer_suite<I, S>(
    language: &str,
    program: &std::ffi::OsStr,
    script: &Path,
    args: I,
    env: &[(&str, &std::ffi::OsStr)],
) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = tokio::process::Command::new(program)
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap_or_else(|err| panic!("running the {language} parent: {err}"));
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{language} parent suite failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains(" 0 failed"), "{report}");
    report
}

/// The node program: `$NODE`, or `node` from PATH.
pub fn node() -> std::ffi::OsString {
    std::env::var_os("NODE").unwrap_or_else(|| "node".into())
}

/// The Node test peer script, with its npm packages (zeromq, msgpackr) installed by
/// scripts/node-env.sh on first use. Fails the test (never skips it) when they cannot be.
pub fn node_peer_script() -> PathBuf {
    static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
    SCRIPT
        .get_or_init(|| {
            let script = repo().join("scripts/node-env.sh");
            let output = Command::new("bash")
                .arg(&script)
                .stdin(std::process::Stdio::null())
                .output()
                .expect("running scripts/node-env.sh");
            assert!(
                output.status.success(),
                "scripts/node-env.sh failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        })
        .clone()
}

/// A worker running the Node test peer in spawn mode (`node comlink_peer.mjs worker`).
pub fn node_worker() -> multifrost::ParentWorker {
    multifrost::ParentWorker::spawn(node_peer_script())
        .executable(node())
        .args(["worker"])
        .name("node-peer")
}

/// True when the long versions were asked for (`MULTIFROST_LONG=1`, as `scripts/soak.sh` does).
pub fn long_run() -> bool {
    std::env::var("MULTIFROST_LONG").is_ok_and(|v| v == "1")
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}
