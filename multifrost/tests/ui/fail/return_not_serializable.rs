use serde::Deserialize;

pub struct Math;

/// Decodable, so the client is fine, but not `Serialize`, so the worker cannot send it.
#[derive(Deserialize)]
pub struct Opaque;

#[multifrost::worker]
impl Math {
    pub fn make(&self) -> Opaque {
        Opaque
    }
}

fn main() {}
