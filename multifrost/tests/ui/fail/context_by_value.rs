use multifrost::CallContext;

pub struct Auth;

#[multifrost::worker]
impl Auth {
    pub fn check(&self, ctx: CallContext) -> bool {
        ctx.id.is_empty()
    }
}

fn main() {}
