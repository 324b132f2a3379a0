use multifrost::CallContext;

pub struct Auth;

#[multifrost::worker]
impl Auth {
    pub fn check(&self, ctx: &CallContext, again: &CallContext) -> bool {
        ctx.id == again.id
    }
}

fn main() {}
