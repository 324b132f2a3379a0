//! The multifrost child of the macro path: serves
//! [`multifrost_bench::macro_worker::BenchMacroWorker`] (`add`, `echo_bytes`, written with
//! `#[multifrost::worker]`) on the tokio flavour the driver asks for
//! (`MULTIFROST_BENCH_FLAVOUR`; multi-thread, like `#[tokio::main]`, when unset).

use multifrost_bench::macro_worker::BenchMacroWorker;
use multifrost_bench::Flavour;

#[cfg(feature = "count-allocations")]
#[global_allocator]
static ALLOCATOR: multifrost_bench::alloc_count::Counting = multifrost_bench::alloc_count::Counting;

fn main() {
    #[cfg(feature = "count-allocations")]
    multifrost_bench::alloc_count::report_to_dir_from_env();
    let runtime = Flavour::from_env().runtime().expect("tokio runtime");
    runtime.block_on(multifrost::run(BenchMacroWorker));
}
