//! `interop-worker`: a Trellis worker that other SDKs' tests drive. Its contract is in
//! `docs/interop.md` and stays stable:
//!
//! ```text
//! interop-worker --task-queue TQ [--address HOST:PORT] [--namespace NS]
//!                [--encryption-key-id ID --encryption-key-file PATH] [--nexus-endpoint NAME]
//! ```
//!
//! It prints `ready` on stdout once it polls, and stops gracefully on Ctrl-C / SIGTERM or when
//! stdin closes.

use std::time::Duration;

use serde::Deserialize;
use trellis_client::converter::{AesGcmCodec, FailureConverter};
use trellis_client::{Client, ClientConfig, DataConverter, WorkflowOptions};
use trellis_worker::nexus::{HandlerErrorType, NexusError, NexusServiceHandler};
use trellis_worker::{
    ActivityContext, ActivityError, ApplicationFailure, RawValue, Worker, WorkerConfig,
    WorkflowContext, WorkflowError,
};

struct Args {
    address: String,
    namespace: String,
    task_queue: String,
    encryption: Option<(String, std::path::PathBuf)>,
    nexus_endpoint: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut address = "127.0.0.1:7233".to_owned();
    let mut namespace = "default".to_owned();
    let mut task_queue = None;
    let mut key_id = None;
    let mut key_file = None;
    let mut nexus_endpoint = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--address" => address = value()?,
            "--namespace" => namespace = value()?,
            "--task-queue" => task_queue = Some(value()?),
            "--encryption-key-id" => key_id = Some(value()?),
            "--encryption-key-file" => key_file = Some(std::path::PathBuf::from(value()?)),
            "--nexus-endpoint" => nexus_endpoint = Some(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let encryption = match (key_id, key_file) {
        (Some(id), Some(file)) => Some((id, file)),
        (None, None) => None,
        _ => return Err("--encryption-key-id and --encryption-key-file go together".into()),
    };
    Ok(Args {
        address,
        namespace,
        task_queue: task_queue.ok_or("--task-queue is required")?,
        encryption,
        nexus_endpoint,
    })
}

async fn compose_greeting(
    _ctx: ActivityContext,
    (greeting, name): (String, String),
) -> Result<String, ActivityError> {
    Ok(format!("{greeting}, {name}!"))
}

async fn echo(_ctx: ActivityContext, value: RawValue) -> Result<RawValue, ActivityError> {
    Ok(value)
}

fn activity_options(call: trellis_worker::ActivityCall) -> trellis_worker::ActivityCall {
    call.start_to_close_timeout(Duration::from_secs(30))
}

async fn greet(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    Ok(
        activity_options(ctx.activity("compose_greeting").args(("Hello", name)))
            .run()
            .await?,
    )
}

async fn echo_workflow(ctx: WorkflowContext, value: RawValue) -> Result<RawValue, WorkflowError> {
    Ok(activity_options(ctx.activity("echo").arg(&value))
        .run()
        .await?)
}

async fn sleep(ctx: WorkflowContext, millis: u64) -> Result<u64, WorkflowError> {
    // A cancellation request while waiting closes the run as cancelled (dropping the timer
    // cancels it).
    let timer = ctx.timer(Duration::from_millis(millis));
    let cancelled = ctx.cancelled();
    futures::pin_mut!(timer, cancelled);
    match futures::future::select(timer, cancelled).await {
        futures::future::Either::Left(((), _)) => Ok(millis),
        futures::future::Either::Right(_) => Err(WorkflowError::cancelled()),
    }
}

#[derive(Deserialize)]
struct FailInput {
    #[serde(rename = "type")]
    error_type: String,
    message: String,
    #[serde(default)]
    non_retryable: bool,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

async fn fail(ctx: WorkflowContext, input: FailInput) -> Result<(), WorkflowError> {
    let details = input
        .details
        .iter()
        .map(|d| ctx.data_converter().encode(d))
        .collect::<Result<Vec<_>, _>>()?;
    Err(ApplicationFailure {
        non_retryable: input.non_retryable,
        ..ApplicationFailure::new(input.error_type, input.message).with_details(details)
    }
    .into())
}

/// Reads whatever it is given the way a Trellis workflow would, and says what it found.
async fn inspect(
    ctx: WorkflowContext,
    value: RawValue,
) -> Result<serde_json::Value, WorkflowError> {
    use trellis_client::converter::{Proto, ProtoJson};
    use trellis_core_proto::PayloadExt;
    use trellis_core_proto::api::common::v1::WorkflowExecution;
    let dc = ctx.data_converter();
    let p = &value.0;
    let encoding = p.encoding().unwrap_or_default().to_owned();
    let message_type = p.metadata_str("messageType").unwrap_or_default().to_owned();
    let found = match encoding.as_str() {
        "json/plain" => serde_json::json!({ "value": dc.decode::<serde_json::Value>(p)? }),
        "binary/plain" => serde_json::json!({ "length": p.data.len() }),
        "binary/null" => serde_json::json!({}),
        "json/protobuf" => {
            let ProtoJson(m) = dc.decode::<ProtoJson<WorkflowExecution>>(p)?;
            serde_json::json!({ "workflowId": m.workflow_id, "runId": m.run_id })
        }
        "binary/protobuf" => {
            let Proto(m) = dc.decode::<Proto<WorkflowExecution>>(p)?;
            serde_json::json!({ "workflowId": m.workflow_id, "runId": m.run_id })
        }
        other => {
            return Err(
                ApplicationFailure::new("UnknownEncoding", format!("cannot read {other}")).into(),
            );
        }
    };
    let mut out = serde_json::json!({ "encoding": encoding, "messageType": message_type });
    if let (Some(out), Some(found)) = (out.as_object_mut(), found.as_object()) {
        out.extend(found.clone());
    }
    Ok(out)
}

/// Signals, queries and updates: signal `add` adds to a total, query `total` reads it,
/// update `add_and_get` adds (its validator rejects negatives) and returns the total, update
/// `finish` ends the workflow with the total once every update handler is done.
async fn messages(ctx: WorkflowContext, start: i64) -> Result<i64, WorkflowError> {
    use std::cell::Cell;
    use std::rc::Rc;
    let total = Rc::new(Cell::new(start));
    let done = Rc::new(Cell::new(false));
    let t = total.clone();
    ctx.set_query_handler("total", move |(): ()| t.get());
    let t = total.clone();
    ctx.set_update_handler("add_and_get", move |n: i64| {
        let t = t.clone();
        async move {
            t.set(t.get() + n);
            Ok(t.get())
        }
    });
    ctx.set_update_validator("add_and_get", |n: &i64| {
        if *n < 0 {
            Err(ApplicationFailure::new("Negative", format!("cannot add {n}")).into())
        } else {
            Ok(())
        }
    });
    let d = done.clone();
    ctx.set_update_handler("finish", move |(): ()| {
        let d = d.clone();
        async move {
            d.set(true);
            Ok(())
        }
    });
    let mut adds = ctx.signal_channel::<i64>("add");
    loop {
        let next = adds.recv();
        let finished = ctx.wait_condition(|| done.get());
        futures::pin_mut!(next, finished);
        match futures::future::select(next, finished).await {
            futures::future::Either::Left((n, _)) => total.set(total.get() + n?),
            futures::future::Either::Right(_) => break,
        }
    }
    ctx.all_handlers_finished().await;
    Ok(total.get())
}

#[derive(Deserialize)]
struct ChildInput {
    workflow_type: String,
    task_queue: String,
    arg: serde_json::Value,
}

/// Starts a child workflow (any type, on any task queue — e.g. one a Python worker serves)
/// and returns its result.
async fn parent(
    ctx: WorkflowContext,
    input: ChildInput,
) -> Result<serde_json::Value, WorkflowError> {
    Ok(ctx
        .child_workflow(input.workflow_type)
        .task_queue(input.task_queue)
        .arg(&input.arg)
        .execution_timeout(Duration::from_secs(60))
        .run()
        .await?)
}

/// Continues as new `n` times, carrying how many runs it took; returns that list of run
/// counts.
async fn count_down(ctx: WorkflowContext, (n, runs): (u32, u32)) -> Result<String, WorkflowError> {
    if n > 0 {
        return Err(ctx.continue_as_new(&(n - 1, runs + 1)).into());
    }
    Ok(format!("done after {} runs", runs + 1))
}

#[derive(Deserialize)]
struct NexusCall {
    endpoint: String,
    service: String,
    operation: String,
    #[serde(default)]
    input: serde_json::Value,
}

/// Calls any Nexus operation (e.g. one a Python worker serves) through an endpoint and returns
/// its result; a failed operation fails the workflow with the Nexus failure chain.
async fn call_nexus(
    ctx: WorkflowContext,
    call: NexusCall,
) -> Result<serde_json::Value, WorkflowError> {
    Ok(ctx
        .nexus_client(call.endpoint, call.service)
        .operation_by_name::<serde_json::Value, _>(call.operation, &call.input)
        .schedule_to_close_timeout(Duration::from_secs(60))
        .run()
        .await?)
}

#[derive(Deserialize)]
struct NexusFailure {
    /// A handler error type (`BAD_REQUEST`, `INTERNAL`, ...) or `OPERATION_FAILED`.
    r#type: String,
    message: String,
}

/// The Nexus service `Interop` of the interop contract.
fn interop_nexus_service() -> NexusServiceHandler {
    NexusServiceHandler::new("Interop")
        .sync_operation("greet", |_ctx, name: String| async move {
            Ok(format!("Hello, {name}!"))
        })
        .sync_operation("echo", |_ctx, value: RawValue| async move { Ok(value) })
        .sync_operation("fail", |_ctx, f: NexusFailure| async move {
            let error = match f.r#type.as_str() {
                "OPERATION_FAILED" => NexusError::operation_failed(f.message),
                other => match HandlerErrorType::from_wire_name(other) {
                    Some(t) => NexusError::handler(t, f.message),
                    None => NexusError::bad_request(format!("unknown error type {other:?}")),
                },
            };
            Err::<(), _>(error)
        })
        // Asynchronous operations backed by a run of this worker's workflows (one per
        // request: the workflow id carries the Nexus request id).
        .workflow_run_operation("greet_workflow", |ctx, name: String| async move {
            let id = format!("interop-nexus-greet-{}", ctx.request_id());
            ctx.start_workflow_by_name::<String>("Greet", (name,), WorkflowOptions::new(id, ""))
                .await
        })
        .workflow_run_operation("sleep_workflow", |ctx, millis: u64| async move {
            let id = format!("interop-nexus-sleep-{}", ctx.request_id());
            ctx.start_workflow_by_name::<u64>("Sleep", (millis,), WorkflowOptions::new(id, ""))
                .await
        })
}

/// The worker configuration of the interop contract.
fn worker_config(task_queue: &str) -> WorkerConfig {
    WorkerConfig::new(task_queue)
        .workflow("Greet", greet)
        .workflow("Echo", echo_workflow)
        .workflow("Sleep", sleep)
        .workflow("Fail", fail)
        .workflow("Inspect", inspect)
        .workflow("Messages", messages)
        .workflow("Parent", parent)
        .workflow("CountDown", count_down)
        .workflow("CallNexus", call_nexus)
        .activity("compose_greeting", compose_greeting)
        .activity("echo", echo)
        .nexus_service(interop_nexus_service())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "interop-worker: {e}\nusage: interop-worker --task-queue TQ [--address HOST:PORT] [--namespace NS] [--encryption-key-id ID --encryption-key-file PATH] [--nexus-endpoint NAME]"
            );
            return std::process::ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interop-worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ClientConfig::new(&args.address).namespace(&args.namespace);
    if let Some((key_id, key_file)) = &args.encryption {
        let key = std::fs::read(key_file).map_err(|e| {
            format!(
                "reading the encryption key file {}: {e}",
                key_file.display()
            )
        })?;
        let codec = AesGcmCodec::from_slice(key_id.clone(), &key).map_err(|e| {
            format!(
                "the key file {} must hold 32 raw bytes: {e}",
                key_file.display()
            )
        })?;
        // With encryption on, failure messages and stack traces travel encrypted too.
        let failures = FailureConverter::default().with_encode_common_attributes(true);
        config = config.data_converter(
            DataConverter::default()
                .with_failure_converter(failures)
                .with_codec(codec),
        );
    }
    let client = Client::connect(config).await?;
    if let Some(endpoint) = &args.nexus_endpoint {
        trellis_client::nexus::create_endpoint(&client, endpoint, &args.task_queue).await?;
    }
    let worker = Worker::new(&client, worker_config(&args.task_queue)).await?;
    println!("ready");
    worker
        .run_until(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            let stdin_closed = tokio::task::spawn_blocking(|| {
                let mut sink = String::new();
                while std::io::stdin()
                    .read_line(&mut sink)
                    .map(|n| n > 0)
                    .unwrap_or(false)
                {
                    sink.clear();
                }
            });
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = stdin_closed => {}
            }
        })
        .await?;
    Ok(())
}
