//! A plugin example: advanced plugin; see `trellis_example_plugins::advanced`.
#[tokio::main]
async fn main() -> Result<(), trellis_example_plugins::AnyError> {
    trellis_example_plugins::main("advanced plugin", trellis_example_plugins::advanced::run).await
}
