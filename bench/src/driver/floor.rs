//! The floor: a raw ZeroMQ DEALER (this process) and a `raw_echo` ROUTER child, with the crate
//! and frame layout multifrost uses and nothing else. Its msgpack variant also encodes a call
//! and decodes a reply per request: the least any msgpack RPC does per call.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use multifrost_bench::{unix_now, Flavour, FloorCall, FloorReply, FLAVOUR_ENV, PORT_ENV};
use zeromq::prelude::{Socket, SocketRecv, SocketSend};
use zeromq::{DealerSocket, Endpoint, SocketEvent, ZmqMessage};

use crate::{check, Result, IN_FLIGHT, MIB};

/// The small payload of the floor's round trip, about the size of a small call's arguments
/// and envelope keys.
pub const SMALL_PAYLOAD: &[u8] = b"{app: comlink_ipc_v4, type: call, function: add, args: [1, 2]}";

/// A DEALER bound on 127.0.0.1 and a `raw_echo` child connected to it.
pub struct RawPeer {
    socket: DealerSocket,
    child: tokio::process::Child,
    /// Kept so the socket's monitor channel stays open.
    _monitor: futures_channel::mpsc::Receiver<SocketEvent>,
}

impl RawPeer {
    pub async fn start(
        program: &Path,
        msgpack: bool,
        flavour: Flavour,
        env: &[(String, String)],
    ) -> Result<RawPeer> {
        let mut socket = DealerSocket::new();
        let mut monitor = socket.monitor();
        let endpoint = socket.bind("tcp://127.0.0.1:0").await?;
        let Endpoint::Tcp(_, port) = endpoint else {
            return Err("the DEALER bound a non-TCP endpoint".into());
        };
        let mut command = tokio::process::Command::new(program);
        if msgpack {
            command.arg("--msgpack");
        }
        let mut child = command
            .env(PORT_ENV, port.to_string())
            .env(FLAVOUR_ENV, flavour.name())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", program.display()))?;
        // A DEALER cannot send before a peer is connected: wait for the monitor to say so.
        let accepted = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(event) = monitor.next().await {
                if let SocketEvent::Accepted(..) = event {
                    return true;
                }
            }
            false
        })
        .await;
        if accepted != Ok(true) {
            let _ = child.kill().await;
            return Err(format!("{} did not connect within 10 s", program.display()).into());
        }
        Ok(RawPeer {
            socket,
            child,
            _monitor: monitor,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn send(&mut self, payload: Bytes) -> Result<()> {
        let mut message = ZmqMessage::from(Bytes::new());
        message.push_back(payload);
        self.socket.send(message).await?;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Bytes> {
        let message = self.socket.recv().await?;
        let payload = message.iter().last().cloned().unwrap_or_default();
        Ok(payload)
    }

    /// Sequential round trips of the small payload.
    pub async fn sequential(&mut self, count: usize) -> Result<Vec<Duration>> {
        let payload = Bytes::from_static(SMALL_PAYLOAD);
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            self.send(payload.clone()).await?;
            let reply = self.recv().await?;
            samples.push(started.elapsed());
            check(
                reply.len() == SMALL_PAYLOAD.len(),
                "echo changed the payload",
            )?;
        }
        Ok(samples)
    }

    /// `count` small messages with `IN_FLIGHT` outstanding; messages per second.
    pub async fn pipelined(&mut self, count: usize) -> Result<f64> {
        let payload = Bytes::from_static(SMALL_PAYLOAD);
        self.window(
            count,
            |_| Ok(payload.clone()),
            |reply| {
                check(
                    reply.len() == SMALL_PAYLOAD.len(),
                    "echo changed the payload",
                )
            },
        )
        .await
    }

    /// Like `pipelined`, encoding a msgpack call per request and decoding the msgpack reply.
    pub async fn pipelined_msgpack(&mut self, count: usize) -> Result<f64> {
        self.window(
            count,
            |n| {
                let call = FloorCall {
                    app: "comlink_ipc_v4".to_owned(),
                    id: id_text(n),
                    kind: "call".to_owned(),
                    timestamp: unix_now(),
                    function: "add".to_owned(),
                    args: vec![1.into(), 2.into()],
                    namespace: "default".to_owned(),
                };
                Ok(Bytes::from(rmp_serde::to_vec_named(&call)?))
            },
            |reply| {
                let reply: FloorReply = rmp_serde::from_slice(&reply)?;
                check(
                    reply.result.as_i64() == Some(3) && reply.id.len() == 36,
                    "wrong msgpack reply",
                )
            },
        )
        .await
    }

    /// Sends `count` messages keeping `IN_FLIGHT` outstanding: the first `IN_FLIGHT` at once,
    /// then one more per reply.
    async fn window(
        &mut self,
        count: usize,
        mut make: impl FnMut(u64) -> Result<Bytes>,
        mut verify: impl FnMut(Bytes) -> Result<()>,
    ) -> Result<f64> {
        let started = Instant::now();
        let mut sent = 0usize;
        while sent < count.min(IN_FLIGHT) {
            self.send(make(sent as u64)?).await?;
            sent += 1;
        }
        for _ in 0..count {
            let reply = self.recv().await?;
            verify(reply)?;
            if sent < count {
                self.send(make(sent as u64)?).await?;
                sent += 1;
            }
        }
        Ok(count as f64 / started.elapsed().as_secs_f64())
    }

    /// Round trips of a 1 MiB payload.
    pub async fn mib(&mut self, payload: &Bytes, count: usize) -> Result<Vec<Duration>> {
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            self.send(payload.clone()).await?;
            let reply = self.recv().await?;
            samples.push(started.elapsed());
            check(reply.len() == MIB, "echo changed the 1 MiB payload")?;
        }
        Ok(samples)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A 36-character id shaped like a UUID's text, from a counter.
fn id_text(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}
