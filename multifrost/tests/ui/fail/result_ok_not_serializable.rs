use serde::Deserialize;

pub struct Math;

/// Decodable, so the client is fine, but not `Serialize`, so the worker cannot send it.
#[derive(Deserialize)]
pub struct Opaque;

#[multifrost::worker]
impl Math {
    pub async fn make(&self) -> Result<Opaque, String> {
        Ok(Opaque)
    }
}

fn main() {}
