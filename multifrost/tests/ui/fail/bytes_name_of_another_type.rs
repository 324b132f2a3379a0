// A type named like a byte string is sent as bin: one that is not gets a message that says so.
use serde::{Deserialize, Serialize};

pub struct Store;

#[derive(Serialize, Deserialize)]
pub struct Bytes {
    pub count: u64,
}

#[multifrost::worker]
impl Store {
    pub fn size(&self) -> Bytes {
        Bytes { count: 1 }
    }
}

fn main() {}
