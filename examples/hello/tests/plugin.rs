//! The demo's plugin on the dev server: a worker with nothing of its own runs what the plugin
//! supplies; the hooks run in the documented order; the history is encrypted.

use trellis_core_proto::PayloadExt;
use trellis_core_proto::api::history::v1::history_event::Attributes;
use trellis_example_hello::{HookLog, greetings_plugin};
use trellis_plugin_simple::testing::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_plugin_supplies_everything_and_reports_its_hooks_in_order() {
    let log = HookLog::default();
    let env = TestEnv::new()
        .plugin(greetings_plugin(log.clone()))
        .start()
        .await
        .unwrap();
    let handle = env
        .client()
        .start_workflow("Greet", "plugin", env.options())
        .await
        .unwrap();
    let out: String = handle.result().await.unwrap();
    assert_eq!(out, "Hello, plugin!");
    let history = handle.fetch_history().await.unwrap();
    env.shutdown().await.unwrap();

    let started = history.events.iter().find_map(|e| match &e.attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a.input.clone(),
        _ => None,
    });
    let input = started.unwrap().payloads.remove(0);
    assert_eq!(input.encoding(), Some("binary/encrypted"));

    let lines = log.lock().unwrap().clone();
    let expected = [
        "configure_client: add the encryption codec (the converter had 0 codecs)",
        "configure_client: add the interceptor's client layer",
        "configure_worker: add workflow Greet (the worker had 0)",
        "configure_worker: add the interceptor's activity layer",
        "client interceptor: start_workflow",
        "activity interceptor: compose_greeting starts",
        "activity interceptor: compose_greeting finished",
        "run_context: exit (the worker stopped)",
    ];
    let mut at = 0;
    for want in expected {
        let found = lines[at..].iter().position(|l| l.starts_with(want));
        assert!(found.is_some(), "{want:?} not found in order in {lines:#?}");
        at += found.unwrap() + 1;
    }
    // The worker's run (in its own task) enters the context before it runs any activity,
    // however it interleaves with the client's start; it exits last.
    let pos = |want: &str| lines.iter().position(|l| l.starts_with(want)).unwrap();
    assert!(
        pos("run_context: enter") < pos("activity interceptor"),
        "{lines:#?}"
    );
    assert!(
        lines.last().unwrap().starts_with("run_context: exit"),
        "{lines:#?}"
    );
}
