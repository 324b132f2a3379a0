pub struct Math;

#[derive(Debug)]
pub struct Opaque;

#[multifrost::worker]
impl Math {
    pub fn fail(&self) -> Result<i64, Opaque> {
        Err(Opaque)
    }
}

fn main() {}
