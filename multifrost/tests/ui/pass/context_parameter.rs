//! A `&CallContext` parameter in first, middle and last position, imported or by path; the
//! clients leave it out.
#![deny(warnings)]

use multifrost::{CallContext, Handle};

pub struct Auth;

#[multifrost::worker]
impl Auth {
    pub async fn token(&self, ctx: &CallContext) -> Option<String> {
        ctx.metadata_str("auth_token").map(str::to_owned)
    }

    pub fn first(&self, ctx: &CallContext, name: String) -> String {
        format!("{name} from {:?}", ctx.client_name)
    }

    pub fn middle(&self, prefix: String, ctx: &multifrost::CallContext, suffix: String) -> String {
        format!("{prefix}{}{suffix}", ctx.namespace)
    }

    pub async fn last(&self, n: i64, ctx: &CallContext) -> Option<String> {
        ctx.correlation_id().map(|id| format!("{id}:{n}"))
    }
}

async fn call(handle: Handle<Auth>) -> multifrost::Result<()> {
    let _: Option<String> = handle.call().token().await?;
    let _: String = handle.call().first("a".into()).await?;
    let _: String = handle.call().middle("<".into(), ">".into()).await?;
    let _: Option<String> = handle.call().last(1).await?;
    Ok(())
}

fn main() {
    let _ = call;
}
