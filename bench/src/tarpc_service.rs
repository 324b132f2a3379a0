//! The tarpc contender: the same two calls as the multifrost workers, as a `#[tarpc::service]`
//! over TCP with tarpc's serde transport and bincode. `bench_tarpc_server` serves it; the driver
//! uses the generated `BenchClient`.

use bytes::Bytes;
use tarpc::context::Context;
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio::net::TcpStream;

/// The service: `add(a, b)` and `echo_bytes(data)`.
#[tarpc::service]
pub trait Bench {
    /// `a + b`.
    async fn add(a: i64, b: i64) -> i64;
    /// Returns its bytes unchanged (`Bytes`, as for tonic and the macro worker: the caller
    /// passes a cheap clone, not a copy).
    async fn echo_bytes(data: Bytes) -> Bytes;
}

/// The server side: stateless, cloned per connection.
#[derive(Debug, Clone, Copy)]
pub struct BenchServer;

impl Bench for BenchServer {
    async fn add(self, _: Context, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    async fn echo_bytes(self, _: Context, data: Bytes) -> Bytes {
        data
    }
}

/// Frames larger than this are refused; room for the 1 MiB echo and its envelope.
pub const MAX_FRAME: usize = 8 << 20;

/// A tarpc serde transport over `stream`: length-delimited frames holding bincode. Both ends
/// build it the same way, after setting `TCP_NODELAY` on the stream.
pub fn transport<Item, SinkItem>(
    stream: TcpStream,
) -> tarpc::serde_transport::Transport<TcpStream, Item, SinkItem, Bincode<Item, SinkItem>>
where
    Item: for<'de> serde::Deserialize<'de>,
    SinkItem: serde::Serialize,
{
    let framing = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec();
    tarpc::serde_transport::new(Framed::new(stream, framing), Bincode::default())
}
