//! A worker that serves a client trait: its methods match the trait's by wire name, whatever
//! their Rust names, their asyncness, their error types or their context parameters.
#![deny(warnings)]

use multifrost::{CallContext, ParentWorker, Value};

mod api {
    /// What parents see, with no worker code.
    #[multifrost::client(namespace = "math")]
    pub trait MathApi {
        fn add(&self, a: i64, b: i64) -> i64;
        async fn divide(&self, a: f64, b: f64) -> f64;
        #[multifrost(rename = "get_info")]
        fn info(&self) -> multifrost::Value;
        #[multifrost(rename = "lastIndexOf")]
        fn last_index_of(&self, items: Vec<String>, item: String) -> Option<usize>;
        fn reset(&self);
        fn whoami(&self) -> Option<String>;
    }
}

pub struct Math;

#[multifrost::worker(namespace = "math", serves = api::MathApi)]
impl Math {
    pub async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    pub fn divide(&self, a: f64, b: f64) -> Result<f64, String> {
        if b == 0.0 {
            return Err("division by zero".into());
        }
        Ok(a / b)
    }

    pub fn get_info(&self) -> Value {
        Value::from("math")
    }

    #[multifrost(rename = "lastIndexOf")]
    pub fn find_last(&self, items: Vec<String>, item: String) -> Option<usize> {
        items.iter().rposition(|candidate| *candidate == item)
    }

    pub fn reset(&self) -> () {}

    pub fn whoami(&self, ctx: &CallContext) -> Option<String> {
        ctx.client_name.clone()
    }

    fn helper(&self) -> i64 {
        1
    }
}

/// The worker type serves the trait, as a bound says.
fn serves<T: api::MathApi>() {}

async fn parent() -> multifrost::Result<i64> {
    let handle = ParentWorker::spawn("math_worker").handle_for::<dyn api::MathApi>();
    let sum = handle.call().add(1, 2).await?;
    let _: Option<usize> = handle.call().last_index_of(vec![], "a".into()).await?;
    Ok(sum + Math.helper())
}

fn main() {
    serves::<Math>();
    let _ = parent;
}
