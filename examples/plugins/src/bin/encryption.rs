//! A plugin example: encryption codec; see `trellis_example_plugins::encryption`.
#[tokio::main]
async fn main() -> Result<(), trellis_example_plugins::AnyError> {
    trellis_example_plugins::main("encryption codec", trellis_example_plugins::encryption::run)
        .await
}
