//! The tarpc contender's server: listens on 127.0.0.1 (a free port, printed on stdout as
//! `listening on port N`), sets `TCP_NODELAY` on every connection, and serves
//! [`multifrost_bench::tarpc_service::Bench`] with every request on a task of its own. It runs on
//! the tokio flavour the driver asks for and exits when its stdin closes.

use std::io::Write;

use futures_util::StreamExt;
use multifrost_bench::tarpc_service::{self, Bench, BenchServer};
use multifrost_bench::{Flavour, LISTENING};
use tarpc::server::{BaseChannel, Channel};
use tokio::net::TcpListener;

#[cfg(feature = "count-allocations")]
#[global_allocator]
static ALLOCATOR: multifrost_bench::alloc_count::Counting = multifrost_bench::alloc_count::Counting;

fn main() {
    #[cfg(feature = "count-allocations")]
    multifrost_bench::alloc_count::report_to_dir_from_env();
    multifrost_bench::exit_when_stdin_closes();
    let runtime = Flavour::from_env().runtime().expect("tokio runtime");
    if let Err(err) = runtime.block_on(serve()) {
        eprintln!("bench_tarpc_server: {err}");
        std::process::exit(1);
    }
}

async fn serve() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{LISTENING}{port}")?;
    stdout.flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let channel = BaseChannel::with_defaults(tarpc_service::transport(stream));
        tokio::spawn(
            channel
                .execute(BenchServer.serve())
                .for_each(|response| async move {
                    tokio::spawn(response);
                }),
        );
    }
}
