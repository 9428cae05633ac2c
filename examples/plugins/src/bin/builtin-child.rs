//! A plugin example: a built-in child workflow; see `trellis_example_plugins::builtin_child`.
#[tokio::main]
async fn main() -> Result<(), trellis_example_plugins::AnyError> {
    trellis_example_plugins::main(
        "built-in child workflow",
        trellis_example_plugins::builtin_child::run,
    )
    .await
}
