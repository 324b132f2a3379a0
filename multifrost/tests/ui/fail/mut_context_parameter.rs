use multifrost::CallContext;

pub struct Auth;

#[multifrost::worker]
impl Auth {
    pub fn check(&self, ctx: &mut CallContext) -> bool {
        ctx.id.is_empty()
    }
}

fn main() {}
