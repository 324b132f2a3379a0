//! The floor's child: a raw ZeroMQ ROUTER, with the frame layout of PROTOCOL.md section 1, that
//! connects to `tcp://127.0.0.1:$COMLINK_ZMQ_PORT` and sends every message back unchanged
//! (`[routing id, empty, payload]` in and out).
//!
//! With `--msgpack` it decodes each payload as a msgpack call map and answers with an encoded
//! reply map `{app, id, type, timestamp, result}` instead: the least any msgpack RPC does per
//! call, without multifrost's runtime.

use bytes::Bytes;
use futures_util::StreamExt;
use multifrost_bench::{unix_now, Flavour, FloorCall, FloorReply, PORT_ENV};
use zeromq::prelude::{Socket, SocketRecv, SocketSend};
use zeromq::{RouterSocket, SocketEvent, ZmqMessage};

#[cfg(feature = "count-allocations")]
#[global_allocator]
static ALLOCATOR: multifrost_bench::alloc_count::Counting = multifrost_bench::alloc_count::Counting;

fn main() {
    #[cfg(feature = "count-allocations")]
    multifrost_bench::alloc_count::report_to_dir_from_env();
    let msgpack = std::env::args().skip(1).any(|arg| arg == "--msgpack");
    let port = match std::env::var(PORT_ENV)
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    {
        Some(port) => port,
        None => {
            eprintln!("raw_echo: {PORT_ENV} must hold the parent's port");
            std::process::exit(1);
        }
    };
    let runtime = Flavour::from_env().runtime().expect("tokio runtime");
    if let Err(err) = runtime.block_on(serve(port, msgpack)) {
        eprintln!("raw_echo: {err}");
        std::process::exit(1);
    }
}

async fn serve(port: u16, msgpack: bool) -> Result<(), Box<dyn std::error::Error>> {
    let mut socket = RouterSocket::new();
    let mut monitor = socket.monitor();
    socket.connect(&format!("tcp://127.0.0.1:{port}")).await?;
    // The parent is the only peer: exit once it goes (recv may not notice on its own).
    tokio::spawn(async move {
        while let Some(event) = monitor.next().await {
            if let SocketEvent::Disconnected(_) = event {
                std::process::exit(0);
            }
        }
    });
    loop {
        let message = socket.recv().await?;
        let reply = if msgpack { answer(message)? } else { message };
        socket.send(reply).await?;
    }
}

/// Decodes the call in the last frame and replaces it with an encoded reply.
fn answer(message: ZmqMessage) -> Result<ZmqMessage, Box<dyn std::error::Error>> {
    let mut frames = message.into_vec();
    let payload = frames.pop().ok_or("empty message")?;
    let call: FloorCall = rmp_serde::from_slice(&payload)?;
    let result = match (call.function.as_str(), call.args.as_slice()) {
        ("add", [a, b]) => rmpv::Value::from(a.as_i64().unwrap_or(0) + b.as_i64().unwrap_or(0)),
        (_, [first, ..]) => first.clone(),
        _ => rmpv::Value::Nil,
    };
    let reply = FloorReply {
        app: call.app,
        id: call.id,
        kind: "response".to_owned(),
        timestamp: unix_now(),
        result,
    };
    frames.push(Bytes::from(rmp_serde::to_vec_named(&reply)?));
    let mut frames = frames.into_iter();
    let mut out = ZmqMessage::from(frames.next().ok_or("no routing id")?);
    for frame in frames {
        out.push_back(frame);
    }
    Ok(out)
}
