//! What the benchmark measures, side by side: the floor and its msgpack variant, multifrost
//! four ways (`call_dyn` on a hand-written worker; `call_dyn` and the typed client on the
//! `#[multifrost::worker]` worker, and the typed client on its `async fn` twins), tarpc and
//! tonic. Every server is a child process on
//! 127.0.0.1; this process is every client.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multifrost::{Handle, ParentWorker};
use multifrost_bench::macro_worker::BenchMacroWorker;
use multifrost_bench::{grpc, tarpc_service, Flavour, FLAVOUR_ENV, LISTENING};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::floor::RawPeer;
use crate::{check, BoxError, Result, IN_FLIGHT, MIB};

/// Which contender, in the order they run within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    Floor,
    FloorMsgpack,
    MultifrostHand,
    MultifrostCallDyn,
    MultifrostTyped,
    MultifrostTypedAsync,
    Tarpc,
    Tonic,
}

impl Id {
    pub const ALL: [Id; 8] = [
        Id::Floor,
        Id::FloorMsgpack,
        Id::MultifrostHand,
        Id::MultifrostCallDyn,
        Id::MultifrostTyped,
        Id::MultifrostTypedAsync,
        Id::Tarpc,
        Id::Tonic,
    ];

    /// The contender whose [`key`](Self::key) is `key`.
    pub fn from_key(key: &str) -> Option<Id> {
        Id::ALL.into_iter().find(|id| id.key() == key)
    }

    /// The key of its figures in the JSON report.
    pub fn key(self) -> &'static str {
        match self {
            Id::Floor => "floor",
            Id::FloorMsgpack => "floor_msgpack",
            Id::MultifrostHand => "multifrost_call_dyn_hand_worker",
            Id::MultifrostCallDyn => "multifrost_call_dyn",
            Id::MultifrostTyped => "multifrost_typed",
            Id::MultifrostTypedAsync => "multifrost_typed_async_methods",
            Id::Tarpc => "tarpc",
            Id::Tonic => "tonic",
        }
    }

    /// Its name in the printed tables.
    pub fn label(self) -> &'static str {
        match self {
            Id::Floor => "zeromq floor (raw echo)",
            Id::FloorMsgpack => "zeromq floor, msgpack echo",
            Id::MultifrostHand => "multifrost call_dyn, hand-written worker",
            Id::MultifrostCallDyn => "multifrost call_dyn, macro worker",
            Id::MultifrostTyped => "multifrost typed client, macro worker",
            Id::MultifrostTypedAsync => "multifrost typed client, macro worker, async fns",
            Id::Tarpc => "tarpc (bincode, TCP)",
            Id::Tonic => "tonic (gRPC, HTTP/2)",
        }
    }

    /// Whether it has a small-call and a 1 MiB measurement (the msgpack floor only has the
    /// throughput one).
    pub fn has_latency(self) -> bool {
        self != Id::FloorMsgpack
    }
}

/// One contender: its client end here and its server's process id.
pub struct Contender {
    pub id: Id,
    pub server_pid: u32,
    client: Client,
}

enum Client {
    Floor(RawPeer),
    FloorMsgpack(RawPeer),
    Hand(Handle),
    MacroCallDyn(Handle<BenchMacroWorker>),
    MacroTyped(Handle<BenchMacroWorker>),
    /// The typed client calling the `async fn` twins (`add_async`, `echo_bytes_async`).
    MacroTypedAsync(Handle<BenchMacroWorker>),
    Tarpc(tarpc_service::BenchClient),
    Tonic(grpc::BenchClient),
}

/// Every contender, and what has to outlive them (the worker handles to stop, the server
/// children whose stdin keeps them alive).
pub struct Lineup {
    pub contenders: Vec<Contender>,
    workers: Vec<Handle>,
    _servers: Vec<TcpServer>,
}

/// Environment variables every child program gets (the allocation counter's directory).
pub type ChildEnv = Vec<(String, String)>;

impl Lineup {
    pub async fn start(bin_dir: &Path, flavour: Flavour, env: &ChildEnv) -> Result<Lineup> {
        let mut contenders = Vec::new();
        let mut workers = Vec::new();
        let mut servers = Vec::new();

        for (id, msgpack) in [(Id::Floor, false), (Id::FloorMsgpack, true)] {
            let peer = RawPeer::start(&bin_dir.join("raw_echo"), msgpack, flavour, env).await?;
            let server_pid = peer.pid().ok_or("raw_echo has no pid")?;
            let client = if msgpack {
                Client::FloorMsgpack(peer)
            } else {
                Client::Floor(peer)
            };
            contenders.push(Contender {
                id,
                server_pid,
                client,
            });
        }

        let hand = start_worker(bin_dir, "bench_worker", flavour, env).await?;
        contenders.push(Contender {
            id: Id::MultifrostHand,
            server_pid: hand.pid().ok_or("bench_worker has no pid")?,
            client: Client::Hand(hand.clone()),
        });
        workers.push(hand);

        let macro_worker = start_worker(bin_dir, "bench_macro_worker", flavour, env).await?;
        let macro_pid = macro_worker.pid().ok_or("bench_macro_worker has no pid")?;
        let typed = macro_worker.typed::<BenchMacroWorker>();
        contenders.push(Contender {
            id: Id::MultifrostCallDyn,
            server_pid: macro_pid,
            client: Client::MacroCallDyn(typed.clone()),
        });
        contenders.push(Contender {
            id: Id::MultifrostTyped,
            server_pid: macro_pid,
            client: Client::MacroTyped(typed.clone()),
        });
        contenders.push(Contender {
            id: Id::MultifrostTypedAsync,
            server_pid: macro_pid,
            client: Client::MacroTypedAsync(typed),
        });
        workers.push(macro_worker);

        let (server, port) =
            TcpServer::start(&bin_dir.join("bench_tarpc_server"), flavour, env).await?;
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let tarpc_client = tarpc_service::BenchClient::new(
            tarpc::client::Config::default(),
            tarpc_service::transport(stream),
        )
        .spawn();
        contenders.push(Contender {
            id: Id::Tarpc,
            server_pid: server.pid,
            client: Client::Tarpc(tarpc_client),
        });
        servers.push(server);

        let (server, port) =
            TcpServer::start(&bin_dir.join("bench_tonic_server"), flavour, env).await?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
            .tcp_nodelay(true)
            .initial_stream_window_size(grpc::STREAM_WINDOW)
            .initial_connection_window_size(grpc::CONNECTION_WINDOW)
            .connect()
            .await?;
        contenders.push(Contender {
            id: Id::Tonic,
            server_pid: server.pid,
            client: Client::Tonic(grpc::BenchClient::new(channel)),
        });
        servers.push(server);

        Ok(Lineup {
            contenders,
            workers,
            _servers: servers,
        })
    }

    pub async fn stop(self) {
        for contender in self.contenders {
            match contender.client {
                Client::Floor(peer) | Client::FloorMsgpack(peer) => peer.stop().await,
                _ => {}
            }
        }
        for worker in &self.workers {
            worker.stop().await;
        }
        // The TCP servers exit when their stdin closes, as `_servers` drops.
    }
}

async fn start_worker(
    bin_dir: &Path,
    name: &str,
    flavour: Flavour,
    env: &ChildEnv,
) -> Result<Handle> {
    let mut worker = ParentWorker::spawn(bin_dir.join(name))
        .name(name)
        .env(FLAVOUR_ENV, flavour.name());
    for (key, value) in env {
        worker = worker.env(key, value);
    }
    let handle = worker.handle();
    handle.start().await?;
    Ok(handle)
}

/// A TCP server child (tarpc or tonic): it prints its port once it listens and exits when its
/// stdin closes, which happens when this drops.
struct TcpServer {
    pid: u32,
    _child: tokio::process::Child,
    _stdin: tokio::process::ChildStdin,
    _stdout: BufReader<tokio::process::ChildStdout>,
}

impl TcpServer {
    async fn start(program: &Path, flavour: Flavour, env: &ChildEnv) -> Result<(TcpServer, u16)> {
        let mut child = tokio::process::Command::new(program)
            .env(FLAVOUR_ENV, flavour.name())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", program.display()))?;
        let pid = child.id().ok_or("the server has no pid")?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line))
            .await
            .map_err(|_| format!("{} did not listen within 10 s", program.display()))??;
        let port = line
            .trim()
            .strip_prefix(LISTENING)
            .and_then(|port| port.parse::<u16>().ok())
            .ok_or_else(|| format!("{} printed {line:?}, not its port", program.display()))?;
        Ok((
            TcpServer {
                pid,
                _child: child,
                _stdin: stdin,
                _stdout: stdout,
            },
            port,
        ))
    }
}

/// Times each of `$count` calls, then checks each reply (outside the timing).
macro_rules! time_each {
    ($count:expr, $call:expr, $ok:expr, $what:expr) => {{
        let mut samples = Vec::with_capacity($count);
        for _ in 0..$count {
            let started = Instant::now();
            let reply = $call;
            samples.push(started.elapsed());
            check($ok(reply), $what)?;
        }
        samples
    }};
}

const ADD_WRONG: &str = "add(1, 2) != 3";
const ECHO_WRONG: &str = "the echo changed the 1 MiB payload";

impl Contender {
    /// Sequential `add(1, 2)` calls (the floor: its small echo), one sample each; `None` for a
    /// contender without this measurement.
    pub async fn small(&mut self, count: usize) -> Result<Option<Vec<Duration>>> {
        let is_three = |sum: i64| sum == 3;
        Ok(Some(match &mut self.client {
            Client::Floor(peer) => peer.sequential(count).await?,
            Client::FloorMsgpack(_) => return Ok(None),
            Client::Hand(handle) => time_each!(
                count,
                handle.call_dyn::<i64>("add", (1, 2)).await?,
                is_three,
                ADD_WRONG
            ),
            Client::MacroCallDyn(handle) => time_each!(
                count,
                handle.call_dyn::<i64>("add", (1, 2)).await?,
                is_three,
                ADD_WRONG
            ),
            Client::MacroTyped(handle) => {
                time_each!(count, handle.call().add(1, 2).await?, is_three, ADD_WRONG)
            }
            Client::MacroTypedAsync(handle) => time_each!(
                count,
                handle.call().add_async(1, 2).await?,
                is_three,
                ADD_WRONG
            ),
            Client::Tarpc(client) => time_each!(
                count,
                client.add(tarpc::context::current(), 1, 2).await?,
                is_three,
                ADD_WRONG
            ),
            Client::Tonic(client) => {
                time_each!(count, client.add(1, 2).await?, is_three, ADD_WRONG)
            }
        }))
    }

    /// `count` calls of `add(1, 2)` with `IN_FLIGHT` outstanding; calls per second.
    pub async fn pipelined(&mut self, count: usize) -> Result<f64> {
        match &mut self.client {
            Client::Floor(peer) => peer.pipelined(count).await,
            Client::FloorMsgpack(peer) => peer.pipelined_msgpack(count).await,
            Client::Hand(handle) => {
                in_flight(handle.clone(), count, |handle| async move {
                    let sum: i64 = handle.call_dyn("add", (1, 2)).await?;
                    check(sum == 3, ADD_WRONG)?;
                    Ok(handle)
                })
                .await
            }
            Client::MacroCallDyn(handle) => {
                in_flight(handle.clone(), count, |handle| async move {
                    let sum: i64 = handle.call_dyn("add", (1, 2)).await?;
                    check(sum == 3, ADD_WRONG)?;
                    Ok(handle)
                })
                .await
            }
            Client::MacroTyped(handle) => {
                in_flight(handle.clone(), count, |handle| async move {
                    let sum = handle.call().add(1, 2).await?;
                    check(sum == 3, ADD_WRONG)?;
                    Ok(handle)
                })
                .await
            }
            Client::MacroTypedAsync(handle) => {
                in_flight(handle.clone(), count, |handle| async move {
                    let sum = handle.call().add_async(1, 2).await?;
                    check(sum == 3, ADD_WRONG)?;
                    Ok(handle)
                })
                .await
            }
            Client::Tarpc(client) => {
                in_flight(client.clone(), count, |client| async move {
                    let sum = client.add(tarpc::context::current(), 1, 2).await?;
                    check(sum == 3, ADD_WRONG)?;
                    Ok(client)
                })
                .await
            }
            Client::Tonic(client) => {
                in_flight(client.clone(), count, |mut client| async move {
                    let sum = client.add(1, 2).await?;
                    check(sum == 3, ADD_WRONG)?;
                    Ok(client)
                })
                .await
            }
        }
    }

    /// Sequential echoes of 1 MiB of bytes (msgpack bin, bincode bytes, protobuf bytes), each
    /// through its client's natural API: borrowed where it takes a borrow (`call_dyn`), an
    /// owned copy where it takes ownership (typed client, tarpc), a shared `Bytes` for tonic.
    pub async fn mib(&mut self, data: &Bytes, count: usize) -> Result<Option<Vec<Duration>>> {
        let is_mib = |len: usize| len == MIB;
        Ok(Some(match &mut self.client {
            Client::Floor(peer) => peer.mib(data, count).await?,
            Client::FloorMsgpack(_) => return Ok(None),
            Client::Hand(handle) => time_each!(
                count,
                handle
                    .call_dyn::<ByteBuf>("echo", (serde_bytes::Bytes::new(data),))
                    .await?
                    .len(),
                is_mib,
                ECHO_WRONG
            ),
            Client::MacroCallDyn(handle) => time_each!(
                count,
                handle
                    .call_dyn::<ByteBuf>("echo_bytes", (serde_bytes::Bytes::new(data),))
                    .await?
                    .len(),
                is_mib,
                ECHO_WRONG
            ),
            Client::MacroTyped(handle) => time_each!(
                count,
                handle.call().echo_bytes(data.clone()).await?.len(),
                is_mib,
                ECHO_WRONG
            ),
            Client::MacroTypedAsync(handle) => time_each!(
                count,
                handle.call().echo_bytes_async(data.clone()).await?.len(),
                is_mib,
                ECHO_WRONG
            ),
            Client::Tarpc(client) => time_each!(
                count,
                client
                    .echo_bytes(tarpc::context::current(), data.clone())
                    .await?
                    .len(),
                is_mib,
                ECHO_WRONG
            ),
            Client::Tonic(client) => time_each!(
                count,
                client.echo_bytes(data.clone()).await?.len(),
                is_mib,
                ECHO_WRONG
            ),
        }))
    }
}

/// `count` calls from `IN_FLIGHT` tasks, each calling in a loop with its own clone of the
/// client (`call` takes it and hands it back); calls per second.
async fn in_flight<C, F, Fut>(client: C, count: usize, call: F) -> Result<f64>
where
    C: Clone + Send + 'static,
    F: Fn(C) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<C>> + Send,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..IN_FLIGHT {
        // Spread the remainder so the total is exactly `count`.
        let calls = count / IN_FLIGHT + usize::from(task < count % IN_FLIGHT);
        let (mut client, call) = (client.clone(), call.clone());
        tasks.spawn(async move {
            for _ in 0..calls {
                client = call(client).await?;
            }
            Ok::<(), BoxError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}
