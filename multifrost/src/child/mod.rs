//! The child side: serving a [`Worker`] to parents in any language.
//!
//! From the top down: runner.rs starts serving in spawn or connect mode; serve.rs runs the
//! receive loop and the calls; [`rules`] decides what each message asks for; worker.rs defines
//! what a worker is; output.rs captures the process's own stdout and stderr; panic.rs finds
//! where a method panicked.

pub(crate) mod blocking;
mod describe;
mod output;
pub(crate) mod panic;
pub mod rules;
mod runner;
mod serve;
mod worker;

pub use crate::protocol::contract::{AUTH_TOKEN_ENV, AUTH_TOKEN_KEY, PORT_ENV};
pub use describe::{Description, MethodDescription, ParamDescription};
pub use runner::{run, ChildRunner};
pub use worker::{BlockingCall, CallContext, CallError, IncomingCall, Worker};
