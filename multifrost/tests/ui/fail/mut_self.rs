pub struct Counter {
    count: i64,
}

#[multifrost::worker]
impl Counter {
    pub fn increment(&mut self) -> i64 {
        self.count += 1;
        self.count
    }
}

fn main() {}
