//! Plain data: how a worker is reached ([`Target`], [`SpawnSpec`]) and the settings every
//! handle of one worker shares ([`WorkerConfig`]). The builder users see is
//! [`ParentWorker`](super::worker::ParentWorker).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::output::OutputHandler;
use crate::protocol::Limits;
use crate::registry::Registry;

/// How the worker is reached.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Start a process and let it connect back (spawn mode).
    Spawn(SpawnSpec),
    /// Connect to a worker already listening at this endpoint (`tcp://host:port`).
    Endpoint(String),
    /// Look a service up in the registry by id, then connect to it.
    Service {
        id: String,
        discovery_timeout: Duration,
    },
}

/// The program to start in spawn mode.
#[derive(Debug, Clone)]
pub(crate) struct SpawnSpec {
    pub script: PathBuf,
    pub executable: Option<OsString>,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub current_dir: Option<PathBuf>,
}

impl SpawnSpec {
    /// The program and its arguments: the interpreter is inferred from the script's extension
    /// (`.py` runs with `python3`, `.js` and `.mjs` with `node`); anything else runs directly.
    pub fn command_line(&self) -> (OsString, Vec<OsString>) {
        let script = self.script.clone().into_os_string();
        let interpreter = self.executable.clone().or_else(|| {
            match self.script.extension().and_then(|e| e.to_str()) {
                Some("py") => Some("python3".into()),
                Some("js" | "mjs" | "cjs") => Some("node".into()),
                _ => None,
            }
        });
        match interpreter {
            Some(program) => {
                let mut args = vec![script];
                args.extend(self.args.iter().cloned());
                (program, args)
            }
            None => (script, self.args.clone()),
        }
    }
}

/// Settings shared by every handle of one worker.
#[derive(Clone)]
pub(crate) struct WorkerConfig {
    pub name: String,
    pub target: Target,
    pub default_timeout: Option<Duration>,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
    pub max_in_flight: usize,
    pub max_in_flight_bytes: usize,
    pub heartbeat_interval: Option<Duration>,
    pub heartbeat_timeout: Duration,
    pub heartbeat_max_misses: u32,
    /// Replace the worker after this long without any sign of life (opt-in).
    pub restart_on_unresponsive: Option<Duration>,
    pub auto_restart: bool,
    pub max_restart_attempts: u32,
    pub circuit_threshold: u32,
    pub circuit_cooldown: Duration,
    pub limits: Limits,
    pub output: OutputHandler,
    pub auth_token: Option<String>,
    pub registry: Option<Registry>,
}

impl WorkerConfig {
    /// The registry connect mode looks services up in.
    pub fn registry(&self) -> crate::error::Result<Registry> {
        match &self.registry {
            Some(registry) => Ok(registry.clone()),
            None => Registry::default_location(),
        }
    }
}
