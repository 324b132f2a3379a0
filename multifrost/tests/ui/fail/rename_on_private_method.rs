pub struct Math;

#[multifrost::worker]
impl Math {
    #[multifrost(rename = "addNumbers")]
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {
    let _ = Math.add(1, 2);
}
