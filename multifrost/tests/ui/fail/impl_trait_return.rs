pub struct Math;

#[multifrost::worker]
impl Math {
    pub fn numbers(&self) -> impl serde::Serialize {
        vec![1, 2, 3]
    }
}

fn main() {}
