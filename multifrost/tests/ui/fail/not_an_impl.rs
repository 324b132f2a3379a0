#[multifrost::worker]
pub struct Math;

fn main() {}
