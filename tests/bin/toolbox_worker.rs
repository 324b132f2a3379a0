//! The toolbox worker's process (see tests/toolbox.rs).

#[path = "../toolbox.rs"]
mod toolbox;

#[tokio::main]
async fn main() {
    multifrost::run(toolbox::Toolbox).await;
}
