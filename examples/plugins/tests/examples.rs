//! Every plugin example, run against the test dev server, checked for what it prints.

use trellis_example_plugins as ex;

async fn address() -> String {
    trellis_testing::client().await; // the server is ready
    trellis_testing::server_address().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_activity() {
    assert_eq!(
        ex::builtin_activity::run(address().await).await.unwrap(),
        "2700 USD"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexus_service_from_a_plugin() {
    assert_eq!(
        ex::nexus::run(address().await).await.unwrap(),
        "serving [WeatherService: get_weather, weekly_forecast]; Lisbon 16°C today, up to 16°C this week"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_library() {
    assert_eq!(
        ex::workflow_library::run(address().await).await.unwrap(),
        "sent on email, sms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_keeps_the_users_codec() {
    let out = ex::encryption::run(address().await).await.unwrap();
    assert_eq!(
        out,
        "\"card ****\"; codecs on the client: 2; the history stores the input as binary/encrypted (key vault-key-1)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_plugin() {
    assert_eq!(
        ex::tracing_plugin::run(address().await).await.unwrap(),
        "42 in stock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_context_flushes_when_the_worker_stops() {
    assert_eq!(
        ex::run_context::run(address().await).await.unwrap(),
        "transferred; flushed on exit: 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advanced_plugin_sees_the_rpcs() {
    let out = ex::advanced::run(address().await).await.unwrap();
    let rpcs: usize = out
        .split("; ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(out.starts_with("tenant acme; "), "{out}");
    // At least: start, two workflow task polls and completions, an activity poll and
    // completion, and the result's history fetch.
    assert!(rpcs >= 7, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_child_workflow() {
    assert_eq!(
        ex::builtin_child::run(address().await).await.unwrap(),
        "order #1 approved (score 12)"
    );
}
