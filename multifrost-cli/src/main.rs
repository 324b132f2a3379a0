//! `multifrost`: the command-line client of the comlink_ipc_v4 protocol. It lists registered
//! services, and calls or pings a worker in any language, found by service id, spawned from a
//! command line, or at an explicit endpoint.
//!
//! It fails fast: a service is looked up once (`--wait` to wait for it), an endpoint gets a few
//! seconds to answer (`--connect-timeout`), and each kind of failure has its own exit status
//! (see [`exit`]).

#![warn(missing_docs)]

mod exit;
mod json;
mod split;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use multifrost::child::{Description, MethodDescription};
use multifrost::protocol::contract::{DESCRIBE, LIST_FUNCTIONS};
use multifrost::registry::Registry;
use multifrost::{CallOptions, Dynamic, Error, Handle, ParentWorker, Value};

#[derive(Parser)]
#[command(
    name = "multifrost",
    version,
    about = "Call multifrost workers in any language from the command line",
    after_help = exit::TABLE
)]
struct Cli {
    /// Say more: the remote traceback of a failed call, retries while waiting for a service.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the registry's services with their pid, port and whether the process is alive.
    #[command(after_help = exit::TABLE)]
    Services {
        /// Print a JSON array of {"id", "pid", "port", "alive", "started"} instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Call a method and print its result as JSON.
    ///
    /// Each ARG is parsed as JSON, and taken as a plain string when it is not valid JSON.
    /// Bytes are written {"$bin": "<base64>"} in arguments and results. Integers must fit in
    /// i64 (other languages refuse more); quote a longer one to send it as a string.
    #[command(after_help = exit::TABLE)]
    Call {
        #[command(flatten)]
        target: Target,
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
        timeout: f64,
        /// The namespace to call in.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// A metadata entry the worker sees in its call context, sent as a string (repeatable,
        /// like grpcurl's -H).
        #[arg(long, short = 'H', value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// Accept integers from 2^63 to 2^64-1 and send them as msgpack uint64 (PROTOCOL.md
        /// says receivers may refuse them).
        #[arg(long)]
        allow_u64: bool,
        /// The method's name.
        method: String,
        /// Positional arguments.
        #[arg(allow_negative_numbers = true)]
        args: Vec<String>,
    },
    /// List a worker's methods: their signatures for a Rust worker, the names for any other
    /// (through `list_functions`).
    #[command(after_help = exit::TABLE)]
    List {
        #[command(flatten)]
        target: Target,
        /// The namespace to ask in.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Print the description as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Describe a worker's methods (or one of them): wire name, parameters and their Rust
    /// types, optional parameters, return type, the first line of the doc comment.
    #[command(after_help = exit::TABLE)]
    Describe {
        #[command(flatten)]
        target: Target,
        /// The namespace to ask in.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Print the description as JSON.
        #[arg(long)]
        json: bool,
        /// Only this method.
        method: Option<String>,
    },
    /// Send a heartbeat and print its round-trip time.
    #[command(after_help = exit::TABLE)]
    Ping {
        #[command(flatten)]
        target: Target,
        /// Seconds to wait for the heartbeat's answer.
        #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
        timeout: f64,
        /// Print {"worker", "rtt_ms"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct Target {
    #[command(flatten)]
    choice: TargetChoice,
    /// With --service: wait up to this long for the service to be registered and reachable
    /// (default: look once, fail at once if it is not there).
    #[arg(long, value_name = "SECONDS")]
    wait: Option<f64>,
    /// How long the worker gets to answer once found or spawned (default: 3 s for --service
    /// and --endpoint, 30 s for --spawn, where an interpreter may load slowly).
    #[arg(long, value_name = "SECONDS")]
    connect_timeout: Option<f64>,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct TargetChoice {
    /// A service registered under this id in ~/.multifrost/services.json (connect mode).
    #[arg(long)]
    service: Option<String>,
    /// A program to spawn as a worker (spawn mode) with its arguments, split like a shell
    /// would: quotes and backslashes work ('"/my dir/python3" worker.py'), but no shell runs,
    /// so there is no $VAR, ~ or glob expansion.
    #[arg(long, value_name = "COMMAND")]
    spawn: Option<String>,
    /// A worker listening at tcp://host:port.
    #[arg(long, value_name = "tcp://HOST:PORT")]
    endpoint: Option<String>,
}

/// Why the command failed: the exit status and what to print on stderr (nothing for a closed
/// output pipe).
struct Failure {
    code: u8,
    message: Option<String>,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: Some(message.into()),
        }
    }

    fn usage(message: impl Into<String>) -> Failure {
        Failure::new(exit::USAGE, message)
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Failure {
        Failure::new(exit::for_error(&err), err.to_string())
    }
}

/// Writes to stderr, ignoring errors (there is nowhere left to report them).
fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Writes lines to stdout. A closed pipe (`multifrost services | head -1`) stops the output
/// quietly: the reader has what it wanted.
fn print_lines<I: IntoIterator<Item = String>>(lines: I) -> Result<(), Failure> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in lines {
        if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(Failure::new(
                exit::OTHER,
                format!("writing to stdout: {err}"),
            ));
        }
    }
    Ok(())
}

fn seconds(option: &str, value: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| Failure::usage(format!("{option} {value}: not a number of seconds")))
}

impl Target {
    /// The worker described on the command line; `discovery` bounds the registry lookup.
    fn worker(&self, discovery: Duration) -> Result<ParentWorker, Failure> {
        let TargetChoice {
            service,
            spawn,
            endpoint,
        } = &self.choice;
        let connect_timeout = match self.connect_timeout {
            Some(value) => seconds("--connect-timeout", value)?,
            None if spawn.is_some() => Duration::from_secs(30),
            None => Duration::from_secs(3),
        };
        let worker = if let Some(id) = service {
            ParentWorker::connect(id).discovery_timeout(discovery)
        } else if let Some(command) = spawn {
            let words =
                split::split(command).map_err(|err| Failure::usage(format!("--spawn: {err}")))?;
            let (program, args) = words
                .split_first()
                .ok_or_else(|| Failure::usage("--spawn needs a program"))?;
            ParentWorker::spawn(program).args(args)
        } else if let Some(endpoint) = endpoint {
            ParentWorker::connect_endpoint(endpoint)
        } else {
            return Err(Failure::usage(
                "give one of --service, --spawn or --endpoint",
            ));
        };
        Ok(worker
            .start_timeout(connect_timeout)
            .no_heartbeats()
            .on_output(|event| {
                note(&format!(
                    "[{} {}]: {}",
                    event.worker,
                    event.stream.as_str(),
                    event.text
                ))
            }))
    }

    /// Finds, spawns or connects to the worker and waits until it answers.
    async fn start(&self, verbose: bool) -> Result<Handle<Dynamic>, Failure> {
        let wait = match self.wait {
            Some(_) if self.choice.service.is_none() => {
                return Err(Failure::usage("--wait only applies to --service"))
            }
            Some(value) => seconds("--wait", value)?,
            None => Duration::ZERO,
        };
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let handle = self.worker(left)?.handle();
            match handle.start().await {
                Ok(()) => return Ok(handle),
                // Registered but not listening yet (a service registers, then binds): with
                // --wait, that is still waiting for it to appear.
                Err(err @ Error::StartFailed { .. })
                    if self.choice.service.is_some() && Instant::now() < deadline =>
                {
                    if verbose {
                        note(&format!("multifrost: {err}; trying again"));
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(Duration::from_millis(100).min(left)).await;
                }
                Err(Error::ServiceNotFound { service, .. }) => {
                    return Err(not_found(&service, self.wait))
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// The message for a service that is not in the registry.
fn not_found(service: &str, wait: Option<f64>) -> Failure {
    let registry = Registry::default_location()
        .map(|registry| registry.path().display().to_string())
        .unwrap_or_else(|_| "~/.multifrost/services.json".to_owned());
    let message = match wait {
        Some(wait) => format!("service '{service}' did not appear in {registry} within {wait}s"),
        None => format!(
            "service '{service}' is not registered in {registry} (or its process is gone); \
             pass --wait SECONDS to wait for it"
        ),
    };
    Failure::new(exit::NOT_FOUND, message)
}

/// `KEY=VALUE` from --metadata.
fn metadata_entry(text: &str) -> Result<(&str, &str), Failure> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key, value)),
        _ => Err(Failure::usage(format!(
            "--metadata {text:?}: expected KEY=VALUE"
        ))),
    }
}

/// The message of a failed call, with the remote traceback when asked for.
fn call_failure(err: Error, verbose: bool) -> Failure {
    let mut failure = Failure::new(exit::for_error(&err), err.to_string());
    if let Error::Remote {
        traceback: Some(traceback),
        ..
    } = &err
    {
        let message = failure.message.get_or_insert_with(String::new);
        if verbose {
            message.push_str("\nremote traceback:\n");
            message.push_str(traceback.trim_end());
        } else {
            message.push_str("\n(the worker sent a traceback: add --verbose to see it)");
        }
    }
    failure
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let verbose = cli.verbose;
    match cli.command {
        Command::Services { json } => {
            let registry = Registry::default_location()?;
            let services = registry.list().await?;
            if json {
                let entries: Vec<_> = services
                    .iter()
                    .map(|(id, entry, alive)| {
                        serde_json::json!({
                            "id": id,
                            "pid": entry.pid,
                            "port": entry.port,
                            "alive": alive,
                            "started": entry.started,
                        })
                    })
                    .collect();
                print_lines([serde_json::Value::Array(entries).to_string()])?;
            } else {
                let header = format!(
                    "{:<24} {:>8} {:>6} {:>6}  STARTED",
                    "SERVICE", "PID", "PORT", "ALIVE"
                );
                let rows = services.into_iter().map(|(id, entry, alive)| {
                    format!(
                        "{id:<24} {:>8} {:>6} {:>6}  {}",
                        entry.pid,
                        entry.port,
                        if alive { "yes" } else { "no" },
                        entry.started.unwrap_or_default()
                    )
                });
                print_lines(std::iter::once(header).chain(rows))?;
            }
        }
        Command::Call {
            target,
            timeout,
            namespace,
            metadata,
            allow_u64,
            method,
            args,
        } => {
            let timeout = seconds("--timeout", timeout)?;
            // Everything the command line says is checked before anything is started.
            let args = args
                .iter()
                .enumerate()
                .map(|(index, arg)| {
                    json::parse_arg(arg, allow_u64)
                        .map_err(|err| Failure::usage(format!("argument {}: {err}", index + 1)))
                })
                .collect::<Result<Vec<Value>, Failure>>()?;
            let mut options = CallOptions::new()
                .timeout(timeout)
                .namespace(namespace)
                .client_name("multifrost-cli");
            if allow_u64 {
                options = options.wide_integers();
            }
            for entry in &metadata {
                let (key, value) = metadata_entry(entry)?;
                options = options.metadata(key, value);
            }
            let handle = target.start(verbose).await?;
            let result = handle.call_dyn_with::<Value>(&method, args, &options).await;
            handle.stop().await;
            let result = result.map_err(|err| call_failure(err, verbose))?;
            print_lines([json::to_json(&result).to_string()])?;
        }
        Command::List {
            target,
            namespace,
            json,
        } => {
            let description = describe(&target, namespace, verbose).await?;
            if json {
                print_lines([serde_json::to_string(&description).expect("a description")])?;
            } else {
                print_lines(description.methods.iter().map(signature))?;
            }
        }
        Command::Describe {
            target,
            namespace,
            json,
            method,
        } => {
            let mut description = describe(&target, namespace, verbose).await?;
            if let Some(method) = &method {
                description.methods.retain(|m| &m.name == method);
                if description.methods.is_empty() {
                    return Err(Failure::new(
                        exit::REMOTE_ERROR,
                        format!("the worker has no method '{method}'"),
                    ));
                }
            }
            if json {
                print_lines([serde_json::to_string(&description).expect("a description")])?;
            } else {
                let mut lines = vec![format!("namespace {}", description.namespace)];
                for method in &description.methods {
                    lines.push(String::new());
                    if let Some(doc) = &method.doc {
                        lines.push(format!("/// {doc}"));
                    }
                    lines.push(signature(method));
                }
                print_lines(lines)?;
            }
        }
        Command::Ping {
            target,
            timeout,
            json,
        } => {
            let timeout = seconds("--timeout", timeout)?;
            let handle = target.start(verbose).await?;
            let rtt = tokio::time::timeout(timeout, handle.heartbeat()).await;
            let worker = handle_name(&target);
            handle.stop().await;
            let rtt = match rtt {
                Ok(rtt) => rtt?,
                Err(_) => {
                    return Err(Failure::new(
                        exit::TIMEOUT,
                        format!("ping {worker}: no answer within {timeout:?}"),
                    ))
                }
            };
            let rtt_ms = rtt.as_secs_f64() * 1000.0;
            let line = if json {
                serde_json::json!({"worker": worker, "rtt_ms": rtt_ms}).to_string()
            } else {
                format!("heartbeat round trip: {rtt_ms:.3} ms")
            };
            print_lines([line])?;
        }
    }
    Ok(())
}

/// What a worker says about itself: `multifrost.describe` from a Rust worker, else the names
/// its `list_functions` answers (the upstream Python worker has it).
async fn describe(
    target: &Target,
    namespace: String,
    verbose: bool,
) -> Result<Description, Failure> {
    let options = CallOptions::new()
        .timeout(Duration::from_secs(10))
        .namespace(namespace.clone())
        .client_name("multifrost-cli");
    let handle = target.start(verbose).await?;
    let described = handle
        .call_dyn_with::<Description>(DESCRIBE, (), &options)
        .await;
    let result = match described {
        Ok(description) => Ok(description),
        Err(Error::Remote { .. }) => handle
            .call_dyn_with::<Vec<String>>(LIST_FUNCTIONS, (), &options)
            .await
            .map(|names| Description::from_names(&namespace, names))
            .map_err(|err| call_failure(err, verbose)),
        Err(err) => Err(call_failure(err, verbose)),
    };
    handle.stop().await;
    result
}

/// `add(a: i64, b: i64) -> i64`, or just the name when the worker does not say more.
fn signature(method: &MethodDescription) -> String {
    let Some(params) = &method.params else {
        return method.name.clone();
    };
    let params: Vec<String> = params
        .iter()
        .map(|param| {
            let optional = if param.optional { "?" } else { "" };
            format!("{}{optional}: {}", param.name, param.ty)
        })
        .collect();
    let returns = method
        .returns
        .as_ref()
        .map_or_else(String::new, |ty| format!(" -> {ty}"));
    format!("{}({}){returns}", method.name, params.join(", "))
}

/// What the target was called on the command line, for messages.
fn handle_name(target: &Target) -> String {
    let choice = &target.choice;
    choice
        .service
        .clone()
        .or_else(|| choice.endpoint.clone())
        .or_else(|| choice.spawn.clone())
        .unwrap_or_default()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            if let Some(message) = message {
                note(&format!("multifrost: {message}"));
            }
            ExitCode::from(code)
        }
    }
}
