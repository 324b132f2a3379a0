//! The toolbox worker's process (see tests/tests/support/toolbox.rs).

#[path = "../../tests/support/toolbox.rs"]
mod toolbox;

#[tokio::main]
async fn main() {
    multifrost::run(toolbox::Toolbox).await;
}
