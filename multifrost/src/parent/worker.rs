//! [`ParentWorker`]: the builder users see. It says where the worker is (a program to spawn, a
//! service to look up, an endpoint) and how to supervise it. Creating one is cheap and does
//! nothing; `Handle::start` does the work.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::blocking::BlockingHandle;
use super::client::{Dynamic, Service};
use super::config::{SpawnSpec, Target, WorkerConfig};
use super::handle::Handle;
use super::output::{OutputEvent, OutputHandler};
use super::supervisor::Supervisor;
use crate::protocol::contract::AUTH_TOKEN_ENV;
use crate::protocol::Limits;
use crate::registry::Registry;

/// A worker process (spawn mode) or service (connect mode), not yet started.
///
/// ```no_run
/// # async fn demo() -> multifrost::Result<()> {
/// use multifrost::ParentWorker;
///
/// let worker = ParentWorker::spawn("worker.py");     // configuration only
/// let handle = worker.handle();                         // a cheap, cloneable view
/// handle.start().await?;                                // spawns and waits until reachable
/// let sum: i64 = handle.call_dyn("add", (1, 2)).await?;
/// handle.stop().await;
/// # Ok(()) }
/// ```
pub struct ParentWorker {
    config: WorkerConfig,
    /// Whether [`name`](Self::name) set the name.
    named: bool,
    shared: std::sync::OnceLock<Arc<Supervisor>>,
}

impl ParentWorker {
    /// A worker that runs `script` as a child process. The interpreter is inferred from the
    /// extension (`.py`: `python3`, `.js`/`.mjs`: `node`; anything else is executed directly, which
    /// covers Rust binaries); [`executable`](Self::executable) overrides it. No shell is involved.
    pub fn spawn(script: impl AsRef<Path>) -> ParentWorker {
        let script = script.as_ref().to_path_buf();
        let name = script
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| script.display().to_string());
        ParentWorker::with_target(
            name,
            Target::Spawn(SpawnSpec {
                script,
                executable: None,
                args: Vec::new(),
                env: Vec::new(),
                current_dir: None,
            }),
        )
    }

    /// A long-running service registered under `service_id` (connect mode), found in the
    /// registry shared with every language (`~/.multifrost/services.json`). `start()` waits up
    /// to the [discovery timeout](Self::discovery_timeout) (default 5 s) for it to appear.
    /// `stop()` disconnects but never stops the service. If the service goes away and comes
    /// back (maybe on a new port), the next call looks it up again.
    pub fn connect(service_id: impl Into<String>) -> ParentWorker {
        let id = service_id.into();
        ParentWorker::with_target(
            id.clone(),
            Target::Service {
                id,
                discovery_timeout: Duration::from_secs(5),
            },
        )
    }

    /// The registry to look services up in (default `~/.multifrost`, honouring `HOME`).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.config.registry = Some(registry);
        self
    }

    /// How long `start()` waits for a service to appear in the registry (default 5 s).
    pub fn discovery_timeout(mut self, timeout: Duration) -> Self {
        if let Target::Service {
            discovery_timeout, ..
        } = &mut self.config.target
        {
            *discovery_timeout = timeout;
        }
        self
    }

    /// A worker already listening at `endpoint` (`tcp://host:port`), for example on another
    /// machine. `stop()` disconnects but never stops the remote process.
    pub fn connect_endpoint(endpoint: impl Into<String>) -> ParentWorker {
        let endpoint = endpoint.into();
        ParentWorker::with_target(endpoint.clone(), Target::Endpoint(endpoint))
    }

    fn with_target(name: String, target: Target) -> ParentWorker {
        ParentWorker {
            config: WorkerConfig {
                name,
                target,
                default_timeout: None,
                start_timeout: Duration::from_secs(30),
                stop_timeout: Duration::from_secs(2),
                max_in_flight: 10_000,
                max_in_flight_bytes: 256 * 1024 * 1024,
                heartbeat_interval: Some(Duration::from_secs(5)),
                heartbeat_timeout: Duration::from_secs(3),
                heartbeat_max_misses: 3,
                restart_on_unresponsive: None,
                auto_restart: false,
                max_restart_attempts: 5,
                circuit_threshold: 5,
                circuit_cooldown: Duration::from_secs(5),
                limits: Limits::default(),
                output: OutputHandler::default(),
                auth_token: None,
                registry: None,
            },
            shared: std::sync::OnceLock::new(),
            named: false,
        }
    }

    fn spec(&mut self) -> &mut SpawnSpec {
        match &mut self.config.target {
            Target::Spawn(spec) => spec,
            _ => panic!("spawn options only apply to ParentWorker::spawn"),
        }
    }

    /// The program that runs the script (for example `python3.12` or a virtualenv's python).
    pub fn executable(mut self, program: impl Into<OsString>) -> Self {
        self.spec().executable = Some(program.into());
        self
    }

    /// Extra arguments after the script.
    ///
    /// When the program is an interpreter (`python3`, `node`, `tsx`, `deno`, `bun`, `ruby`,
    /// `perl`) and no [`name`](Self::name) was given, the worker is named after its script, the
    /// first argument that is not an option: `spawn("python3").args(["model.py"])` is `model.py`.
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.spec().args.extend(args.into_iter().map(Into::into));
        if !self.named {
            if let Some(script) = script_of_interpreter(self.spec()) {
                self.config.name = script;
            }
        }
        self
    }

    /// An environment variable for the child.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.spec().env.push((key.into(), value.into()));
        self
    }

    /// The child's working directory.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spec().current_dir = Some(dir.into());
        self
    }

    /// The name used in logs and errors (default: the script's file name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self.named = true;
        self
    }

    /// The timeout of calls that set none (default: none, calls wait for their reply, or for
    /// the worker to exit).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = Some(timeout);
        self
    }

    /// How long `start()` waits for the worker to become reachable (default 30 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.config.start_timeout = timeout;
        self
    }

    /// How long `stop()` waits for a clean exit after `shutdown` before killing (default 2 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.config.stop_timeout = timeout;
        self
    }

    /// The most calls in flight at once (default 10,000); further calls wait for a slot, within
    /// their timeout. This bounds the parent's memory when the worker stalls.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.config.max_in_flight = max.max(1);
        self
    }

    /// How often the parent sends a heartbeat (default 5 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = Some(interval);
        self
    }

    /// Sends no periodic heartbeats: a hung worker is then only noticed through call timeouts.
    pub fn no_heartbeats(mut self) -> Self {
        self.config.heartbeat_interval = None;
        self
    }

    /// How long a heartbeat may take before it counts as missed (default 3 s).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.config.heartbeat_timeout = timeout;
        self
    }

    /// Consecutive missed heartbeats, with nothing else heard from the worker meanwhile,
    /// after which it counts as unresponsive (default 3): [`Handle::is_healthy`] turns false,
    /// [`MetricsSnapshot::unresponsive`](crate::MetricsSnapshot::unresponsive) is set and a
    /// tracing event says so. Nothing else happens: calls in flight keep waiting for their
    /// reply, their own timeout or the worker's death, and the circuit stays closed, because a
    /// worker that runs one call at a time (the Python, Node and Go implementations) answers no
    /// heartbeat while a call runs. Any message from the worker (a reply, output, a late echo)
    /// counts as a sign of life. To replace a worker that stays silent, see
    /// [`restart_on_unresponsive`](Self::restart_on_unresponsive).
    pub fn heartbeat_max_misses(mut self, misses: u32) -> Self {
        self.config.heartbeat_max_misses = misses.max(1);
        self
    }

    /// Replaces the worker when nothing at all (no heartbeat echo, no reply, no output) came
    /// from it for `silence` (opt-in; default never). Its calls in flight then fail with
    /// [`Error::Unresponsive`](crate::Error::Unresponsive); in spawn mode the process is killed
    /// and a new one started (the backoff and attempt limit of
    /// [`auto_restart`](Self::auto_restart) apply); in connect mode the connection is dropped
    /// and the next call connects again. Choose `silence` longer than the longest call of a
    /// worker that answers no heartbeat while busy. Needs heartbeats.
    pub fn restart_on_unresponsive(mut self, silence: Duration) -> Self {
        self.config.restart_on_unresponsive = Some(silence);
        self
    }

    /// Restart the child when it exits (default false; spawn mode only). Handles keep working
    /// across restarts; calls in flight at the time fail.
    pub fn auto_restart(mut self, enabled: bool) -> Self {
        self.config.auto_restart = enabled;
        self
    }

    /// Restart attempts in a row before giving up (default 5). Attempts back off from 100 ms,
    /// doubling up to 5 s. A restarted child that answers one periodic heartbeat or one call
    /// resets the count.
    pub fn max_restart_attempts(mut self, attempts: u32) -> Self {
        self.config.max_restart_attempts = attempts;
        self
    }

    /// Consecutive worker failures (timeouts, exits, disconnects) that open the circuit
    /// (default 5). Remote errors are answers and never count.
    pub fn circuit_threshold(mut self, failures: u32) -> Self {
        self.config.circuit_threshold = failures.max(1);
        self
    }

    /// How long an open circuit fails calls fast before letting one probe through (default 5 s).
    pub fn circuit_cooldown(mut self, cooldown: Duration) -> Self {
        self.config.circuit_cooldown = cooldown;
        self
    }

    /// A shared token sent with every call (`metadata.auth_token`); in spawn mode the child
    /// also gets it as `MULTIFROST_AUTH_TOKEN`, and a multifrost child configured with a token
    /// rejects calls that lack it. This guards against accidental cross-talk between services
    /// on one machine; it is not cryptography (the token travels in clear text).
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        if let Target::Spawn(spec) = &mut self.config.target {
            spec.env.push((AUTH_TOKEN_ENV.into(), token.clone().into()));
        }
        self.config.auth_token = Some(token);
        self
    }

    /// The most bytes of call arguments in flight at once (default 256 MiB); further calls
    /// wait, within their timeout. A timed-out call keeps its share (and its slot of
    /// [`max_in_flight`](Self::max_in_flight)) until the child has read past it, because its
    /// message stays queued in the transport until then: a stalled child cannot make the
    /// parent queue more than this.
    pub fn max_in_flight_bytes(mut self, bytes: usize) -> Self {
        self.config.max_in_flight_bytes = bytes.max(1024);
        self
    }

    /// Limits applied to replies (defaults: those of the Python implementation).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Where the worker's output goes: each line of its stdout and stderr (its pipes, and the
    /// `stdout` / `stderr` messages a Rust child sends) is handed to `handler`.
    ///
    /// By default, when the program installed a `tracing` subscriber, each line is an info
    /// event of target `multifrost::output` (`[worker.py STDOUT]: text`), which the subscriber's
    /// filter can silence (`multifrost::output=off`); when it installed none, the same text is
    /// printed on the parent's stderr, as the Python implementation does. `on_output(|_| {})`
    /// discards the output.
    pub fn on_output(mut self, handler: impl Fn(&OutputEvent<'_>) + Send + Sync + 'static) -> Self {
        self.config.output = OutputHandler::new(handler);
        self
    }

    fn shared(&self) -> Arc<Supervisor> {
        self.shared
            .get_or_init(|| Supervisor::new(self.config.clone()))
            .clone()
    }

    /// A handle for calling any function by name (`call_dyn`). Every handle of a worker shares
    /// the same process and connection.
    pub fn handle(&self) -> Handle<Dynamic> {
        Handle::new(self.shared())
    }

    /// A handle with a typed client: `handle.call().add(1, 2)`, checked at compile time.
    ///
    /// `S` is a `#[multifrost::worker]` type (`handle_for::<Math>()`, which compiles the
    /// worker's crate), or a `#[multifrost::client]` trait as `dyn Trait`
    /// (`handle_for::<dyn MathApi>()`, which needs only the trait, for a worker in any
    /// language).
    pub fn handle_for<S: Service + ?Sized>(&self) -> Handle<S> {
        Handle::new(self.shared())
    }

    /// A handle whose methods block the calling thread, for programs without an async runtime.
    pub fn handle_blocking(&self) -> BlockingHandle<Dynamic> {
        BlockingHandle::new(self.handle())
    }

    /// A blocking handle with a typed client; see [`handle_for`](Self::handle_for).
    pub fn handle_blocking_for<S: Service + ?Sized>(&self) -> BlockingHandle<S> {
        BlockingHandle::new(self.handle_for())
    }

    /// The worker's name, as used in logs and errors.
    pub fn worker_name(&self) -> &str {
        &self.config.name
    }
}

impl std::fmt::Debug for ParentWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentWorker")
            .field("name", &self.config.name)
            .field("target", &self.config.target)
            .finish_non_exhaustive()
    }
}

/// The file name of the script an interpreter runs: its first argument that is not an option.
fn script_of_interpreter(spec: &SpawnSpec) -> Option<String> {
    let program = spec.script.file_name()?.to_str()?;
    let interpreter = ["node", "tsx", "ts-node", "deno", "bun", "ruby", "perl"].contains(&program)
        || program
            .strip_prefix("python")
            .is_some_and(|version| version.chars().all(|c| c.is_ascii_digit() || c == '.'));
    if !interpreter {
        return None;
    }
    let script = spec
        .args
        .iter()
        .find(|arg| !arg.to_string_lossy().starts_with('-'))?;
    Some(
        Path::new(script)
            .file_name()?
            .to_string_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_run_by_an_interpreter_is_named_after_its_script() {
        let worker = ParentWorker::spawn("python3").args(["-u", "/srv/models/model.py", "--fast"]);
        assert_eq!(worker.worker_name(), "model.py");
        let worker = ParentWorker::spawn("/usr/bin/node").args(["worker.mjs"]);
        assert_eq!(worker.worker_name(), "worker.mjs");
        let worker = ParentWorker::spawn("python3.12")
            .args(["a.py"])
            .name("model");
        assert_eq!(worker.worker_name(), "model", "an explicit name wins");
        let worker = ParentWorker::spawn("./math_worker").args(["--flag", "x"]);
        assert_eq!(worker.worker_name(), "math_worker", "not an interpreter");
    }
}
