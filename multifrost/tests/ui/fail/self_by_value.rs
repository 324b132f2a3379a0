pub struct Math;

#[multifrost::worker]
impl Math {
    pub fn consume(self) -> i64 {
        1
    }
}

fn main() {}
