//! The tonic contender, written without protoc: the protobuf messages derive `prost::Message`
//! by hand, and the service's client and server are what tonic's code generator would emit,
//! reduced to the two unary methods `Add` and `EchoBytes`.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// The service's full name, as gRPC routes it.
pub const SERVICE: &str = "multifrost.bench.Bench";
const ADD_PATH: &str = "/multifrost.bench.Bench/Add";
const ECHO_BYTES_PATH: &str = "/multifrost.bench.Bench/EchoBytes";

/// HTTP/2 flow-control windows for both ends. The defaults (64 KiB) make a 1 MiB message wait
/// for about sixteen window updates; a deployment that moves megabyte messages raises them.
pub const STREAM_WINDOW: u32 = 2 << 20;
pub const CONNECTION_WINDOW: u32 = 8 << 20;

/// `message AddRequest { int64 a = 1; int64 b = 2; }`
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct AddRequest {
    #[prost(int64, tag = "1")]
    pub a: i64,
    #[prost(int64, tag = "2")]
    pub b: i64,
}

/// `message AddReply { int64 sum = 1; }`
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct AddReply {
    #[prost(int64, tag = "1")]
    pub sum: i64,
}

/// `message Blob { bytes data = 1; }`, the echo's request and reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Blob {
    #[prost(bytes = "bytes", tag = "1")]
    pub data: bytes::Bytes,
}

/// The client: cheap to clone (every clone shares the channel and its HTTP/2 connection).
#[derive(Debug, Clone)]
pub struct BenchClient {
    inner: tonic::client::Grpc<Channel>,
}

impl BenchClient {
    pub fn new(channel: Channel) -> BenchClient {
        BenchClient {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    /// `Add(a, b)`.
    pub async fn add(&mut self, a: i64, b: i64) -> Result<i64, Status> {
        let reply: Response<AddReply> = self
            .unary(
                AddRequest { a, b },
                http::uri::PathAndQuery::from_static(ADD_PATH),
            )
            .await?;
        Ok(reply.into_inner().sum)
    }

    /// `EchoBytes(data)`.
    pub async fn echo_bytes(&mut self, data: bytes::Bytes) -> Result<bytes::Bytes, Status> {
        let reply: Response<Blob> = self
            .unary(
                Blob { data },
                http::uri::PathAndQuery::from_static(ECHO_BYTES_PATH),
            )
            .await?;
        Ok(reply.into_inner().data)
    }

    async fn unary<M1, M2>(
        &mut self,
        message: M1,
        path: http::uri::PathAndQuery,
    ) -> Result<Response<M2>, Status>
    where
        M1: prost::Message + Send + Sync + 'static,
        M2: prost::Message + Default + Send + Sync + 'static,
    {
        self.inner
            .ready()
            .await
            .map_err(|err| Status::unknown(format!("the channel is not ready: {err}")))?;
        self.inner
            .unary(Request::new(message), path, ProstCodec::default())
            .await
    }
}

/// The server: routes the two paths to their handlers, answers anything else `Unimplemented`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BenchServer;

impl tonic::server::NamedService for BenchServer {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for BenchServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match request.uri().path() {
            ADD_PATH => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(AddHandler, request).await)
            }),
            ECHO_BYTES_PATH => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(EchoBytesHandler, request).await)
            }),
            other => {
                let status = Status::unimplemented(format!("{SERVICE}: no method at {other}"));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

struct AddHandler;

impl tonic::server::UnaryService<AddRequest> for AddHandler {
    type Response = AddReply;
    type Future = BoxFuture<Response<AddReply>, Status>;

    fn call(&mut self, request: Request<AddRequest>) -> Self::Future {
        let AddRequest { a, b } = request.into_inner();
        Box::pin(async move {
            Ok(Response::new(AddReply {
                sum: a.wrapping_add(b),
            }))
        })
    }
}

struct EchoBytesHandler;

impl tonic::server::UnaryService<Blob> for EchoBytesHandler {
    type Response = Blob;
    type Future = BoxFuture<Response<Blob>, Status>;

    fn call(&mut self, request: Request<Blob>) -> Self::Future {
        let blob = request.into_inner();
        Box::pin(async move { Ok(Response::new(blob)) })
    }
}
