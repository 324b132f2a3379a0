//! `namespace = "..."` and `crate = "..."` for a renamed or re-exported multifrost.
#![deny(warnings)]

extern crate multifrost as rpc;

mod reexport {
    pub use multifrost as mf;
}

pub struct Geometry;

#[rpc::worker(namespace = "geometry", crate = "::rpc")]
impl Geometry {
    pub fn area(&self, width: f64, height: f64) -> f64 {
        width * height
    }
}

pub struct Nested;

#[reexport::mf::worker(crate = "crate::reexport::mf")]
impl Nested {
    pub async fn ping(&self) -> String {
        "pong".into()
    }
}

async fn call(geometry: rpc::Handle<Geometry>, nested: rpc::Handle<Nested>) -> rpc::Result<()> {
    let _: f64 = geometry.call().area(2.0, 3.0).await?;
    let _: String = nested.call().ping().await?;
    Ok(())
}

fn main() {
    use rpc::Worker;
    assert_eq!(Geometry.namespace(), "geometry");
    assert_eq!(Nested.namespace(), "default");
    let _ = call;
}
