#[multifrost::client]
pub trait Tree {
    fn children(&self) -> Vec<Box<Self>>;
}

fn main() {}
