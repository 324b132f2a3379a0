//! The child side `#[multifrost::worker]` generates, exercised in process: calls built by hand
//! go straight to `Worker::dispatch`, the layer below the sockets.

// Generated code must not warn in the user's crate.
#![deny(warnings)]

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration;

use multifrost::{CallContext, CallError, EncodedValue, IncomingCall, Worker};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    x: f64,
    y: f64,
}

/// An error with a source, to check that the chain reaches the caller.
#[derive(Debug)]
pub struct ParseError {
    input: String,
    source: std::num::ParseIntError,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot parse {:?}", self.input)
    }
}

impl StdError for ParseError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

#[derive(Default)]
pub struct Math;

#[multifrost::worker]
impl Math {
    pub async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    pub fn factorial(&self, n: u32) -> u64 {
        (1..=u64::from(n)).product()
    }

    pub async fn scale(&self, p: Point, factor: Option<f64>) -> Point {
        let factor = factor.unwrap_or(1.0);
        Point {
            x: p.x * factor,
            y: p.y * factor,
        }
    }

    pub fn parse(&self, text: String) -> Result<i64, ParseError> {
        text.parse().map_err(|source| ParseError {
            input: text,
            source,
        })
    }

    pub fn fail_with_text(&self, message: String) -> Result<(), String> {
        Err(message)
    }

    pub fn fail_with_call_error(&self) -> Result<(), CallError> {
        Err(CallError::new("exact text"))
    }

    pub fn fail_with_boxed_error(
        &self,
        text: String,
    ) -> Result<i64, Box<dyn StdError + Send + Sync>> {
        let parsed = text.parse().map_err(|source| ParseError {
            input: text,
            source,
        })?;
        Ok(parsed)
    }

    pub async fn fail_with_framework_error(&self) -> multifrost::Result<()> {
        Err(multifrost::Error::Config("no such thing".into()))
    }

    pub fn nothing(&self) {}

    pub fn sync_thread(&self) -> String {
        thread_name(std::thread::current().id())
    }

    pub async fn async_thread(&self) -> String {
        thread_name(std::thread::current().id())
    }

    pub fn sleep_ms(&self, millis: u64) {
        std::thread::sleep(Duration::from_millis(millis));
    }

    pub fn panics(&self) -> i64 {
        panic!("boom")
    }

    pub async fn token(&self, ctx: &CallContext, key: String) -> Option<String> {
        ctx.metadata_str(&key).map(str::to_owned)
    }

    pub fn tagged(&self, prefix: String, ctx: &multifrost::CallContext, suffix: String) -> String {
        format!(
            "{prefix}{}{suffix}",
            ctx.client_name.as_deref().unwrap_or("?")
        )
    }

    #[multifrost(rename = "lastIndexOf")]
    pub fn last_index_of(&self, items: Vec<String>, item: String) -> Option<usize> {
        items.iter().rposition(|candidate| *candidate == item)
    }

    #[multifrost(skip)]
    pub fn skipped(&self) {}

    pub fn _underscored(&self) {}

    #[allow(dead_code)]
    fn helper(&self) {}

    pub fn new() -> Math {
        Math
    }
}

fn thread_name(id: ThreadId) -> String {
    format!("{id:?}")
}

fn value<T: Serialize>(value: T) -> EncodedValue {
    EncodedValue::encode(&value).unwrap()
}

fn call(function: &str, args: Vec<EncodedValue>) -> IncomingCall {
    IncomingCall {
        function: function.to_owned(),
        args,
        context: CallContext::default(),
    }
}

async fn dispatch(function: &str, args: Vec<EncodedValue>) -> Result<EncodedValue, CallError> {
    Arc::new(Math::new()).dispatch(call(function, args)).await
}

async fn dispatch_ok<T: serde::de::DeserializeOwned>(function: &str, args: Vec<EncodedValue>) -> T {
    dispatch(function, args).await.unwrap().decode().unwrap()
}

async fn dispatch_err(function: &str, args: Vec<EncodedValue>) -> String {
    dispatch(function, args)
        .await
        .unwrap_err()
        .message()
        .to_owned()
}

#[test]
fn a_sync_method_is_a_job_that_answers_like_dispatch_and_an_async_one_is_not() {
    let job = Math
        .dispatch_blocking("factorial")
        .unwrap_or_else(|| panic!("factorial is a sync method: it has a job"));
    assert_eq!(job.function, "factorial");
    let five = call("factorial", vec![value(5)]);
    assert_eq!(
        (job.run)(&Math, &five).unwrap().decode::<u64>().unwrap(),
        120
    );
    let wrong = call("factorial", vec![value("five")]);
    assert_eq!(
        (job.run)(&Math, &wrong).unwrap_err().message(),
        r#"factorial: argument 1 (n): expected u32, got str "five""#
    );
    assert!(
        Math.dispatch_blocking("add").is_none(),
        "add is an async method: it goes to dispatch"
    );
    assert!(
        Math.dispatch_blocking("nope").is_none(),
        "an unknown function goes to dispatch"
    );
}

#[tokio::test]
async fn async_method_returns_its_result() {
    assert_eq!(dispatch_ok::<i64>("add", vec![value(1), value(2)]).await, 3);
}

#[tokio::test]
async fn sync_method_returns_its_result() {
    assert_eq!(
        dispatch_ok::<u64>("factorial", vec![value(10)]).await,
        3_628_800
    );
}

#[tokio::test]
async fn struct_argument_and_result_cross_as_maps() {
    let point = Point { x: 1.0, y: 2.0 };
    let encoded = dispatch("scale", vec![value(&point), value(3.0)])
        .await
        .unwrap();
    let map = encoded.to_value();
    assert_eq!(map["x"].as_f64(), Some(3.0));
    assert_eq!(map["y"].as_f64(), Some(6.0));
}

#[tokio::test]
async fn trailing_option_argument_may_be_omitted() {
    let point = Point { x: 1.0, y: 2.0 };
    assert_eq!(
        dispatch_ok::<Point>("scale", vec![value(&point)]).await,
        point
    );
}

#[tokio::test]
async fn trailing_option_argument_accepts_nil() {
    let point = Point { x: 1.0, y: 2.0 };
    let args = vec![value(&point), EncodedValue::nil()];
    assert_eq!(dispatch_ok::<Point>("scale", args).await, point);
}

#[tokio::test]
async fn unit_return_is_sent_as_nil() {
    assert!(dispatch("nothing", vec![]).await.unwrap().is_nil());
}

#[tokio::test]
async fn wrong_argument_type_names_function_position_argument_and_types() {
    let message = dispatch_err("add", vec![value(1), value("x")]).await;
    assert_eq!(message, r#"add: argument 2 (b): expected i64, got str "x""#);
}

#[tokio::test]
async fn wrong_optional_argument_type_is_an_error() {
    let args = vec![value(Point { x: 1.0, y: 2.0 }), value("big")];
    let message = dispatch_err("scale", args).await;
    assert_eq!(
        message,
        r#"scale: argument 2 (factor): expected Option<f64>, got str "big""#
    );
}

#[tokio::test]
async fn too_many_arguments_is_an_arity_error() {
    let message = dispatch_err("add", vec![value(1), value(2), value(3)]).await;
    assert_eq!(message, "add: expected 2 arguments (a, b), got 3");
}

#[tokio::test]
async fn too_few_arguments_is_an_arity_error() {
    let message = dispatch_err("add", vec![value(1)]).await;
    assert_eq!(message, "add: expected 2 arguments (a, b), got 1");
}

#[tokio::test]
async fn arity_error_mentions_the_optional_range() {
    let message = dispatch_err("scale", vec![]).await;
    assert_eq!(
        message,
        "scale: expected 1 to 2 arguments (p, factor), got 0"
    );
}

#[tokio::test]
async fn arguments_to_a_method_without_parameters_are_an_error() {
    let message = dispatch_err("nothing", vec![value(1)]).await;
    assert_eq!(message, "nothing: expected no arguments, got 1");
}

#[tokio::test]
async fn integer_parameter_accepts_an_integral_float() {
    assert_eq!(
        dispatch_ok::<i64>("add", vec![value(1.0), value(2.0)]).await,
        3
    );
}

#[tokio::test]
async fn integer_parameter_rejects_a_fractional_float() {
    let message = dispatch_err("add", vec![value(1.5), value(2)]).await;
    assert_eq!(message, "add: argument 1 (a): expected i64, got float 1.5");
}

#[tokio::test]
async fn std_error_is_sent_with_its_source_chain() {
    let message = dispatch_err("parse", vec![value("seven")]).await;
    assert_eq!(
        message,
        "cannot parse \"seven\"\ncaused by: invalid digit found in string"
    );
}

#[tokio::test]
async fn display_error_is_sent_as_its_text() {
    let message = dispatch_err("fail_with_text", vec![value("it broke")]).await;
    assert_eq!(message, "it broke");
}

#[tokio::test]
async fn call_error_is_sent_unchanged() {
    assert_eq!(
        dispatch_err("fail_with_call_error", vec![]).await,
        "exact text"
    );
}

#[tokio::test]
async fn boxed_error_is_sent_with_its_source_chain() {
    let message = dispatch_err("fail_with_boxed_error", vec![value("x")]).await;
    assert_eq!(
        message,
        "cannot parse \"x\"\ncaused by: invalid digit found in string"
    );
}

#[tokio::test]
async fn framework_error_is_sent_with_its_message() {
    let message = dispatch_err("fail_with_framework_error", vec![]).await;
    assert_eq!(message, "invalid configuration: no such thing");
}

#[tokio::test]
async fn sync_method_runs_on_a_blocking_thread() {
    let here = thread_name(std::thread::current().id());
    assert_ne!(dispatch_ok::<String>("sync_thread", vec![]).await, here);
}

#[tokio::test]
async fn async_method_runs_on_the_calling_task() {
    let here = thread_name(std::thread::current().id());
    assert_eq!(dispatch_ok::<String>("async_thread", vec![]).await, here);
}

#[tokio::test]
async fn sync_method_does_not_block_the_runtime() {
    // A current-thread runtime: a sync method run inline would stop everything else.
    let worker = Arc::new(Math);
    let slow = tokio::spawn(worker.clone().dispatch(call("sleep_ms", vec![value(500)])));
    let quick = tokio::time::timeout(
        Duration::from_millis(250),
        worker.dispatch(call("add", vec![value(1), value(2)])),
    )
    .await;
    assert!(quick.is_ok(), "a call waited for a running sync method");
    assert!(!slow.is_finished());
    slow.await.unwrap().unwrap();
}

#[tokio::test]
async fn panic_in_sync_method_becomes_an_error_naming_it() {
    assert_eq!(
        dispatch_err("panics", vec![]).await,
        "panics: panicked: boom"
    );
}

#[tokio::test]
async fn panic_in_sync_method_says_where_it_happened() {
    let error = dispatch("panics", vec![]).await.unwrap_err();
    let traceback = error.traceback().expect("a traceback");
    assert!(
        traceback.starts_with("  at multifrost/tests/macro_dispatch.rs:"),
        "{traceback}"
    );
    assert_eq!(
        error.reply_text(),
        format!("panics: panicked: boom\n{traceback}")
    );
}

#[tokio::test]
async fn context_parameter_in_first_position_reads_metadata() {
    let mut incoming = call("token", vec![value("auth_token")]);
    incoming.context = incoming
        .context
        .with_metadata(vec![("auth_token".into(), "secret".into())]);
    let result = Arc::new(Math).dispatch(incoming).await.unwrap();
    assert_eq!(
        result.decode::<Option<String>>().unwrap().as_deref(),
        Some("secret")
    );
}

#[tokio::test]
async fn context_parameter_in_middle_position_is_not_an_argument() {
    let mut incoming = call("tagged", vec![value("<"), value(">")]);
    incoming.context.client_name = Some("node".into());
    let result = Arc::new(Math).dispatch(incoming).await.unwrap();
    assert_eq!(result.decode::<String>().unwrap(), "<node>");
}

#[tokio::test]
async fn context_parameter_is_not_counted_in_arity_errors() {
    let message = dispatch_err("tagged", vec![value("<")]).await;
    assert_eq!(
        message,
        "tagged: expected 2 arguments (prefix, suffix), got 1"
    );
}

#[tokio::test]
async fn renamed_method_is_called_by_its_wire_name() {
    let items = vec!["a".to_owned(), "b".to_owned(), "a".to_owned()];
    let index = dispatch_ok::<Option<usize>>("lastIndexOf", vec![value(items), value("a")]).await;
    assert_eq!(index, Some(2));
}

#[tokio::test]
async fn renamed_method_is_not_reachable_by_its_rust_name() {
    let message = dispatch_err(
        "last_index_of",
        vec![value(Vec::<String>::new()), value("a")],
    )
    .await;
    assert_eq!(message, "Function 'last_index_of' not found");
}

#[tokio::test]
async fn argument_errors_use_the_wire_name() {
    let message = dispatch_err("lastIndexOf", vec![value(1), value("a")]).await;
    assert_eq!(
        message,
        "lastIndexOf: argument 1 (items): expected Vec<String>, got int 1"
    );
}

#[test]
fn list_functions_is_exactly_the_exposed_methods() {
    let expected = [
        "add",
        "factorial",
        "scale",
        "parse",
        "fail_with_text",
        "fail_with_call_error",
        "fail_with_boxed_error",
        "fail_with_framework_error",
        "nothing",
        "sync_thread",
        "async_thread",
        "sleep_ms",
        "panics",
        "token",
        "tagged",
        "lastIndexOf",
    ];
    assert_eq!(Math.list_functions(), expected);
}

#[test]
fn namespace_defaults_to_default() {
    assert_eq!(Math.namespace(), "default");
}

pub struct Named;

#[multifrost::worker(namespace = "geometry")]
impl Named {
    pub fn ping(&self) -> String {
        "pong".into()
    }
}

#[test]
fn namespace_attribute_sets_the_worker_namespace() {
    assert_eq!(Named.namespace(), "geometry");
}

#[tokio::test]
async fn struct_argument_error_says_what_is_wrong_inside() {
    let mut only_x = std::collections::BTreeMap::new();
    only_x.insert("x", 1.0);
    let message = dispatch_err("scale", vec![value(only_x)]).await;
    assert_eq!(
        message,
        "scale: argument 1 (p): expected Point, got map of 1 entries (missing field `y`)"
    );
}

/// An error a caller can match on: `Serialize`, so it also travels as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum BankError {
    #[error("insufficient funds: {available} available, {requested} requested")]
    InsufficientFunds { available: u64, requested: u64 },
    #[error("account is frozen")]
    Frozen,
}

/// `Serialize`, but with integer map keys, which the Python implementation cannot read.
#[derive(Debug, Serialize, thiserror::Error)]
#[error("several accounts failed")]
pub struct ByAccount(std::collections::BTreeMap<u32, String>);

pub struct Bank;

#[multifrost::worker]
impl Bank {
    pub fn withdraw(&self, amount: u64) -> Result<u64, BankError> {
        match amount {
            0 => Err(BankError::Frozen),
            1..=100 => Ok(100 - amount),
            requested => Err(BankError::InsufficientFunds {
                available: 100,
                requested,
            }),
        }
    }

    pub async fn withdraw_async(&self, amount: u64) -> Result<u64, BankError> {
        self.withdraw(amount)
    }

    pub fn fail_by_account(&self) -> Result<(), ByAccount> {
        Err(ByAccount([(7, "closed".to_owned())].into()))
    }

    pub fn fail_not_serializable(&self, text: String) -> Result<(), ParseError> {
        Err(ParseError {
            source: text.parse::<i64>().unwrap_err(),
            input: text,
        })
    }
}

async fn bank_error(function: &str, args: Vec<EncodedValue>) -> CallError {
    Arc::new(Bank)
        .dispatch(call(function, args))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn serializable_error_is_sent_as_data_beside_its_unchanged_text() {
    let error = bank_error("withdraw", vec![value(500)]).await;
    assert_eq!(
        error.message(),
        "insufficient funds: 100 available, 500 requested"
    );
    let data = error.data().expect("error data");
    assert_eq!(
        data.decode::<BankError>().unwrap(),
        BankError::InsufficientFunds {
            available: 100,
            requested: 500
        }
    );
    // Structs and variants with fields cross as maps with field names, like any value.
    assert_eq!(
        data.to_value()["InsufficientFunds"]["requested"].as_u64(),
        Some(500)
    );
}

#[tokio::test]
async fn serializable_error_of_an_async_method_is_sent_as_data() {
    let error = bank_error("withdraw_async", vec![value(0)]).await;
    assert_eq!(error.message(), "account is frozen");
    assert_eq!(
        error.data().unwrap().decode::<BankError>().unwrap(),
        BankError::Frozen
    );
}

#[tokio::test]
async fn error_that_is_not_serializable_is_sent_as_text_only() {
    let error = bank_error("fail_not_serializable", vec![value("x")]).await;
    assert_eq!(
        error.message(),
        "cannot parse \"x\"\ncaused by: invalid digit found in string"
    );
    assert!(error.data().is_none());
}

#[tokio::test]
async fn error_data_other_implementations_cannot_read_is_left_out() {
    let error = bank_error("fail_by_account", vec![]).await;
    assert_eq!(error.message(), "several accounts failed");
    assert!(error.data().is_none(), "{:?}", error.data());
}

#[tokio::test]
async fn text_error_is_sent_with_its_text_as_data() {
    let error = dispatch("fail_with_text", vec![value("it broke")])
        .await
        .unwrap_err();
    assert_eq!(
        error.data().unwrap().decode::<String>().unwrap(),
        "it broke"
    );
}

/// Byte strings in every form the macro sends as bin.
pub struct Blobs;

#[multifrost::worker]
impl Blobs {
    pub fn reverse(&self, data: Vec<u8>) -> Vec<u8> {
        data.into_iter().rev().collect()
    }

    pub async fn boxed(&self, data: Box<[u8]>) -> Box<[u8]> {
        data
    }

    pub fn shared(&self, data: bytes::Bytes) -> multifrost::__private::bytes::Bytes {
        data.slice(1..)
    }

    /// Where its argument's bytes are, to tell a view into the call from a copy.
    pub fn address(&self, data: bytes::Bytes) -> u64 {
        data.as_ptr() as u64
    }

    pub fn digest(&self, data: [u8; 4]) -> [u8; 2] {
        [data[0] ^ data[2], data[1] ^ data[3]]
    }

    pub fn maybe(&self, data: Option<Vec<u8>>) -> Option<Vec<u8>> {
        data
    }

    pub fn checked(&self, data: Vec<u8>) -> Result<Vec<u8>, String> {
        if data.is_empty() {
            return Err("empty".into());
        }
        Ok(data)
    }

    pub fn with_tail(&self, head: String, tail: Option<Vec<u8>>) -> usize {
        head.len() + tail.map_or(0, |tail| tail.len())
    }
}

fn bin(bytes: &[u8]) -> EncodedValue {
    EncodedValue::from_value(&multifrost::Value::Binary(bytes.to_vec())).unwrap()
}

async fn blobs(function: &str, args: Vec<EncodedValue>) -> Result<EncodedValue, CallError> {
    Arc::new(Blobs).dispatch(call(function, args)).await
}

/// The result, which must be a msgpack bin.
async fn blobs_bin(function: &str, args: Vec<EncodedValue>) -> Vec<u8> {
    match blobs(function, args).await.unwrap().to_value() {
        multifrost::Value::Binary(bytes) => bytes,
        other => panic!("{function} returned {other:?}, not bin"),
    }
}

#[tokio::test]
async fn vec_u8_crosses_as_bin_both_ways() {
    assert_eq!(blobs_bin("reverse", vec![bin(&[1, 2, 3])]).await, [3, 2, 1]);
}

#[tokio::test]
async fn a_byte_string_parameter_also_accepts_an_array_of_integers() {
    assert_eq!(
        blobs_bin("reverse", vec![value([1, 2, 3])]).await,
        [3, 2, 1]
    );
}

#[tokio::test]
async fn boxed_slice_bytes_and_arrays_cross_as_bin() {
    assert_eq!(blobs_bin("boxed", vec![bin(&[9, 8])]).await, [9, 8]);
    assert_eq!(blobs_bin("shared", vec![bin(&[9, 8, 7])]).await, [8, 7]);
    assert_eq!(blobs_bin("digest", vec![bin(&[1, 2, 3, 4])]).await, [2, 6]);
}

#[tokio::test]
async fn an_array_parameter_needs_its_exact_length() {
    let error = blobs("digest", vec![bin(&[1, 2, 3])]).await.unwrap_err();
    assert_eq!(
        error.message(),
        "digest: argument 1 (data): expected bin of exactly 4 bytes, got bin of 3 bytes"
    );
}

#[tokio::test]
async fn a_byte_string_parameter_names_what_arrived_instead() {
    let error = blobs("reverse", vec![value("text")]).await.unwrap_err();
    assert_eq!(
        error.message(),
        r#"reverse: argument 1 (data): expected bin, got str "text""#
    );
    let error = blobs("reverse", vec![value([1, 300])]).await.unwrap_err();
    assert!(
        error
            .message()
            .starts_with("reverse: argument 1 (data): expected bin or array of integers in 0..=255, got array of 2 items"),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn optional_bytes_cross_as_bin_or_nil() {
    assert_eq!(blobs_bin("maybe", vec![bin(&[5])]).await, [5]);
    assert!(blobs("maybe", vec![EncodedValue::nil()])
        .await
        .unwrap()
        .is_nil());
    assert!(blobs("maybe", vec![]).await.unwrap().is_nil());
    let two = blobs("with_tail", vec![value("ab"), bin(&[1, 2])]).await;
    assert_eq!(two.unwrap().decode::<usize>().unwrap(), 4);
    let omitted = blobs("with_tail", vec![value("ab")]).await;
    assert_eq!(omitted.unwrap().decode::<usize>().unwrap(), 2);
}

#[tokio::test]
async fn the_ok_side_of_a_result_crosses_as_bin() {
    assert_eq!(blobs_bin("checked", vec![bin(&[4])]).await, [4]);
    let error = blobs("checked", vec![bin(&[])]).await.unwrap_err();
    assert_eq!(error.message(), "empty");
}

#[tokio::test]
async fn a_large_byte_string_crosses_whole() {
    let data: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut reversed = blobs_bin("reverse", vec![bin(&data)]).await;
    reversed.reverse();
    assert_eq!(reversed, data);
}

#[tokio::test]
async fn a_bytes_parameter_is_a_view_into_the_call_not_a_copy() {
    let data = bin(&[7; 1000]);
    // The content starts after the bin16 header (3 bytes for 256 to 65,535 bytes).
    let content = data.as_bytes()[3..].as_ptr() as u64;
    let got = blobs("address", vec![data.clone()]).await.unwrap();
    assert_eq!(got.decode::<u64>().unwrap(), content);
}

#[test]
fn the_client_helpers_send_bin_and_read_bin_or_integers() {
    use multifrost::__private::{decode_bin, BinArg};
    let sent = value(BinArg(&vec![1u8, 2]));
    assert_eq!(sent.to_value(), multifrost::Value::Binary(vec![1, 2]));
    assert!(value(BinArg(&None::<Vec<u8>>)).is_nil());
    assert_eq!(decode_bin::<[u8; 2]>(&bin(&[1, 2])).unwrap(), [1, 2]);
    assert_eq!(
        &decode_bin::<bytes::Bytes>(&value([1, 2])).unwrap()[..],
        [1, 2]
    );
    assert!(decode_bin::<Option<Box<[u8]>>>(&EncodedValue::nil())
        .unwrap()
        .is_none());
    assert!(decode_bin::<Vec<u8>>(&EncodedValue::nil()).is_err());
}
