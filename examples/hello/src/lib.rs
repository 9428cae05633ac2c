//! The demo's plugin, workflow and activity, in a library so its tests can use them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use trellis_client::ClientConfig;
use trellis_client::interceptors::{ClientCall, ClientCallResponse};
use trellis_converter::AesGcmCodec;
use trellis_core_proto::Payload;
use trellis_interceptor::{BoxError, Next, from_fn};
use trellis_plugin_simple::SimplePlugin;
use trellis_worker::interceptors::ActivityRequest;
use trellis_worker::{
    ActivityContext, ActivityError, Interceptor, WorkerConfig, WorkflowContext, WorkflowDefinition,
    WorkflowError,
};

/// Composes a greeting: `("Hello", "world")` → `"Hello, world!"`.
pub async fn compose_greeting(
    ctx: ActivityContext,
    (greeting, name): (String, String),
) -> Result<String, ActivityError> {
    println!(
        "  activity {} (attempt {}) composing a greeting for {name:?}",
        ctx.info().activity_type,
        ctx.info().attempt
    );
    Ok(format!("{greeting}, {name}!"))
}

/// Calls `compose_greeting`, then waits half a second on a durable timer.
pub async fn greet(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    let greeting: String = ctx
        .activity("compose_greeting")
        .args(("Hello", &name))
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    ctx.timer(Duration::from_millis(500)).await;
    Ok(greeting)
}

/// What the demo's hooks report, in the order they ran.
pub type HookLog = Arc<Mutex<Vec<String>>>;

fn note(log: &HookLog, line: impl Into<String>) {
    log.lock().expect("hook log").push(line.into());
}

/// The demo's plugin: the `Greet` workflow, the `compose_greeting` activity, an encryption
/// codec (added on top of whatever converter the user has) and an interceptor that reports the
/// client calls and activity attempts it sees — all in one value a user adds to a client with
/// one line. Every hook notes itself in `log`.
pub fn greetings_plugin(log: HookLog) -> SimplePlugin {
    let (on_codec, on_workflows, on_context) = (log.clone(), log.clone(), log.clone());
    SimplePlugin::new("hello.greetings")
        .data_converter_with(move |dc| {
            note(
                &on_codec,
                format!(
                    "configure_client: add the encryption codec (the converter had {} codecs)",
                    dc.codecs().len()
                ),
            );
            dc.with_codec(AesGcmCodec::new("hello-demo-key", DEMO_KEY))
        })
        .interceptor(Reporter(log))
        .workflows_with(move |existing| {
            note(
                &on_workflows,
                format!(
                    "configure_worker: add workflow Greet (the worker had {})",
                    existing.len()
                ),
            );
            existing
                .into_iter()
                .chain([WorkflowDefinition::new("Greet", greet)])
                .collect()
        })
        .activity("compose_greeting", compose_greeting)
        .run_context(move |scope, run| {
            let log = on_context.clone();
            Box::pin(async move {
                note(&log, format!("run_context: enter ({scope:?})"));
                let result = run.await;
                note(&log, "run_context: exit (the worker stopped)");
                result
            })
        })
}

/// A demo key; a real plugin reads its key from a secret store.
const DEMO_KEY: [u8; 32] = *b"trellis-demo-key-32-bytes-long!!";

/// An interceptor with a client part and a worker part.
struct Reporter(HookLog);

impl Interceptor for Reporter {
    fn intercept_client(&self, config: ClientConfig) -> ClientConfig {
        note(
            &self.0,
            "configure_client: add the interceptor's client layer",
        );
        let log = self.0.clone();
        config.call_layer(from_fn(
            move |call: ClientCall, next: Next<ClientCall, ClientCallResponse, BoxError>| {
                note(&log, format!("client interceptor: {}", call.name()));
                next.run(call)
            },
        ))
    }

    fn intercept_worker(&self, config: WorkerConfig) -> WorkerConfig {
        note(
            &self.0,
            "configure_worker: add the interceptor's activity layer",
        );
        let log = self.0.clone();
        config.activity_layer(from_fn(
            move |req: ActivityRequest, next: Next<ActivityRequest, Payload, BoxError>| {
                let log = log.clone();
                async move {
                    let name = req.context.info().activity_type.clone();
                    note(&log, format!("activity interceptor: {name} starts"));
                    let out = next.run(req).await;
                    note(&log, format!("activity interceptor: {name} finished"));
                    out
                }
            },
        ))
    }
}
