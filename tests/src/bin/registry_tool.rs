//! Drives `multifrost::registry` from a separate process, for the registry tests. The registry is
//! `$HOME/.multifrost` (the tests point `HOME` at a temporary folder).
//!
//! ```text
//! registry_tool register <id> [--pid P] [--port N] [--stay]
//!     prints "PORT <port>", or "ERROR <message>" and exits 1; with --stay, after a success it
//!     stays alive (its pid is the default owner) until its stdin closes or gives a line
//! registry_tool unregister <id> [--pid P]     prints "REMOVED true" or "REMOVED false"
//! registry_tool discover <id> <seconds>       prints "PORT <port> PID <pid>", or ERROR
//! registry_tool lookup <id>                   prints "PORT <port> PID <pid>", "NONE", or ERROR
//! registry_tool list                          prints "SERVICES <count>", or ERROR
//! registry_tool churn <prefix> <count> [--seconds S]
//!     registers <prefix>-0 .. <prefix>-<count-1>, discovers each, unregisters each, checking
//!     every step; repeats until S seconds passed (default: one round). Prints "CHURNED <ops>",
//!     or "ERROR <message>" and exits 1 at the first inconsistency
//! registry_tool hold-lock                     takes the lock, prints "LOCKED", holds it until
//!     its stdin closes or gives a line, releases it, prints "RELEASED"
//! ```
//! The default pid is this process's.

use std::io::BufRead;
use std::time::Duration;

use multifrost::registry::Registry;
use multifrost::Error;

fn usage() -> ! {
    eprintln!("usage: registry_tool register|unregister|discover|lookup|list|churn|hold-lock ... (see source)");
    std::process::exit(2)
}

/// Takes "--name value" out of args.
fn option<T: std::str::FromStr>(args: &mut Vec<String>, name: &str) -> Option<T> {
    let index = args.iter().position(|arg| arg == name)?;
    if index + 1 >= args.len() {
        usage();
    }
    let value = args.remove(index + 1);
    args.remove(index);
    Some(value.parse().unwrap_or_else(|_| usage()))
}

fn flag(args: &mut Vec<String>, name: &str) -> bool {
    let before = args.len();
    args.retain(|arg| arg != name);
    args.len() != before
}

fn fail(err: Error) -> ! {
    let text = err.to_string();
    println!(
        "ERROR {}",
        text.strip_prefix("service registry: ").unwrap_or(&text)
    );
    std::process::exit(1)
}

/// Blocks until stdin gives a line or closes.
fn wait_for_stdin() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let pid: u32 = option(&mut args, "--pid").unwrap_or_else(std::process::id);
    let port: Option<u16> = option(&mut args, "--port");
    let stay = flag(&mut args, "--stay");
    let churn_seconds: f64 = option(&mut args, "--seconds").unwrap_or(0.0);
    let registry = Registry::default_location().unwrap_or_else(|err| fail(err));
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["register", id] => {
            let port = match port {
                Some(port) => registry.register_port(id, pid, port).await.map(|()| port),
                None => registry.register(id, pid).await,
            };
            match port {
                Ok(port) => println!("PORT {port}"),
                Err(err) => fail(err),
            }
            if stay {
                tokio::task::spawn_blocking(wait_for_stdin).await.unwrap();
            }
        }
        ["unregister", id] => match registry.unregister(id, pid).await {
            Ok(removed) => println!("REMOVED {removed}"),
            Err(err) => fail(err),
        },
        ["discover", id, seconds] => {
            let seconds: f64 = seconds.parse().unwrap_or_else(|_| usage());
            match registry
                .discover(id, Duration::from_secs_f64(seconds))
                .await
            {
                Ok(entry) => println!("PORT {} PID {}", entry.port, entry.pid),
                Err(err) => fail(err),
            }
        }
        ["lookup", id] => match registry.lookup(id).await {
            Ok(Some(entry)) => println!("PORT {} PID {}", entry.port, entry.pid),
            Ok(None) => println!("NONE"),
            Err(err) => fail(err),
        },
        ["list"] => match registry.list().await {
            Ok(services) => println!("SERVICES {}", services.len()),
            Err(err) => fail(err),
        },
        ["churn", prefix, count] => {
            let count: usize = count.parse().unwrap_or_else(|_| usage());
            match churn(
                &registry,
                prefix,
                count,
                pid,
                Duration::from_secs_f64(churn_seconds),
            )
            .await
            {
                Ok(ops) => println!("CHURNED {ops}"),
                Err(err) => fail(err),
            }
        }
        ["hold-lock"] => {
            let held = registry
                .with_lock(|| {
                    println!("LOCKED");
                    wait_for_stdin();
                })
                .await;
            match held {
                Ok(()) => println!("RELEASED"),
                Err(err) => fail(err),
            }
        }
        _ => usage(),
    }
}

/// Registers, discovers and unregisters `count` ids per round, checking each step.
async fn churn(
    registry: &Registry,
    prefix: &str,
    count: usize,
    pid: u32,
    duration: Duration,
) -> Result<usize, Error> {
    let started = std::time::Instant::now();
    let mut ops = 0;
    loop {
        let ids: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
        for id in &ids {
            let port = registry.register(id, pid).await?;
            let found = registry.discover(id, Duration::from_secs(5)).await?;
            if found.port != port || found.pid != pid {
                return Err(Error::Registry(format!(
                    "{id}: registered port {port}, found {found:?}"
                )));
            }
            ops += 2;
        }
        for id in &ids {
            if !registry.unregister(id, pid).await? {
                return Err(Error::Registry(format!(
                    "{id}: lost before it was unregistered"
                )));
            }
            ops += 1;
        }
        if started.elapsed() >= duration {
            return Ok(ops);
        }
    }
}
