//! Every mistake is reported at once, and the methods without one still expand: the code below
//! that uses the worker and its client gets no error of its own.
use multifrost::{ParentWorker, Worker};

pub struct Counter;

#[multifrost::worker]
impl Counter {
    pub fn increment(&mut self) {}

    pub fn greet(&self, name: &str) -> String {
        name.to_owned()
    }

    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {
    assert_eq!(Counter.list_functions(), ["add"]);
    let handle = ParentWorker::spawn("counter").handle_for::<Counter>();
    drop(async move { handle.call().add(1, 2).await });
}
