pub struct Math;

#[multifrost::worker]
impl Math {
    pub fn sum(&self, items: &[i64]) -> i64 {
        items.iter().sum()
    }
}

fn main() {}
