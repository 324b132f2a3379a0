//! The `#[multifrost::worker]` and `#[multifrost::client]` attributes. Use them through the
//! `multifrost` crate, which re-exports them and holds the runtime helpers their expansions
//! call.
//!
//! An expansion goes through three steps, one file each, and each module only uses the ones
//! listed after it:
//!
//! - `model` reads the impl block (or trait) without judging it (the attribute syntax is
//!   `attr`);
//! - `validate` checks it, recording every problem in `errors`, and keeps what passed;
//! - `server` renders the child side (`impl Worker`), `client` the parent side (the typed
//!   clients and `impl Service`), `trait_client` a client trait around those clients, and
//!   `contract` the signatures a client trait declares and a worker serving it implements.
//!
//! `syntax` holds the predicates on types that all of them share.

#![warn(missing_docs)]

mod describe;
mod server;
mod trait_client;

mod client;
mod contract;

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
///   encodes what it returns. Async methods are awaited; sync methods run on multifrost's threads
///   for sync methods (a pool that grows only when calls wait behind long ones) so heartbeats
///   and other calls keep flowing, and a panic there becomes an error reply.
/// - Argument errors name the method, the argument and what arrived:
///   `add: argument 2 (b): expected i64, got str "x"`, `add: expected 2 arguments (a, b), got 3`.
///   Trailing `Option<T>` parameters may be left out by the caller. Integer parameters accept a
///   float64 holding an exact integer (Node sends large integers that way).
/// - Returns: any `Serialize` type (structs cross as maps with field names); `()` or nothing is
///   sent as nil; `Result<T, E>` (any type named `Result`) sends `T`, or an error reply. The
///   error reply is `E`'s message: a `CallError` or `multifrost::Error` as it is (a type
///   implementing `Into<CallError>` is converted by it), a `std::error::Error` followed by its
///   chain of sources (`caused by: ...`, also for `Box<dyn Error + Send + Sync>` and error types
///   dereferencing to one), any other `Display` type its text. When `E` is `Serialize`, the
///   error also travels as data, and the caller gets it back typed with
///   `multifrost::Error::remote_error::<E>()`. A panic's reply says where it happened.
/// - Byte strings: `Vec<u8>`, `Box<[u8]>`, `bytes::Bytes`, `[u8; N]` and an `Option` of one,
///   as parameters or results, cross as msgpack bin (a Python caller gets `bytes`), without
///   `serde_bytes`.
/// - `Worker::describe`: each method's wire name, parameters and their types, optional
///   parameters, return type and the first line of its doc comment, which the runtime sends
///   when asked (`multifrost describe`).
/// - `MathClient` and `MathBlockingClient` (named `{Type}Client` and
///   `{Type}BlockingClient`, always `pub`), returned by `Handle::<Math>::call()` and
///   `BlockingHandle::<Math>::call()` through the generated `impl multifrost::Service for Math`.
///   Each has one method per exposed method, with the same Rust name and the same argument
///   types taken by value, returning `multifrost::Result<T>`: `T` is the method's return type,
///   with `Result<T, E>` unwrapped to `T` (the worker's error arrives as
///   `multifrost::Error::Remote`). The async client's methods return a future that owns its
///   call (`impl Future<Output = multifrost::Result<T>> + Send + 'static`): it outlives the
///   client, and can be stored, joined, selected or spawned. Doc comments are copied.
///   `with_options(CallOptions)` sets a timeout, namespace, metadata or correlation id for the
///   calls made through it (also reachable as `handle.call_with(options)`).
///
/// # Serving a client trait
///
/// `#[multifrost::worker(serves = math_api::MathApi)]` states that the block serves a
/// [`macro@client`] trait, so that parents can depend on the trait's crate instead of the
/// worker's. The worker then implements the trait (`Math: MathApi` holds), and the compiler
/// checks its exposed methods against the trait's, matched by wire name: each argument type in
/// order, the result type (`Result<T, E>` unwrapped on both sides; asyncness, the error type
/// and a `&CallContext` parameter do not cross the wire, so they may differ), every trait
/// method exposed and no other, and the same namespace. Each drift is one error at the
/// worker's tokens: "method `add` has an incompatible type for trait: expected `i64`, found
/// `i32`", "method `multiply` is not a member of trait `MathApi`", "not all trait items
/// implemented, missing: `get_info`".
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
///   default `"default"`), `serves = path::to::ClientTrait` (see below), and
///   `crate = "path::to::multifrost"` when the crate is renamed.
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
        // Only for a block without errors: a method that failed a check is left out of the
        // expansion, and the contract would then also report it as missing.
        if let (Some(serves), true) = (&worker.serves, errors.is_empty()) {
            output.extend(contract::serves(&worker, serves));
        }
    }
    output.extend(errors.to_compile_errors());
    output
}

/// Turns a trait into a typed client for a worker in any language, without the worker's code:
/// a parent that calls a Python model, or a Rust worker whose crate it should not compile.
///
/// ```
/// use multifrost::{CallOptions, ParentWorker, Value};
/// use std::time::Duration;
///
/// #[multifrost::client(namespace = "ml")]
/// pub trait Model {
///     /// Scores one row.
///     async fn predict(&self, features: Vec<f64>) -> Vec<f64>;
///
///     /// Python callers know it as `get_info`.
///     #[multifrost(rename = "get_info")]
///     fn info(&self) -> Value;
/// }
///
/// async fn parent() -> multifrost::Result<()> {
///     let worker = ParentWorker::spawn("model.py");
///     let handle = worker.handle_for::<dyn Model>();
///     handle.start().await?;
///     let scores: Vec<f64> = handle.call().predict(vec![1.0, 2.0]).await?;
///     let quick = CallOptions::new().timeout(Duration::from_secs(1));
///     let info: Value = handle.call_with(quick).info().await?;
///     // The futures own their call (`Send + 'static`): store, join, select or spawn them.
///     let later = handle.call().predict(vec![3.0]);
///     let more: Vec<f64> = later.await?;
///     # let _ = (scores, info, more);
///     Ok(())
/// }
///
/// // Without an async runtime:
/// fn blocking_parent() -> multifrost::Result<Vec<f64>> {
///     let handle = ParentWorker::spawn("model.py").handle_blocking_for::<dyn Model>();
///     handle.start()?;
///     handle.call().predict(vec![1.0])
/// }
/// # let _ = (parent, blocking_parent);
/// ```
///
/// # What it generates
///
/// - `ModelClient` and `ModelBlockingClient` (with the trait's visibility), returned by
///   `Handle::<dyn Model>::call()` and `BlockingHandle::<dyn Model>::call()` through
///   `impl multifrost::Service for dyn Model`: exactly what `#[multifrost::worker]` generates for
///   an impl block. Each client method has the trait method's name and argument types, and
///   returns `multifrost::Result<T>`; the async client's return a future that owns its call
///   (`Send + 'static`). `fn` and `async fn` mean the same: how the worker runs a method does
///   not change how it is called. A `Result<T, E>` return is `T`, like a worker's.
/// - The trait itself, with its methods replaced by hidden contract signatures (one per wire
///   name, with no receiver), so that `dyn Model` is a type. A Rust worker states that it
///   serves the trait with `#[multifrost::worker(serves = path::to::Model)]`: it then
///   implements the trait, and the compiler checks its exposed methods against the trait's
///   methods by wire name: argument types and their order, the result type (after unwrapping
///   `Result`), every method present and none extra, and the namespace.
///
/// # Attributes
///
/// `namespace = "name"` (the calls' namespace unless their options name another) and
/// `crate = "path::to::multifrost"` on the trait; `#[multifrost(rename = "wireName")]` on a
/// method.
///
/// # Compile errors
///
/// One error each, at the offending tokens: a generic, `unsafe` or `auto` trait, supertraits,
/// items other than methods, default bodies, methods without `&self` (or with another
/// receiver), generic methods, patterns in arguments, reference or `impl Trait` types, `Self`
/// in a type, a `&CallContext` parameter (the context is the worker's side), attributes other
/// than doc comments and `rename`, client API names (`with_options`, ...), and wire names that
/// are empty, start with `_` or are taken twice.
#[proc_macro_attribute]
pub fn client(args: TokenStream, input: TokenStream) -> TokenStream {
    expand_client(args.into(), input.into()).into()
}

/// Read, validate, expand, as for `worker`. When the trait itself is unusable it is emitted as
/// written (minus the helper attributes), with the errors.
fn expand_client(
    args: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let item = match syn::parse2::<syn::Item>(input.clone()) {
        Ok(syn::Item::Trait(item)) => item,
        Ok(other) => {
            let error = syn::Error::new_spanned(
                &other,
                "#[multifrost::client] goes on a trait: \
                    `trait Math { async fn add(&self, a: i64, b: i64) -> i64; }`",
            );
            return [error.to_compile_error(), input].into_iter().collect();
        }
        Err(error) => return [error.to_compile_error(), input].into_iter().collect(),
    };
    let block = model::TraitBlock::read(item, args);
    let mut errors = errors::Errors::default();
    let fallback = block.item.clone();
    let mut output = match validate::check_client_trait(block, &mut errors) {
        Some((item, client)) => trait_client::expand(&item, &client),
        None => fallback.into_token_stream(),
    };
    output.extend(errors.to_compile_errors());
    output
}
