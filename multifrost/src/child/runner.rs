//! Starting a child: [`run`] and [`ChildRunner`], the choice between spawn mode and connect
//! mode (PROTOCOL.md section 5), and a service's registration.

use std::sync::Arc;

use super::output::{capture_stdio, write_fatal};
use super::serve::Server;
use super::worker::Worker;
use crate::error::{Error, Result};
use crate::protocol::contract::{AUTH_TOKEN_ENV, PORT_ENV};
use crate::protocol::Limits;
use crate::registry::Registry;
use crate::transport::router::Router;

/// Serves a worker until the parent sends `shutdown`, goes away, or the process gets SIGTERM or
/// SIGINT. On a fatal error (a bad `COMLINK_ZMQ_PORT`, no parent to connect to) it prints the
/// reason to stderr and exits the process with status 1.
///
/// In spawn mode (`COMLINK_ZMQ_PORT` set by the parent) the child's own stdout and stderr are
/// captured and forwarded to the parent as `stdout` / `stderr` messages.
pub async fn run<W: Worker>(worker: W) {
    ChildRunner::new(worker).run().await
}

fn fatal(err: &Error) -> ! {
    write_fatal(&format!("multifrost worker: fatal: {err}"));
    std::process::exit(1)
}

/// Options for serving a worker; [`run`] uses the defaults.
pub struct ChildRunner<W> {
    worker: Arc<W>,
    limits: Limits,
    capture_output: bool,
    service_id: Option<String>,
    auth_token: Option<String>,
    bind_address: std::net::IpAddr,
    registry: Option<Registry>,
    wide_integers: bool,
}

impl<W: Worker> ChildRunner<W> {
    /// Serves `worker` with the default options.
    pub fn new(worker: W) -> Self {
        ChildRunner {
            worker: Arc::new(worker),
            limits: Limits::default(),
            capture_output: true,
            service_id: None,
            auth_token: std::env::var(AUTH_TOKEN_ENV).ok().filter(|t| !t.is_empty()),
            bind_address: std::net::Ipv4Addr::LOCALHOST.into(),
            registry: None,
            wide_integers: false,
        }
    }

    /// Whether results may hold integers outside i64 (msgpack uint64 above i64::MAX); default
    /// false. Only a Rust parent takes them: a Python parent silently gets them clamped and a
    /// Node parent never gets an answer (PROTOCOL.md section 3). Without it such a result is
    /// answered with an error reply naming the function and where the integer is; enable it
    /// for a worker whose parents are all Rust. Arguments outside i64 are accepted either way.
    pub fn wide_integers(mut self, enabled: bool) -> Self {
        self.wide_integers = enabled;
        self
    }

    /// The server for this worker and these settings.
    fn server(&self) -> Arc<Server<W>> {
        Server::new(
            self.worker.clone(),
            self.wide_integers,
            self.limits,
            self.auth_token.clone(),
        )
    }

    /// Limits applied to received calls (defaults: those of the Python implementation).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether spawn mode captures the process's stdout/stderr and forwards them (default true).
    pub fn capture_output(mut self, capture: bool) -> Self {
        self.capture_output = capture;
        self
    }

    /// The service id to register under when started on its own (connect mode).
    pub fn service_id(mut self, id: impl Into<String>) -> Self {
        self.service_id = Some(id.into());
        self
    }

    /// Require this shared token in every call's `metadata.auth_token` (default: the value of
    /// `MULTIFROST_AUTH_TOKEN`, if set). Calls without it get an error reply. A guard against
    /// accidental cross-talk, not cryptography: the token travels in clear text.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// The address a connect-mode service binds (default `127.0.0.1`). The protocol has no
    /// authentication: binding another interface exposes every method to that network, so it
    /// is an explicit choice (see also [`auth_token`](Self::auth_token)).
    pub fn bind_address(mut self, address: std::net::IpAddr) -> Self {
        self.bind_address = address;
        self
    }

    /// The registry to register in (default `~/.multifrost`, honouring `HOME`).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Serves until shutdown; on a fatal error prints it to stderr and exits with status 1.
    pub async fn run(self) {
        if let Err(err) = self.serve().await {
            fatal(&err);
        }
    }

    /// Serves until shutdown; returns the fatal error instead of exiting.
    ///
    /// Spawn mode when `COMLINK_ZMQ_PORT` is set and non-empty (it wins over a service id);
    /// otherwise connect mode under the [`service_id`](Self::service_id).
    pub async fn serve(self) -> Result<()> {
        match spawn_mode_port()? {
            Some(port) => self.serve_spawned(port).await,
            None => match self.service_id.clone() {
                Some(id) => self.serve_service(&id).await,
                None => Err(Error::Config(format!(
                    "{PORT_ENV} is not set and no service id was given: start this worker from a \
                     multifrost parent (spawn mode) or give it a service id (connect mode)"
                ))),
            },
        }
    }

    async fn serve_spawned(self, port: u16) -> Result<()> {
        let output = if self.capture_output {
            Some(capture_stdio().map_err(|e| Error::io("capturing stdout/stderr", e))?)
        } else {
            None
        };
        let router = Router::connect(port).await.map_err(|e| {
            Error::Transport(format!(
                "cannot reach the parent at tcp://127.0.0.1:{port}: {e}"
            ))
        })?;
        self.server().serve(router, output, true).await
    }

    /// Connect mode: register the id, bind, serve, and unregister however serving ends.
    async fn serve_service(self, service_id: &str) -> Result<()> {
        let registry = match self.registry.clone() {
            Some(registry) => registry,
            None => Registry::default_location()?,
        };
        let pid = std::process::id();
        let port = registry.register(service_id, pid).await?;
        let endpoint = format!("tcp://{}:{port}", self.bind_address);
        let served = match Router::bind(self.bind_address, port).await {
            Ok(router) => {
                tracing::info!(service_id, %endpoint, "service registered and listening");
                self.server().serve(router, None, false).await
            }
            Err(err) => Err(Error::Transport(format!(
                "cannot listen on {endpoint}: {err}"
            ))),
        };
        if let Err(err) = registry.unregister(service_id, pid).await {
            tracing::warn!(service_id, "could not unregister: {err}");
        }
        served
    }
}

/// The port from `COMLINK_ZMQ_PORT`, `None` when unset or empty, an error when invalid.
fn spawn_mode_port() -> Result<Option<u16>> {
    let Ok(text) = std::env::var(PORT_ENV) else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    match text.trim().parse::<u32>() {
        Ok(port @ 1024..=65535) => Ok(Some(port as u16)),
        _ => Err(Error::Config(format!(
            "{PORT_ENV}={text:?} is not a port number in 1024..=65535"
        ))),
    }
}
