//! The child side: serving a [`Worker`] to parents in any language.

mod output;
mod serve;
mod worker;

pub use serve::{run, ChildRunner, AUTH_TOKEN_ENV, AUTH_TOKEN_KEY, PORT_ENV};
pub use worker::{CallContext, CallError, IncomingCall, Worker};
