use multifrost::ParentWorker;

#[multifrost::client]
pub trait Math {
    async fn add(&self, a: i64, b: i64) -> i64;
}

async fn parent() -> multifrost::Result<i64> {
    let handle = ParentWorker::spawn("math.py").handle_for::<dyn Math>();
    handle.call().add("1", 2).await
}

fn main() {
    drop(parent());
}
