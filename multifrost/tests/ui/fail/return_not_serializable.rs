pub struct Math;

/// Decodable, so the client is fine, but not `Serialize`, so the worker cannot send it.
/// (Written by hand: a derive's hidden `extern crate serde as _serde` would make the compiler
/// name the trait `_serde::Serialize` in some builds and `serde::Serialize` in others.)
pub struct Opaque;

impl<'de> serde::Deserialize<'de> for Opaque {
    fn deserialize<D: serde::Deserializer<'de>>(decoder: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(decoder).map(|_| Opaque)
    }
}

#[multifrost::worker]
impl Math {
    pub fn make(&self) -> Opaque {
        Opaque
    }
}

fn main() {}
