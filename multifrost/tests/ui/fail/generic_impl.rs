pub struct Math<T>(T);

#[multifrost::worker]
impl<T: Send + Sync + 'static> Math<T> {
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {}
