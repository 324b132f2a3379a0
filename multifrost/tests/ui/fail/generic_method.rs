pub struct Math;

#[multifrost::worker]
impl Math {
    pub fn echo<T: serde::Serialize>(&self, value: T) -> T {
        value
    }
}

fn main() {}
