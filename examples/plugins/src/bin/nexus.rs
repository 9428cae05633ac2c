//! A plugin adds a Nexus service; see `trellis_example_plugins::nexus`.
#[tokio::main]
async fn main() -> Result<(), trellis_example_plugins::AnyError> {
    trellis_example_plugins::main("Nexus service", trellis_example_plugins::nexus::run).await
}
