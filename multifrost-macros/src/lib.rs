//! The `#[multifrost::worker]` attribute. Use it through the `multifrost` crate, which
//! re-exports it and holds the runtime helpers its expansion calls.
//!
//! An expansion goes through three steps, one file each, and each module only uses the ones
//! listed after it:
//!
//! - `model` reads the impl block without judging it (the attribute syntax is `attr`);
//! - `validate` checks it, recording every problem in `errors`, and keeps what passed;
//! - `server` renders the child side (`impl Worker`), `client` the parent side (the typed
//!   clients and `impl Service`).
//!
//! `syntax` holds the predicates on types that all of them share.

mod client;
mod describe;
mod server;

mod validate;

mod model;

mod attr;
mod errors;
mod syntax;

use proc_macro::TokenStream;
use quote::ToTokens;

/// Turns an inherent impl block into a worker that parents in any language can call, and a
/// typed client for Rust parents.
///
/// ```
/// use multifrost::{CallContext, ParentWorker, Worker};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// pub struct Point { x: f64, y: f64 }
///
/// pub struct Math;
///
/// #[multifrost::worker(namespace = "math")]
/// impl Math {
///     /// Adds two integers.
///     pub async fn add(&self, a: i64, b: i64) -> i64 {
///         a + b
///     }
///
///     /// Sync methods run on the blocking pool, so the worker keeps answering meanwhile.
///     pub fn factorial(&self, n: u32) -> Result<u64, String> {
///         (1..=u64::from(n)).try_fold(1u64, |acc, k| acc.checked_mul(k)).ok_or_else(|| format!("{n}! overflows u64"))
///     }
///
///     /// `scale` is a trailing `Option`: callers may leave it out.
///     pub async fn scale(&self, p: Point, factor: Option<f64>) -> Point {
///         let factor = factor.unwrap_or(1.0);
///         Point { x: p.x * factor, y: p.y * factor }
///     }
///
///     /// Reads per-call metadata; the context is not one of the arguments.
///     pub fn whoami(&self, ctx: &CallContext) -> Option<String> {
///         ctx.client_name.clone()
///     }
///
///     /// Node callers know it as `lastIndexOf`.
///     #[multifrost(rename = "lastIndexOf")]
///     pub fn last_index_of(&self, items: Vec<String>, item: String) -> Option<usize> {
///         items.iter().rposition(|candidate| *candidate == item)
///     }
///
///     fn helper(&self) {} // not `pub`: not exposed
/// }
///
/// // The child serves it: `multifrost::run(Math).await`.
/// assert_eq!(Math.list_functions(), ["add", "factorial", "scale", "whoami", "lastIndexOf"]);
///
/// // The parent calls it through the typed client, `MathClient`, checked at compile time.
/// async fn parent() -> multifrost::Result<()> {
///     let worker = ParentWorker::spawn("target/release/math-worker");
///     let handle = worker.handle_for::<Math>();
///     handle.start().await?;
///     let sum: i64 = handle.call().add(1, 2).await?;
///     let point = handle.call().scale(Point { x: 1.0, y: 2.0 }, None).await?;
///     let index = handle.call().last_index_of(vec!["a".into()], "a".into()).await?;
///     handle.stop().await;
///     # let _ = (sum, point, index);
///     Ok(())
/// }
/// ```
///
/// # What it exposes
///
/// Every `pub` method whose receiver is `&self`, except names starting with `_` and methods
/// marked `#[multifrost(skip)]`. Methods that are not `pub` (including `pub(crate)`) and
/// associated functions without `self` stay ordinary Rust and are not callable remotely.
///
/// # What it generates
///
/// - `impl multifrost::Worker for Math`: `list_functions` returns exactly the exposed names;
///   `dispatch` decodes each positional argument into its declared type, calls the method and
///   encodes what it returns. Async methods are awaited; sync methods run on tokio's blocking pool
///   so heartbeats and other calls keep flowing, and a panic there becomes an error reply.
/// - Argument errors name the method, the argument and what arrived:
///   `add: argument 2 (b): expected i64, got str "x"`, `add: expected 2 arguments (a, b), got 3`.
///   Trailing `Option<T>` parameters may be left out by the caller. Integer parameters accept a
///   float64 holding an exact integer (Node sends large integers that way).
/// - Returns: any `Serialize` type (structs cross as maps with field names); `()` or nothing is
///   sent as nil; `Result<T, E>` (any type named `Result`) sends `T`, or an error reply. The
///   error reply is `E`'s message: a `CallError` or `multifrost::Error` as it is (a type
///   implementing `Into<CallError>` is converted by it), a `std::error::Error` followed by its
///   chain of sources (`caused by: ...`, also for `Box<dyn Error + Send + Sync>` and error types
///   dereferencing to one), any other `Display` type its text.
/// - `MathClient<'a>` and `MathBlockingClient<'a>` (named `{Type}Client` and
///   `{Type}BlockingClient`, always `pub`), returned by `Handle::<Math>::call()` and
///   `BlockingHandle::<Math>::call()` through the generated `impl multifrost::Service for Math`.
///   Each has one method per exposed method, with the same Rust name and the same argument
///   types taken by value, returning `multifrost::Result<T>`: `T` is the method's return type,
///   with `Result<T, E>` unwrapped to `T` (the worker's error arrives as
///   `multifrost::Error::Remote`). Doc comments are copied. `with_options(CallOptions)` sets a
///   timeout, namespace, metadata or correlation id for the calls made through it (also
///   reachable as `handle.call_with(options)`).
///
/// # The call context
///
/// A parameter of type `&CallContext` (or `&multifrost::CallContext`), in any position, is
/// filled from the call: id, namespace, `client_name`, metadata, correlation id and deadline.
/// It is not one of the positional arguments and does not appear in the client's signature.
///
/// # Attributes
///
/// - On the block: `namespace = "name"` (calls for another namespace get an error reply;
///   default `"default"`), and `crate = "path::to::multifrost"` when the crate is renamed.
/// - On a method: `#[multifrost(rename = "wireName")]` exposes it under another name (e.g.
///   camelCase for Node callers); `#[multifrost(skip)]` keeps a `pub` method out.
///
/// # Compile errors
///
/// Each unsupported form gets one error pointing at the offending tokens, saying why and what to
/// do instead: a generic impl block or trait impl; on an exposed method, generics, `self` by
/// value, `&mut self` (a worker is shared by concurrent calls: use interior mutability),
/// patterns in arguments, `impl Trait` or reference argument types (take `String`, not
/// `&str`), reference return types, more than one context parameter;
/// Rust names the clients already use (`with_options`, `options`, `new`, `caller`) or the
/// `Worker` trait does (`list_functions`, `dispatch`, `namespace`): rename the method and keep
/// the wire name with `rename`; two methods exposed under one name; a wire name starting with
/// `_`; `rename` on a method that is not exposed. The rest of the block still expands, so these
/// are the only errors reported.
///
/// A return type that is not `Serialize`, or an argument type that is not `Deserialize`, is
/// reported at that type in the signature. Calling a method that is not exposed through a
/// client (`handle.call().helper()`, where `helper` takes `&self` but is not `pub`) says why it
/// is not exposed, instead of "no method named `helper`".
#[proc_macro_attribute]
pub fn worker(args: TokenStream, input: TokenStream) -> TokenStream {
    expand(args.into(), input.into()).into()
}

/// Read, validate, expand. On an error the block is still emitted as written (minus the helper
/// attributes), so a mistake in the attribute never hides the methods from the rest of the
/// crate, and the methods that passed still expand, so the user sees only the errors.
fn expand(
    args: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let mut item = match syn::parse2::<syn::Item>(input.clone()) {
        Ok(syn::Item::Impl(item)) => item,
        Ok(other) => {
            let error = syn::Error::new_spanned(
                &other,
                "#[multifrost::worker] goes on an inherent impl block: \
                 `impl Math { pub async fn add(&self, a: i64, b: i64) -> i64 { a + b } }`",
            );
            return [error.to_compile_error(), input].into_iter().collect();
        }
        Err(error) => return [error.to_compile_error(), input].into_iter().collect(),
    };
    let block = model::Block::read(&mut item, args);
    let mut errors = errors::Errors::default();
    let worker = validate::check(block, &mut errors);
    let mut output = item.into_token_stream();
    if let Some(worker) = worker {
        output.extend(server::expand(&worker));
        output.extend(client::expand(&worker));
    }
    output.extend(errors.to_compile_errors());
    output
}
