pub struct Math;

#[multifrost::worker]
impl Math {
    pub fn add(&self, (a, b): (i64, i64)) -> i64 {
        a + b
    }
}

fn main() {}
