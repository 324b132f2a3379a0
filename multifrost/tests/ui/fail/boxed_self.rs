pub struct Math;

#[multifrost::worker]
impl Math {
    pub fn boxed(self: Box<Self>) -> i64 {
        1
    }
}

fn main() {}
