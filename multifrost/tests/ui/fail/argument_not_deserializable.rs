pub struct Math;

pub struct Opaque;

#[multifrost::worker]
impl Math {
    pub fn take(&self, value: Opaque) -> bool {
        let _ = value;
        true
    }
}

fn main() {}
