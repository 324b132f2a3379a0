#[multifrost::client]
pub trait Identity {
    fn whoami(&self, ctx: &multifrost::CallContext) -> Option<String>;
}

fn main() {}
