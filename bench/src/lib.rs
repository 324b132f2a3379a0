//! What the benchmark driver (`rpc-bench`) and its child programs share: the runtime flavour
//! they run on, the msgpack call and reply of the floor's msgpack variant, the
//! `#[multifrost::worker]` worker ([`macro_worker`]), the tarpc service ([`tarpc_service`]) and
//! the hand-written tonic service ([`grpc`]), and the CPU-time readings ([`cpu`]).

use serde::{Deserialize, Serialize};

#[cfg(feature = "count-allocations")]
pub mod alloc_count;
pub mod cpu;
pub mod grpc;
pub mod macro_worker;
pub mod tarpc_service;

/// Tells a child program which tokio runtime flavour to run on (the driver passes its own, so
/// both ends of a measurement use the same flavour).
pub const FLAVOUR_ENV: &str = "MULTIFROST_BENCH_FLAVOUR";

/// The port the floor's child connects its ROUTER to (the variable multifrost children read).
pub const PORT_ENV: &str = "COMLINK_ZMQ_PORT";

/// Where a child program built with `--features count-allocations` writes its allocation
/// count (`<dir>/<pid>`), when set.
pub const ALLOC_DIR_ENV: &str = "MULTIFROST_BENCH_ALLOC_DIR";

/// The line a TCP server child (tarpc, tonic) prints on stdout once it listens, before the
/// port: `listening on port 40123`.
pub const LISTENING: &str = "listening on port ";

/// In a TCP server child: exits once the driver goes (its end of our stdin closes), so no
/// server outlives a killed driver.
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while let Ok(n) = std::io::Read::read(&mut stdin, &mut sink) {
            if n == 0 {
                break;
            }
        }
        std::process::exit(0);
    });
}

/// A tokio runtime flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    CurrentThread,
    MultiThread,
}

impl Flavour {
    pub const ALL: [Flavour; 2] = [Flavour::CurrentThread, Flavour::MultiThread];

    pub fn name(self) -> &'static str {
        match self {
            Flavour::CurrentThread => "current-thread",
            Flavour::MultiThread => "multi-thread",
        }
    }

    pub fn parse(text: &str) -> Option<Flavour> {
        match text {
            "current-thread" | "current_thread" => Some(Flavour::CurrentThread),
            "multi-thread" | "multi_thread" => Some(Flavour::MultiThread),
            _ => None,
        }
    }

    /// A runtime of this flavour. The multi-thread one has tokio's default worker count (one
    /// per core), like `#[tokio::main]`.
    pub fn runtime(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Flavour::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Flavour::MultiThread => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build(),
        }
    }

    /// The flavour a child program was asked to run on; multi-thread (what `#[tokio::main]`
    /// gives) when the variable is unset.
    pub fn from_env() -> Flavour {
        std::env::var(FLAVOUR_ENV)
            .ok()
            .and_then(|text| Flavour::parse(&text))
            .unwrap_or(Flavour::MultiThread)
    }
}

/// The call the floor's msgpack variant sends: the keys a `comlink_ipc_v4` call carries.
#[derive(Debug, Serialize, Deserialize)]
pub struct FloorCall {
    pub app: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: f64,
    pub function: String,
    pub args: Vec<rmpv::Value>,
    pub namespace: String,
}

/// The reply the floor's msgpack variant sends back.
#[derive(Debug, Serialize, Deserialize)]
pub struct FloorReply {
    pub app: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: f64,
    pub result: rmpv::Value,
}

/// Seconds since the Unix epoch, as a message's `timestamp`.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
