pub struct Math;

#[multifrost::worker]
impl Math {
    pub fn sum(&self, items: impl IntoIterator<Item = i64>) -> i64 {
        items.into_iter().sum()
    }
}

fn main() {}
