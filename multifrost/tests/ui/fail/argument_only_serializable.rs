use serde::Serialize;

pub struct Math;

/// Encodable, so the client is fine, but not `Deserialize`, so the worker cannot decode it.
#[derive(Serialize)]
pub struct Opaque;

#[multifrost::worker]
impl Math {
    pub fn take(&self, count: i64, value: Opaque) -> i64 {
        let _ = value;
        count
    }
}

fn main() {}
