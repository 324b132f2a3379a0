use multifrost::ParentWorker;

pub struct Math;

#[multifrost::worker]
impl Math {
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    fn helper(&self, a: i64) -> i64 {
        a
    }
}

async fn parent() -> multifrost::Result<()> {
    let handle = ParentWorker::spawn("math").handle_for::<Math>();
    let sum: i64 = handle.call().add(1, 2).await?;
    let doubled: i64 = handle.call().helper(sum).await?;
    let _ = (doubled, Math.helper(1));
    Ok(())
}

fn main() {
    drop(parent());
}
