//! `multifrost`: the command-line client of the comlink_ipc_v4 protocol. It lists registered
//! services, and calls or pings a worker in any language, found by service id, spawned from a
//! command line, or at an explicit endpoint.
//!
//! Exit status: 0 success; 1 the worker answered with an error; 2 bad usage; 3 timeout;
//! 4 the worker could not be reached (not registered, failed to start, disconnected, exited);
//! 5 any other failure.

mod json;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use multifrost::registry::Registry;
use multifrost::{CallOptions, Error, ParentWorker, Value};

#[derive(Parser)]
#[command(
    name = "multifrost",
    version,
    about = "Call multifrost workers in any language from the command line"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the registry's services with their pid, port and whether the process is alive.
    Services {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Call a method and print its result as JSON.
    ///
    /// Each ARG is parsed as JSON, and taken as a plain string when it is not valid JSON.
    /// Bytes are written {"$bin": "<base64>"} in arguments and results.
    Call {
        #[command(flatten)]
        target: Target,
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// The namespace to call in.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The method's name.
        method: String,
        /// Positional arguments.
        args: Vec<String>,
    },
    /// Send a heartbeat and print its round-trip time.
    Ping {
        #[command(flatten)]
        target: Target,
        /// Seconds to wait for the worker.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct Target {
    /// A service registered under this id (connect mode).
    #[arg(long)]
    service: Option<String>,
    /// A program to spawn as a worker (spawn mode), with its arguments separated by spaces,
    /// e.g. 'python3 worker.py'. No shell is involved.
    #[arg(long)]
    spawn: Option<String>,
    /// A worker listening at tcp://host:port.
    #[arg(long)]
    endpoint: Option<String>,
}

impl Target {
    fn worker(&self, timeout: Duration) -> Result<ParentWorker, String> {
        let worker = if let Some(id) = &self.service {
            ParentWorker::connect(id).discovery_timeout(timeout)
        } else if let Some(command) = &self.spawn {
            let mut words = command.split_whitespace();
            let program = words.next().ok_or("--spawn needs a program")?;
            ParentWorker::spawn(program).args(words)
        } else if let Some(endpoint) = &self.endpoint {
            ParentWorker::connect_endpoint(endpoint)
        } else {
            return Err("give one of --service, --spawn or --endpoint".into());
        };
        // `timeout` bounds the call and the registry lookup; starting a worker (an interpreter
        // loading its modules, say) keeps the library's default bound.
        Ok(worker.no_heartbeats().on_output(|event| {
            eprintln!(
                "[{} {}]: {}",
                event.worker,
                event.stream.as_str(),
                event.text
            )
        }))
    }
}

fn exit_code(err: &Error) -> u8 {
    match err {
        Error::Remote { .. } => 1,
        Error::Timeout { .. } => 3,
        Error::StartFailed { .. }
        | Error::Disconnected { .. }
        | Error::ChildExited { .. }
        | Error::Registry(_)
        | Error::ServiceNotFound { .. }
        | Error::AlreadyRunning { .. }
        | Error::RegistryLocked { .. }
        | Error::CorruptRegistry { .. }
        | Error::Unresponsive { .. } => 4,
        _ => 5,
    }
}

fn seconds(value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("{value} is not a number of seconds"))
}

async fn run(cli: Cli) -> Result<(), (u8, String)> {
    let usage = |message: String| (2, message);
    let failed = |err: Error| (exit_code(&err), err.to_string());
    match cli.command {
        Command::Services { json } => {
            let registry = Registry::default_location().map_err(failed)?;
            let services = registry.list().await.map_err(failed)?;
            if json {
                let entries: Vec<_> = services
                    .iter()
                    .map(|(id, entry, alive)| {
                        serde_json::json!({"id": id, "pid": entry.pid, "port": entry.port, "alive": alive, "started": entry.started})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(entries));
            } else {
                println!(
                    "{:<24} {:>8} {:>6} {:>6}  STARTED",
                    "SERVICE", "PID", "PORT", "ALIVE"
                );
                for (id, entry, alive) in services {
                    println!(
                        "{id:<24} {:>8} {:>6} {:>6}  {}",
                        entry.pid,
                        entry.port,
                        if alive { "yes" } else { "no" },
                        entry.started.unwrap_or_default()
                    );
                }
            }
        }
        Command::Call {
            target,
            timeout,
            namespace,
            method,
            args,
        } => {
            let timeout = seconds(timeout).map_err(usage)?;
            let worker = target.worker(timeout).map_err(usage)?;
            let handle = worker.handle();
            handle.start().await.map_err(failed)?;
            let args: Vec<Value> = args.iter().map(|arg| json::parse_arg(arg)).collect();
            let options = CallOptions::new()
                .timeout(timeout)
                .namespace(namespace)
                .client_name("multifrost-cli");
            let result = handle.call_dyn_with::<Value>(&method, args, &options).await;
            handle.stop().await;
            println!("{}", json::to_json(&result.map_err(failed)?));
        }
        Command::Ping { target, timeout } => {
            let timeout = seconds(timeout).map_err(usage)?;
            let worker = target.worker(timeout).map_err(usage)?;
            let handle = worker.handle();
            handle.start().await.map_err(failed)?;
            let rtt = handle.heartbeat().await;
            handle.stop().await;
            println!(
                "heartbeat round trip: {:.3} ms",
                rtt.map_err(failed)?.as_secs_f64() * 1000.0
            );
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("multifrost: {message}");
            ExitCode::from(code)
        }
    }
}
