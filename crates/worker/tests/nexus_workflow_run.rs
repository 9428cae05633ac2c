//! Workflow-run Nexus operations on a real dev server: a Python SDK workflow calls operations
//! that a Trellis worker serves by starting Trellis workflows (registered on the same worker).
//! The result arrives when the handler workflow completes; both histories link to each other;
//! cancelling the operation cancels the handler workflow; a failing handler workflow fails the
//! operation; a second start for a running workflow id is a `CONFLICT`, or joins it under the
//! `UseExisting` conflict policy. The service and its
//! workflows reach the worker through a `SimplePlugin`; the worker's own Nexus inbound layer
//! still sees every request.

mod common;
use common::{spawn_worker, stop};

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use trellis_client::{WorkflowExecutionStatus, WorkflowIdConflictPolicy, WorkflowOptions, nexus};
use trellis_core_proto::api::common::v1::link;
use trellis_core_proto::api::enums::v1::EventType;
use trellis_core_proto::api::history::v1::History;
use trellis_core_proto::api::history::v1::history_event::Attributes;
use trellis_interceptor::{BoxError, Next, from_fn};
use trellis_plugin_simple::SimplePlugin;
use trellis_testing::{client, unique};
use trellis_worker::interceptors::{NexusInbound, NexusInboundResponse};
use trellis_worker::nexus::{NexusServiceHandler, Operation, Service, WorkflowRunToken};
use trellis_worker::{
    ApplicationFailure, WorkerConfig, WorkflowContext, WorkflowError, WorkflowRef,
};

#[derive(Serialize, Deserialize)]
struct Person {
    name: String,
}

#[derive(Serialize, Deserialize)]
struct Greeting {
    message: String,
}

struct GreetingService;
impl Service for GreetingService {
    const NAME: &'static str = "GreetingService";
}
impl GreetingService {
    const GREET: Operation<Person, Greeting> = Operation::new("greet");
    const WAIT: Operation<Person, Greeting> = Operation::new("wait");
    const JOIN: Operation<Person, Greeting> = Operation::new("join");
}

const GREET_WORKFLOW: WorkflowRef<(Person,), Greeting> = WorkflowRef::new("Greet");
const WAIT_WORKFLOW: WorkflowRef<(Person,), Greeting> = WorkflowRef::new("WaitForCancel");

async fn greet(_ctx: WorkflowContext, p: Person) -> Result<Greeting, WorkflowError> {
    Ok(Greeting {
        message: format!("Hello, {}", p.name),
    })
}

async fn wait_for_cancel(ctx: WorkflowContext, _p: Person) -> Result<Greeting, WorkflowError> {
    ctx.cancelled().await;
    Err(WorkflowError::cancelled())
}

async fn fail(_ctx: WorkflowContext, p: Person) -> Result<Greeting, WorkflowError> {
    Err(
        ApplicationFailure::new("GreetError", format!("cannot greet {}", p.name))
            .non_retryable()
            .into(),
    )
}

/// The service: typed operations for `greet` and `wait`, a by-name one for `fail`.
fn greeting_service() -> NexusServiceHandler {
    NexusServiceHandler::for_service::<GreetingService>()
        .workflow_run(GreetingService::GREET, |ctx, p: Person| async move {
            let options = WorkflowOptions {
                id: format!("greet-{}", p.name),
                ..Default::default()
            };
            ctx.start_workflow(GREET_WORKFLOW, (p,), options).await
        })
        .workflow_run(GreetingService::WAIT, |ctx, p: Person| async move {
            let options = WorkflowOptions {
                id: format!("wait-{}", p.name),
                ..Default::default()
            };
            ctx.start_workflow(WAIT_WORKFLOW, (p,), options).await
        })
        // Joins the `wait` workflow of that name if it runs (its outcome completes this
        // operation too).
        .workflow_run(GreetingService::JOIN, |ctx, p: Person| async move {
            let options = WorkflowOptions {
                id: format!("wait-{}", p.name),
                id_conflict_policy: WorkflowIdConflictPolicy::UseExisting,
                ..Default::default()
            };
            ctx.start_workflow(WAIT_WORKFLOW, (p,), options).await
        })
        .workflow_run_operation("fail", |ctx, p: Person| async move {
            let options = WorkflowOptions {
                id: format!("fail-{}", p.name),
                task_queue: ctx.task_queue().to_owned(),
                ..Default::default()
            };
            ctx.start_workflow_by_name::<Greeting>("Fails", (p,), options)
                .await
        })
}

/// What a plugin crate would export: the service and the workflows backing it, in one value.
fn greeting_plugin() -> SimplePlugin {
    SimplePlugin::new("acme.greetings")
        .nexus_service(greeting_service())
        .workflow(GREET_WORKFLOW.name(), greet)
        .workflow(WAIT_WORKFLOW.name(), wait_for_cancel)
        .workflow("Fails", fail)
}

/// Runs the Python caller; returns its cases.
async fn run_python_caller(endpoint: &str, suffix: &str) -> Vec<Value> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python/nexus_workflow_run_caller.py");
    let args = vec![
        trellis_testing::server_address().to_owned(),
        endpoint.to_owned(),
        unique("nexus-wr-py-caller"),
        suffix.to_owned(),
    ];
    tokio::task::spawn_blocking(move || trellis_testing::python_json_lines(&script, &args))
        .await
        .unwrap()
}

fn case<'a>(cases: &'a [Value], name: &str) -> &'a Value {
    cases
        .iter()
        .find(|c| c["case"] == name)
        .unwrap_or_else(|| panic!("no case {name}: {cases:#?}"))
}

/// The workflow ids of the workflow-event links on events matching `pick`.
fn linked_workflows(history: &History, pick: impl Fn(&Attributes) -> bool) -> Vec<String> {
    history
        .events
        .iter()
        .filter(|e| e.attributes.as_ref().is_some_and(&pick))
        .flat_map(|e| &e.links)
        .filter_map(|l| match &l.variant {
            Some(link::Variant::WorkflowEvent(w)) => Some(w.workflow_id.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_workflow_calls_trellis_workflow_run_operations() {
    let client = client().await;
    let tq = unique("nexus-wr");
    let endpoint = nexus::create_endpoint(&client, &unique("wr-ep"), &tq)
        .await
        .expect("endpoint created");
    let endpoint_name = endpoint.spec.as_ref().unwrap().name.clone();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let worker = spawn_worker(
        &client,
        // The plugin supplies the Nexus service and the handler workflows.
        WorkerConfig::new(&tq)
            .plugin(greeting_plugin())
            .nexus_inbound_layer(from_fn(
                move |req: NexusInbound,
                      next: Next<NexusInbound, NexusInboundResponse, BoxError>| {
                    let log = log.clone();
                    async move {
                        let what = format!("{} {}", req.name(), req.operation());
                        let response = next.run(req).await;
                        log.lock().unwrap().push(format!(
                            "{what} -> {}",
                            match &response {
                                Ok(NexusInboundResponse::Started { .. }) => "started",
                                Ok(NexusInboundResponse::CancelAccepted) => "cancel accepted",
                                Ok(_) => "other",
                                Err(_) => "error",
                            }
                        ));
                        response
                    }
                },
            )),
    )
    .await;

    let suffix = unique("p");
    let cases = run_python_caller(&endpoint_name, &suffix).await;
    let all = serde_json::to_string_pretty(&cases).unwrap();

    // The result: the handler workflow's result, decoded by Python into its dataclass.
    let result = case(&cases, "result");
    let name = result["name"].as_str().unwrap();
    assert_eq!(
        result["result"],
        json!({"type": "Greeting", "message": format!("Hello, {name}")}),
        "{all}"
    );
    // The token Python got is the workflow-run token every SDK uses.
    let token = WorkflowRunToken::decode(result["token"].as_str().unwrap()).unwrap();
    let handler_id = format!("greet-{name}");
    assert_eq!(
        token,
        WorkflowRunToken::new(client.namespace(), handler_id.clone())
    );

    // Links, as the server recorded them: the caller's "operation started" event links to the
    // handler workflow, and the handler workflow's started event links back to the caller and
    // carries the completion callback.
    let caller_id = result["caller_workflow_id"].as_str().unwrap().to_owned();
    let caller_history = client
        .workflow_handle(caller_id.clone(), None)
        .fetch_history()
        .await
        .unwrap();
    assert_eq!(
        linked_workflows(&caller_history, |a| matches!(
            a,
            Attributes::NexusOperationStartedEventAttributes(_)
        )),
        std::slice::from_ref(&handler_id),
        "{caller_history:#?}"
    );
    let handler_history = client
        .workflow_handle(handler_id.clone(), None)
        .fetch_history()
        .await
        .unwrap();
    // The server records the caller's link on the started event's completion callback (older
    // servers put it on the event itself; either is a link back to the caller).
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) =
        &handler_history.events[0].attributes
    else {
        panic!("{handler_history:#?}")
    };
    assert_eq!(started.completion_callbacks.len(), 1, "{started:#?}");
    let mut back_links = linked_workflows(&handler_history, |a| {
        matches!(a, Attributes::WorkflowExecutionStartedEventAttributes(_))
    });
    back_links.extend(started.completion_callbacks[0].links.iter().filter_map(
        |l| match &l.variant {
            Some(link::Variant::WorkflowEvent(w)) => Some(w.workflow_id.clone()),
            _ => None,
        },
    ));
    assert!(back_links.contains(&caller_id), "{started:#?}");
    assert_eq!(started.task_queue.as_ref().unwrap().name, tq);

    // A failing handler workflow fails the operation, with the workflow's failure as cause.
    let failure = &case(&cases, "failure")["error"];
    assert_eq!(failure["class"], "NexusOperationError", "{all}");
    let cause = failure["cause"].to_string();
    assert!(
        cause.contains("GreetError")
            && cause.contains(&format!(
                "cannot greet {}",
                case(&cases, "failure")["name"].as_str().unwrap()
            )),
        "{all}"
    );

    // Cancelling the operation cancelled the handler workflow; the caller saw the
    // cancellation once the workflow closed.
    let cancel = case(&cases, "cancel");
    assert!(
        cancel["error"].to_string().contains("CancelledError"),
        "{all}"
    );
    let token = WorkflowRunToken::decode(cancel["token"].as_str().unwrap()).unwrap();
    let described = client
        .workflow_handle(token.workflow_id.clone(), None)
        .describe()
        .await
        .unwrap();
    assert_eq!(described.status, WorkflowExecutionStatus::Canceled, "{all}");

    // A second start while the workflow of that id runs: a non-retryable CONFLICT.
    let conflict = &case(&cases, "already-started")["error"];
    assert_eq!(conflict["class"], "NexusOperationError", "{all}");
    assert_eq!(conflict["cause"]["class"], "HandlerError", "{all}");
    assert_eq!(conflict["cause"]["type"], "CONFLICT", "{all}");
    assert_eq!(conflict["cause"]["retryable"], false, "{all}");

    // A start with the USE_EXISTING policy found the running workflow and attached its
    // callback: cancelling that workflow (through the first operation) completed the second
    // operation as cancelled too.
    let join = case(&cases, "join-running");
    assert_eq!(join["token"], join["first_token"], "{all}");
    // Each operation's started event links to what its start did in the handler workflow:
    // the first to the started event, the joining one to the event the server recorded for
    // the join (its own link, not one naming the started event again).
    let join_history = client
        .workflow_handle(join["caller_workflow_id"].as_str().unwrap(), None)
        .fetch_history()
        .await
        .unwrap();
    let referenced: Vec<_> = join_history
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.attributes,
                Some(Attributes::NexusOperationStartedEventAttributes(_))
            )
        })
        .flat_map(|e| &e.links)
        .filter_map(|l| match &l.variant {
            Some(link::Variant::WorkflowEvent(w)) => w.reference.clone(),
            _ => None,
        })
        .map(|r| match r {
            link::workflow_event::Reference::EventRef(e) => e.event_type(),
            link::workflow_event::Reference::RequestIdRef(r) => r.event_type(),
        })
        .collect();
    assert_eq!(
        referenced,
        [
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowExecutionOptionsUpdated
        ],
        "{join_history:#?}"
    );
    assert!(
        join["error"].to_string().contains("CancelledError"),
        "{all}"
    );

    // The inbound layers saw every start and cancel.
    let seen = seen.lock().unwrap().clone();
    for expected in [
        "start_operation greet -> started",
        "start_operation fail -> started",
        "start_operation wait -> error",
        "cancel_operation wait -> cancel accepted",
    ] {
        assert!(seen.iter().any(|s| s == expected), "{expected}: {seen:?}");
    }

    stop(worker).await;
    nexus::delete_endpoint(&client, &endpoint).await.unwrap();
}
