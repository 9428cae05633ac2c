//! A plugin example: tracing interceptor; see `trellis_example_plugins::tracing_plugin`.
#[tokio::main]
async fn main() -> Result<(), trellis_example_plugins::AnyError> {
    trellis_example_plugins::main(
        "tracing interceptor",
        trellis_example_plugins::tracing_plugin::run,
    )
    .await
}
