//! A plugin example: workflow library; see `trellis_example_plugins::workflow_library`.
#[tokio::main]
async fn main() -> Result<(), trellis_example_plugins::AnyError> {
    trellis_example_plugins::main(
        "workflow library",
        trellis_example_plugins::workflow_library::run,
    )
    .await
}
