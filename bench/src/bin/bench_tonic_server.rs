//! The tonic contender's server: gRPC over HTTP/2 on 127.0.0.1 (a free port, printed on stdout
//! as `listening on port N`) with `TCP_NODELAY`, serving the hand-written
//! [`multifrost_bench::grpc::BenchServer`]. It runs on the tokio flavour the driver asks for and
//! exits when its stdin closes.

use std::io::Write;

use multifrost_bench::grpc::{self, BenchServer};
use multifrost_bench::{Flavour, LISTENING};
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

#[cfg(feature = "count-allocations")]
#[global_allocator]
static ALLOCATOR: multifrost_bench::alloc_count::Counting = multifrost_bench::alloc_count::Counting;

fn main() {
    #[cfg(feature = "count-allocations")]
    multifrost_bench::alloc_count::report_to_dir_from_env();
    multifrost_bench::exit_when_stdin_closes();
    let runtime = Flavour::from_env().runtime().expect("tokio runtime");
    if let Err(err) = runtime.block_on(serve()) {
        eprintln!("bench_tonic_server: {err}");
        std::process::exit(1);
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let incoming = TcpIncoming::bind(([127, 0, 0, 1], 0).into())?.with_nodelay(Some(true));
    let port = incoming.local_addr()?.port();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{LISTENING}{port}")?;
    stdout.flush()?;
    Server::builder()
        // Room for the driver's 1,000 concurrent calls on its one connection.
        .max_concurrent_streams(Some(4_096))
        .initial_stream_window_size(Some(grpc::STREAM_WINDOW))
        .initial_connection_window_size(Some(grpc::CONNECTION_WINDOW))
        // One service: no router needed (the service answers unknown paths itself).
        .serve_with_incoming(BenchServer, incoming)
        .await?;
    Ok(())
}
