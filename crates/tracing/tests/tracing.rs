//! The interceptor on a real client and worker against the dev server: client → workflow →
//! activities (→ a client call from an activity) is one trace, client → workflow → Nexus start
//! → Nexus handler is one trace, and a worker that replays every workflow task from scratch
//! records each workflow span once.

#[path = "common/capture.rs"]
mod capture;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use capture::{Capture, SpanRecord};
use trellis_client::{Client, ClientConfig, WorkflowOptions, nexus};
use trellis_testing::{client_with, server_address, unique};
use trellis_tracing::TracingInterceptor;
use trellis_worker::nexus::{NexusServiceHandler, Operation, Service};
use trellis_worker::{
    ActivityContext, ActivityError, Worker, WorkerConfig, WorkflowContext, WorkflowError,
};

/// Spans from every thread (the worker's workflow thread, the runtime's threads) reach the
/// process-wide subscriber; tests pick theirs out by workflow id.
fn captured() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        tracing::subscriber::set_global_default(capture.subscriber())
            .expect("no other global subscriber in this test binary");
        capture
    })
}

/// Set when the workflow function starts while its run is replaying: proof the worker did
/// rebuild the run from history.
static STARTED_IN_REPLAY: AtomicBool = AtomicBool::new(false);

async fn two_steps(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    if ctx.is_replaying() {
        STARTED_IN_REPLAY.store(true, Ordering::SeqCst);
    }
    ctx.set_query_handler("progress", |(): ()| "done");
    let first: String = ctx
        .activity("compose")
        .arg(&name)
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    let _: String = ctx.signal_channel::<String>("proceed").recv().await?;
    let second: String = ctx
        .activity("compose")
        .arg(&first)
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    Ok(second)
}

/// Composes a greeting; describes its own workflow through the client, a client call made
/// from inside an activity.
async fn compose(
    client: Client,
    ctx: ActivityContext,
    name: String,
) -> Result<String, ActivityError> {
    client
        .workflow_handle(ctx.info().workflow_id.clone(), None)
        .describe()
        .await
        .map_err(|e| ActivityError::from(std::io::Error::other(e.to_string())))?;
    Ok(format!("<{name}>"))
}

fn only<'a>(spans: &[&'a SpanRecord], what: &str) -> &'a SpanRecord {
    assert_eq!(spans.len(), 1, "expected one {what} span, got {spans:#?}");
    spans[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_client_to_activities_and_no_duplicates_on_replay() {
    let capture = captured();
    let tracing = TracingInterceptor::new();
    let client = client_with(tracing.apply_to_client(ClientConfig::new(server_address()))).await;
    let tq = unique("tracing");
    let wf_id = unique("traced");

    let mut config = WorkerConfig::new(&tq);
    // No cache: every workflow task rebuilds the run from its history, replaying what ran.
    config.max_cached_workflows = 0;
    let activity_client = client.clone();
    let config = tracing.apply_to_worker(
        config
            .workflow("TwoSteps", two_steps)
            .activity("compose", move |ctx, name| {
                compose(activity_client.clone(), ctx, name)
            }),
    );
    let worker = Worker::new(&client, config).await.expect("worker starts");
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    let handle = client
        .start_workflow("TwoSteps", "world", WorkflowOptions::new(&wf_id, &tq))
        .await
        .unwrap();
    handle.signal("proceed", "now").await.unwrap();
    let result: String = handle.result().await.unwrap();
    assert_eq!(result, "<<world>>");
    let answer: String = handle.query("progress", ()).await.unwrap();
    assert_eq!(answer, "done");

    shutdown.shutdown();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("worker stops")
        .unwrap()
        .unwrap();
    assert!(
        STARTED_IN_REPLAY.load(Ordering::SeqCst),
        "the worker never replayed the run, so the test proves nothing about replay"
    );

    let all = capture.spans();
    let ours: Vec<&SpanRecord> = all
        .iter()
        .filter(|s| s.get("workflow_id") == Some(wf_id.as_str()))
        .collect();
    let with = |name: &str| -> Vec<&SpanRecord> {
        ours.iter().copied().filter(|s| s.name == name).collect()
    };
    let client_call = |call: &str| -> Vec<&SpanRecord> {
        with("temporal.client")
            .into_iter()
            .filter(|s| s.get("call") == Some(call))
            .collect()
    };

    // The client's start is the root of the trace.
    let start = only(&client_call("start_workflow"), "client start");
    assert_eq!(start.full_name(), "StartWorkflow:TwoSteps");
    assert_eq!(start.get("parent_span_id"), None);
    assert_eq!(start.get("run_id"), handle.run_id());
    let trace = start.field("trace_id");

    // One run span, though the run was rebuilt from history for every task.
    let run = only(&with("RunWorkflow"), "RunWorkflow");
    assert_eq!(run.full_name(), "RunWorkflow:TwoSteps");
    assert_eq!(run.field("trace_id"), trace);
    assert_eq!(run.field("parent_span_id"), start.field("span_id"));

    // One StartActivity per activity, both children of the run span: the second was scheduled
    // after a replay of the first, when the run span of this worker was a disabled one.
    let mut schedules = with("StartActivity");
    schedules.sort_by_key(|s| s.field("activity_id").to_owned());
    assert_eq!(schedules.len(), 2, "{schedules:#?}");
    for s in &schedules {
        assert_eq!(s.full_name(), "StartActivity:compose");
        assert_eq!(s.field("trace_id"), trace);
        assert_eq!(s.field("parent_span_id"), run.field("span_id"));
    }
    // The first was scheduled live, inside the run span.
    let first = schedules[0];
    assert_eq!(
        first.parent.map(|p| all[p].name),
        Some("RunWorkflow"),
        "{first:?}"
    );

    // Each attempt runs as a child of the span that scheduled it (the header crossed the
    // server), and the client call made inside it is a child of the attempt.
    let attempts = with("RunActivity");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    let describes = client_call("describe");
    assert_eq!(describes.len(), 2, "{describes:#?}");
    for s in &schedules {
        let attempt = only(
            &attempts
                .iter()
                .copied()
                .filter(|a| a.field("activity_id") == s.field("activity_id"))
                .collect::<Vec<_>>(),
            "RunActivity",
        );
        assert_eq!(attempt.full_name(), "RunActivity:compose");
        assert_eq!(attempt.field("trace_id"), trace);
        assert_eq!(attempt.field("parent_span_id"), s.field("span_id"));
        assert_eq!(attempt.get("error"), None);
        let describe = only(
            &describes
                .iter()
                .copied()
                .filter(|d| d.get("parent_span_id") == Some(attempt.field("span_id")))
                .collect::<Vec<_>>(),
            "describe from the activity",
        );
        assert_eq!(describe.field("trace_id"), trace);
    }

    // The signal and the query continue their own calls' traces, once each.
    let signal_call = only(&client_call("signal"), "client signal");
    let signal = only(&with("HandleSignal"), "HandleSignal");
    assert_eq!(signal.full_name(), "HandleSignal:proceed");
    assert_eq!(signal.field("trace_id"), signal_call.field("trace_id"));
    assert_eq!(signal.field("parent_span_id"), signal_call.field("span_id"));
    let query_call = only(&client_call("query"), "client query");
    let query = only(&with("HandleQuery"), "HandleQuery");
    assert_eq!(query.full_name(), "HandleQuery:progress");
    assert_eq!(query.field("trace_id"), query_call.field("trace_id"));
    assert_eq!(query.field("parent_span_id"), query_call.field("span_id"));

    // Waiting for the result is one client call, closed with the run that completed.
    let result_call = only(&client_call("get_result"), "client get_result");
    assert_eq!(result_call.full_name(), "GetWorkflowResult");
    assert_eq!(result_call.get("run_id"), handle.run_id());
    assert_eq!(result_call.get("error"), None);

    // Nothing else carries this workflow's id: no duplicate from any replay.
    let kinds: Vec<&str> = ours.iter().map(|s| s.name).collect();
    assert_eq!(
        ours.len(),
        1 + 1 + 2 + 2 + 2 + 1 + 1 + 1 + 1 + 1 + client_call("fetch_history").len(),
        "{kinds:?}"
    );
}

// ---------------------------------------------------------------- Nexus

const ECHO: Operation<String, String> = Operation::new("echo");

struct EchoService;
impl Service for EchoService {
    const NAME: &'static str = "EchoService";
}

/// Calls the echo operation twice, a timer between them, so the second start happens after the
/// (cache-less) worker replayed the first.
async fn calls_echo(ctx: WorkflowContext, endpoint: String) -> Result<String, WorkflowError> {
    let echo = ctx.nexus_service_client::<EchoService>(&endpoint);
    let a = echo
        .operation(ECHO, &"one".to_owned())
        .schedule_to_close_timeout(Duration::from_secs(30))
        .run()
        .await?;
    ctx.timer(Duration::from_millis(100)).await;
    let b = echo
        .operation(ECHO, &"two".to_owned())
        .schedule_to_close_timeout(Duration::from_secs(30))
        .run()
        .await?;
    Ok(format!("{a} {b}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_a_workflow_through_a_nexus_handler() {
    let capture = captured();
    let tracing = TracingInterceptor::new();
    let client = client_with(tracing.apply_to_client(ClientConfig::new(server_address()))).await;
    let tq = unique("tracing-nexus");
    let wf_id = unique("traced-nexus");
    let endpoint = nexus::create_endpoint(&client, &unique("trace-ep"), &tq)
        .await
        .unwrap();
    let endpoint_name = endpoint.spec.as_ref().unwrap().name.clone();

    let mut config = WorkerConfig::new(&tq);
    config.max_cached_workflows = 0;
    let config = tracing.apply_to_worker(
        config.workflow("CallsEcho", calls_echo).nexus_service(
            NexusServiceHandler::for_service::<EchoService>()
                .sync(ECHO, |_ctx, s: String| async move { Ok(format!("<{s}>")) }),
        ),
    );
    let worker = Worker::new(&client, config).await.expect("worker starts");
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    let handle = client
        .start_workflow(
            "CallsEcho",
            &endpoint_name,
            WorkflowOptions::new(&wf_id, &tq),
        )
        .await
        .unwrap();
    let result: String = handle.result().await.unwrap();
    assert_eq!(result, "<one> <two>");

    shutdown.shutdown();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("worker stops")
        .unwrap()
        .unwrap();
    nexus::delete_endpoint(&client, &endpoint).await.unwrap();

    let all = capture.spans();
    let start = all
        .iter()
        .find(|s| s.get("workflow_id") == Some(wf_id.as_str()) && s.name == "temporal.client")
        .expect("the client's start span");
    let trace = start.field("trace_id");
    let in_trace: Vec<&SpanRecord> = all
        .iter()
        .filter(|s| s.get("trace_id") == Some(trace))
        .collect();
    let with = |name: &str| -> Vec<&SpanRecord> {
        in_trace
            .iter()
            .copied()
            .filter(|s| s.name == name)
            .collect()
    };
    let run = only(&with("RunWorkflow"), "RunWorkflow");
    // One start span per operation (none repeated by the replays), children of the run.
    let starts = with("StartNexusOperation");
    assert_eq!(starts.len(), 2, "{starts:#?}");
    let handlers = with("RunNexusOperationHandler");
    assert_eq!(handlers.len(), 2, "{handlers:#?}");
    for s in &starts {
        assert_eq!(s.full_name(), "StartNexusOperation:EchoService/echo");
        assert_eq!(s.field("parent_span_id"), run.field("span_id"));
        assert_eq!(s.field("nexus_endpoint"), endpoint_name);
        // The handler's span is a child of it: the traceparent crossed the server.
        let handler = only(
            &handlers
                .iter()
                .copied()
                .filter(|h| h.get("parent_span_id") == Some(s.field("span_id")))
                .collect::<Vec<_>>(),
            "handler span",
        );
        assert_eq!(
            handler.full_name(),
            "RunStartNexusOperationHandler:EchoService/echo"
        );
        assert_eq!(handler.get("error"), None);
    }
}
