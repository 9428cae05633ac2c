//! A plugin adds a built-in activity; see `trellis_example_plugins::builtin_activity`.
#[tokio::main]
async fn main() -> Result<(), trellis_example_plugins::AnyError> {
    trellis_example_plugins::main(
        "built-in activity",
        trellis_example_plugins::builtin_activity::run,
    )
    .await
}
