//! A plugin example: run context; see `trellis_example_plugins::run_context`.
#[tokio::main]
async fn main() -> Result<(), trellis_example_plugins::AnyError> {
    trellis_example_plugins::main("run context", trellis_example_plugins::run_context::run).await
}
