//! The plugin conformance suite: every behaviour of the reference plugin semantics, in Trellis
//! terms, against the real dev server.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use trellis_client::interceptors::{ClientCall, ClientCallResponse};
use trellis_client::plugin::{ConnectNext, ServiceClient};
use trellis_client::{
    BoxFuture, ClientConfig, ClientError, ClientPlugin, ConnectConfig, WorkflowOptions,
};
use trellis_converter::{AesGcmCodec, DataConverter, ZstdCodec};
use trellis_core_proto::Payload;
use trellis_core_proto::encode_message;
use trellis_interceptor::grpc::{GrpcRequest, GrpcResponse};
use trellis_interceptor::{BoxError, Next, from_fn};
use trellis_plugin_simple::testing::TestEnv;
use trellis_plugin_simple::{RunScope, SimplePlugin};
use trellis_replayer::history;
use trellis_replayer::{Replayer, ReplayerConfig};
use trellis_worker::interceptors::ActivityRequest;
use trellis_worker::plugin::{ReplayNext, RunNext, worker_side};
use trellis_worker::replay::{ReplayHistories, ReplayResult};
use trellis_worker::{
    ActivityContext, ActivityError, Interceptor, Worker, WorkerConfig, WorkerError, WorkerPlugin,
    WorkflowContext, WorkflowError,
};

type Log = Arc<Mutex<Vec<String>>>;

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

async fn compose(_ctx: ActivityContext, name: String) -> Result<String, ActivityError> {
    Ok(format!("Hello, {name}!"))
}

async fn greet(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    Ok(ctx
        .activity("compose")
        .arg(&name)
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?)
}

async fn other(_ctx: ActivityContext, _: ()) -> Result<String, ActivityError> {
    Ok("other".into())
}

fn greeter(name: &str) -> SimplePlugin {
    SimplePlugin::new(name)
        .workflow("Greet", greet)
        .activity("compose", compose)
}

/// A plugin implementing both traits directly, recording every hook it sees.
struct Recorder {
    name: &'static str,
    log: Log,
}

impl Recorder {
    fn new(name: &'static str, log: &Log) -> Arc<Self> {
        Arc::new(Self {
            name,
            log: log.clone(),
        })
    }

    fn note(&self, what: &str) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} {what}", self.name));
    }
}

impl ClientPlugin for Recorder {
    fn name(&self) -> &str {
        self.name
    }

    fn configure_client(&self, config: ClientConfig) -> Result<ClientConfig, BoxError> {
        self.note("configure_client");
        Ok(config)
    }

    fn connect_service_client<'a>(
        &'a self,
        config: ConnectConfig,
        next: ConnectNext<'a>,
    ) -> BoxFuture<'a, Result<ServiceClient, BoxError>> {
        Box::pin(async move {
            self.note("connect enter");
            let r = next.run(config).await;
            self.note("connect exit");
            r
        })
    }

    fn worker_side(self: Arc<Self>) -> Option<Arc<dyn Any + Send + Sync>> {
        Some(worker_side(self))
    }
}

impl WorkerPlugin for Recorder {
    fn name(&self) -> &str {
        self.name
    }

    fn configure_worker(&self, config: WorkerConfig) -> Result<WorkerConfig, BoxError> {
        self.note("configure_worker");
        Ok(config)
    }

    fn run_worker<'a>(
        &'a self,
        worker: Worker,
        next: RunNext<'a>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.note("run_worker enter");
            let r = next.run(worker).await;
            self.note("run_worker exit");
            r
        })
    }

    fn configure_replayer(&self, config: ReplayerConfig) -> Result<ReplayerConfig, BoxError> {
        self.note("configure_replayer");
        Ok(config)
    }

    fn run_replayer<'a>(
        &'a self,
        histories: ReplayHistories,
        next: ReplayNext<'a>,
    ) -> BoxFuture<'a, Result<Vec<ReplayResult>, BoxError>> {
        Box::pin(async move {
            self.note("run_replayer enter");
            let r = next.run(histories).await;
            self.note("run_replayer exit");
            r
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_in_order_with_two_client_plugins_and_one_worker_plugin() {
    let log: Log = Arc::default();
    let env = TestEnv::new()
        .plugin(Recorder::new("a", &log))
        .plugin(Recorder::new("b", &log))
        .worker_plugin(Recorder::new("c", &log))
        .worker_config(|c| c.workflow("Greet", greet).activity("compose", compose))
        .start()
        .await
        .unwrap();
    let out: String = env.execute("Greet", "order").await.unwrap();
    assert_eq!(out, "Hello, order!");
    env.shutdown().await.unwrap();
    assert_eq!(
        entries(&log),
        [
            "a configure_client",
            "b configure_client",
            "a connect enter",
            "b connect enter",
            "b connect exit",
            "a connect exit",
            "a configure_worker",
            "b configure_worker",
            "c configure_worker",
            "a run_worker enter",
            "b run_worker enter",
            "c run_worker enter",
            "c run_worker exit",
            "b run_worker exit",
            "a run_worker exit",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_nothing_of_its_own_runs_what_a_client_plugin_supplies() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let plugin = greeter("acme.greeter")
        .codec(AesGcmCodec::new("plugin-key", [3; 32]))
        .interceptor(ActivityCounter(counted));
    let env = TestEnv::new().plugin(plugin).start().await.unwrap();
    let handle = env
        .client()
        .start_workflow("Greet", "secret-name", env.options())
        .await
        .unwrap();
    let out: String = handle.result().await.unwrap();
    assert_eq!(out, "Hello, secret-name!");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the interceptor ran once");

    // The plugin's codec is applied: the raw history holds no plaintext, and names the key.
    let raw = encode_message(&handle.fetch_history().await.unwrap());
    for needle in ["secret-name", "Hello, secret-name!"] {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle:?} is in plaintext in the history"
        );
    }
    assert!(raw.windows(10).any(|w| w == b"plugin-key"));
    env.shutdown().await.unwrap();
}

/// Counts activity attempts on the worker side.
struct ActivityCounter(Arc<AtomicUsize>);

impl Interceptor for ActivityCounter {
    fn intercept_worker(&self, config: WorkerConfig) -> WorkerConfig {
        let calls = self.0.clone();
        config.activity_layer(from_fn(
            move |req: ActivityRequest, next: Next<ActivityRequest, Payload, BoxError>| {
                calls.fetch_add(1, Ordering::SeqCst);
                next.run(req)
            },
        ))
    }
}

/// Counts client calls and activity attempts.
#[derive(Clone, Default)]
struct Both {
    client_calls: Arc<AtomicUsize>,
    activity_calls: Arc<AtomicUsize>,
}

impl Interceptor for Both {
    fn intercept_client(&self, config: ClientConfig) -> ClientConfig {
        let calls = self.client_calls.clone();
        config.call_layer(from_fn(
            move |call: ClientCall, next: Next<ClientCall, ClientCallResponse, BoxError>| {
                if matches!(call, ClientCall::StartWorkflow(_)) {
                    calls.fetch_add(1, Ordering::SeqCst);
                }
                next.run(call)
            },
        ))
    }

    fn intercept_worker(&self, config: WorkerConfig) -> WorkerConfig {
        ActivityCounter(self.activity_calls.clone()).intercept_worker(config)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interceptor_runs_exactly_once_per_call_wherever_the_plugin_sits() {
    for (place, on_client, on_worker) in [
        ("client", true, false),
        ("worker", false, true),
        ("both", true, true),
    ] {
        let both = Both::default();
        let plugin = SimplePlugin::new("acme.intercepted").interceptor(both.clone());
        let mut env = TestEnv::new()
            .worker_config(|c| c.workflow("Greet", greet).activity("compose", compose));
        if on_client {
            env = env.plugin(plugin.clone());
        }
        if on_worker {
            env = env.worker_plugin(plugin.clone());
        }
        let env = env.start().await.unwrap();
        let before = both.client_calls.load(Ordering::SeqCst);
        let out: String = env.execute("Greet", place).await.unwrap();
        assert_eq!(out, format!("Hello, {place}!"));
        let client_calls = both.client_calls.load(Ordering::SeqCst) - before;
        // One start when the plugin is on the client (client interceptors are not worker
        // interceptors: nothing of the worker's traffic is a client call).
        assert_eq!(
            client_calls,
            usize::from(on_client),
            "client calls with the plugin on the {place}"
        );
        assert_eq!(
            both.activity_calls.load(Ordering::SeqCst),
            1,
            "activity calls with the plugin on the {place}"
        );
        env.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_see_the_existing_value_values_append_and_an_empty_list_clears() {
    let seen: Log = Arc::default();
    let seen_by_fn = seen.clone();
    let plugin = SimplePlugin::new("acme.lists")
        // A value appends to the worker's own activity.
        .activity("compose", compose)
        // A function sees what is there and replaces it.
        .workflows_with(move |existing| {
            let mut names = seen_by_fn.lock().unwrap();
            names.extend(existing.iter().map(|d| d.name().to_owned()));
            existing
                .into_iter()
                .filter(|d| d.name() != "Dropped")
                .chain([trellis_worker::WorkflowDefinition::new("Greet", greet)])
                .collect()
        });
    let client = trellis_testing::client_with(ClientConfig::new("unused").plugin(plugin)).await;
    let worker = Worker::new(
        &client,
        WorkerConfig::new(trellis_testing::unique("lists"))
            .workflow("Dropped", greet)
            .workflow("Kept", greet)
            .activity("other", other),
    )
    .await
    .unwrap();
    assert_eq!(entries(&seen), ["Dropped", "Kept"]);
    assert_eq!(worker.workflow_names(), ["Greet", "Kept"]);
    assert_eq!(worker.activity_names(), ["compose", "other"]);

    // A function returning an empty list clears: the worker keeps only the workflows.
    let clears = SimplePlugin::new("acme.clears").activities_with(|_| Vec::new());
    let client = trellis_testing::client_with(ClientConfig::new("unused").plugin(clears)).await;
    let worker = Worker::new(
        &client,
        WorkerConfig::new(trellis_testing::unique("clears"))
            .workflow("Greet", greet)
            .activity("other", other),
    )
    .await
    .unwrap();
    assert!(worker.activity_names().is_empty());
    assert_eq!(worker.workflow_names(), ["Greet"]);

    // A single value replaces; a function sees the existing one and keeps the user's codec.
    let user = DataConverter::default().with_codec(ZstdCodec::new());
    let replaced = SimplePlugin::new("acme.replace").data_converter(DataConverter::default());
    let client = trellis_testing::client_with(
        ClientConfig::new("unused")
            .data_converter(user.clone())
            .plugin(replaced),
    )
    .await;
    assert!(client.data_converter().codecs().is_empty());
    let codecs_seen = Arc::new(AtomicUsize::new(usize::MAX));
    let seen_codecs = codecs_seen.clone();
    let layered = SimplePlugin::new("acme.layered")
        .data_converter_with(move |dc| {
            seen_codecs.store(dc.codecs().len(), Ordering::SeqCst);
            dc
        })
        .codec(AesGcmCodec::new("k", [1; 32]));
    let client = trellis_testing::client_with(
        ClientConfig::new("unused")
            .data_converter(user)
            .plugin(layered),
    )
    .await;
    assert_eq!(
        codecs_seen.load(Ordering::SeqCst),
        1,
        "saw the user's codec"
    );
    assert_eq!(
        client.data_converter().codecs().len(),
        2,
        "kept it, added one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_instance_twice_is_applied_once_and_two_sources_of_a_name_are_named() {
    // The same instance on client and worker: applied once, so no duplicate names.
    let plugin = greeter("acme.greeter");
    let env = TestEnv::new()
        .plugin(plugin.clone())
        .worker_plugin(plugin)
        .start()
        .await
        .unwrap();
    let out: String = env.execute("Greet", "once").await.unwrap();
    assert_eq!(out, "Hello, once!");
    env.shutdown().await.unwrap();

    // Two different plugins adding the same activity name: the error names both.
    let err = TestEnv::new()
        .plugin(greeter("acme.one"))
        .worker_plugin(SimplePlugin::new("acme.two").activity("compose", compose))
        .start()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WorkerError::Duplicate { .. }), "{msg}");
    assert!(
        msg.contains("\"compose\"") && msg.contains("acme.one") && msg.contains("acme.two"),
        "{msg}"
    );

    // Nothing registered anywhere: the error says neither the worker nor its plugins did.
    let err = TestEnv::new()
        .plugin(SimplePlugin::new("acme.empty"))
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("acme.empty"), "{err}");
}

/// A plugin whose hook fails.
struct Failing(&'static str);

impl ClientPlugin for Failing {
    fn name(&self) -> &str {
        "acme.failing"
    }

    fn configure_client(&self, config: ClientConfig) -> Result<ClientConfig, BoxError> {
        if self.0 == "configure_client" {
            return Err("no licence key".into());
        }
        Ok(config)
    }

    fn connect_service_client<'a>(
        &'a self,
        config: ConnectConfig,
        next: ConnectNext<'a>,
    ) -> BoxFuture<'a, Result<ServiceClient, BoxError>> {
        if self.0 == "connect_service_client" {
            return Box::pin(async { Err("the vault is sealed".into()) });
        }
        Box::pin(next.run(config))
    }

    fn worker_side(self: Arc<Self>) -> Option<Arc<dyn Any + Send + Sync>> {
        Some(worker_side(self))
    }
}

impl WorkerPlugin for Failing {
    fn name(&self) -> &str {
        "acme.failing"
    }

    fn configure_worker(&self, config: WorkerConfig) -> Result<WorkerConfig, BoxError> {
        if self.0 == "configure_worker" {
            return Err("bad worker settings".into());
        }
        Ok(config)
    }

    fn run_worker<'a>(
        &'a self,
        worker: Worker,
        next: RunNext<'a>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        if self.0 == "run_worker" {
            return Box::pin(async { Err("cannot open the metrics sink".into()) });
        }
        Box::pin(next.run(worker))
    }

    fn configure_replayer(&self, config: ReplayerConfig) -> Result<ReplayerConfig, BoxError> {
        if self.0 == "configure_replayer" {
            return Err("bad replayer settings".into());
        }
        Ok(config)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_is_an_error_naming_the_plugin_and_the_hook() {
    trellis_testing::client().await; // the server is up
    for hook in ["configure_client", "connect_service_client"] {
        let err = trellis_client::Client::connect(
            ClientConfig::new(trellis_testing::server_address()).plugin(Failing(hook)),
        )
        .await
        .unwrap_err();
        let ClientError::Plugin {
            plugin, hook: h, ..
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!((plugin.as_str(), *h), ("acme.failing", hook), "{err}");
    }

    let err = TestEnv::new()
        .plugin(Failing("configure_worker"))
        .worker_config(|c| c.workflow("Greet", greet))
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WorkerError::Plugin { plugin, hook: "configure_worker", .. } if plugin == "acme.failing"),
        "{err}"
    );
    assert!(err.to_string().contains("bad worker settings"), "{err}");

    let env = TestEnv::new()
        .plugin(Failing("run_worker"))
        .worker_config(|c| c.workflow("Greet", greet))
        .start()
        .await
        .unwrap();
    let err = env.shutdown().await.unwrap_err();
    assert!(
        matches!(&err, WorkerError::Plugin { plugin, hook: "run_worker", .. } if plugin == "acme.failing"),
        "{err}"
    );

    let err = Replayer::new(
        ReplayerConfig::new(WorkerConfig::new("replay").workflow("Greet", greet))
            .plugin(Failing("configure_replayer")),
    )
    .unwrap_err();
    assert!(err.to_string().contains("acme.failing"), "{err}");
    assert!(err.to_string().contains("configure_replayer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_service_client_changes_the_target_and_its_layer_sees_every_rpc() {
    struct Redirect {
        to: String,
        rpcs: Log,
    }
    impl ClientPlugin for Redirect {
        fn connect_service_client<'a>(
            &'a self,
            mut config: ConnectConfig,
            next: ConnectNext<'a>,
        ) -> BoxFuture<'a, Result<ServiceClient, BoxError>> {
            config.address = self.to.clone();
            let rpcs = self.rpcs.clone();
            let layer = from_fn(
                move |req: GrpcRequest, next: Next<GrpcRequest, GrpcResponse, BoxError>| {
                    let method = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
                    rpcs.lock().unwrap().push(method);
                    next.run(req)
                },
            );
            config
                .grpc_layers
                .push(trellis_client::GrpcLayer::new(layer));
            Box::pin(next.run(config))
        }
    }
    trellis_testing::client().await; // the server is up
    let rpcs: Log = Arc::default();
    let client = trellis_client::Client::connect(
        // Nothing listens on port 1: only the plugin's redirect makes this work.
        ClientConfig::new("127.0.0.1:1").plugin(Redirect {
            to: trellis_testing::server_address().to_owned(),
            rpcs: rpcs.clone(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        client.config().connect.address,
        trellis_testing::server_address()
    );
    let tq = trellis_testing::unique("redirect");
    let worker = Worker::new(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Greet", greet)
            .activity("compose", compose),
    )
    .await
    .unwrap();
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    let out: String = client
        .start_workflow(
            "Greet",
            "redirected",
            WorkflowOptions::new(trellis_testing::unique("wf"), &tq),
        )
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(out, "Hello, redirected!");
    stop.shutdown();
    run.await.unwrap().unwrap();
    let seen = entries(&rpcs);
    for rpc in [
        "StartWorkflowExecution",
        "PollWorkflowTaskQueue",
        "RespondWorkflowTaskCompleted",
        "PollActivityTaskQueue",
        "RespondActivityTaskCompleted",
        "GetWorkflowExecutionHistory",
    ] {
        assert!(seen.iter().any(|s| s == rpc), "{rpc} not seen in {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_context_wraps_worker_runs_and_replays_in_plugin_order() {
    let log: Log = Arc::default();
    let context = |name: &'static str, log: &Log| {
        let log = log.clone();
        SimplePlugin::new(name).run_context(move |scope, run| {
            let log = log.clone();
            Box::pin(async move {
                let kind = match &scope {
                    RunScope::Worker { .. } => "worker",
                    _ => "replayer",
                };
                log.lock().unwrap().push(format!("{name} enter {kind}"));
                let r = run.await;
                log.lock().unwrap().push(format!("{name} exit {kind}"));
                r
            })
        })
    };
    let env = TestEnv::new()
        .plugin(context("a", &log))
        .plugin(context("b", &log))
        .plugin(greeter("acme.greeter"))
        .start()
        .await
        .unwrap();
    let handle = env
        .client()
        .start_workflow("Greet", "ctx", env.options())
        .await
        .unwrap();
    let _: String = handle.result().await.unwrap();
    let recorded = history::fetch(env.client(), handle.id(), None)
        .await
        .unwrap();
    env.shutdown().await.unwrap();
    assert_eq!(
        entries(&log),
        [
            "a enter worker",
            "b enter worker",
            "b exit worker",
            "a exit worker"
        ]
    );

    // A replayer with nothing of its own: its workflows and context come from plugins.
    log.lock().unwrap().clear();
    let replayer = Replayer::new(
        ReplayerConfig::new(WorkerConfig::new("replay"))
            .plugin(context("a", &log))
            .plugin(context("b", &log))
            .plugin(greeter("acme.greeter")),
    )
    .unwrap();
    for _ in 0..2 {
        let r = replayer.replay(recorded.clone()).await.unwrap();
        assert!(r.is_ok(), "{r}");
    }
    assert_eq!(
        entries(&log),
        [
            "a enter replayer",
            "b enter replayer",
            "b exit replayer",
            "a exit replayer",
        ]
        .repeat(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayer_hooks_configure_and_wrap_each_replay_and_a_plugin_codec_decodes() {
    let key = AesGcmCodec::new("replay-key", [9; 32]);
    let env = TestEnv::new()
        .plugin(greeter("acme.greeter").codec(key.clone()))
        .start()
        .await
        .unwrap();
    let handle = env
        .client()
        .start_workflow("Greet", "encrypted", env.options())
        .await
        .unwrap();
    let _: String = handle.result().await.unwrap();
    let recorded = history::fetch(env.client(), handle.id(), None)
        .await
        .unwrap();
    env.shutdown().await.unwrap();

    let log: Log = Arc::default();
    let replayer = Replayer::new(
        ReplayerConfig::new(WorkerConfig::new("replay"))
            .plugin(Recorder::new("a", &log))
            .plugin(greeter("acme.greeter").codec(key))
            .plugin(Recorder::new("b", &log)),
    )
    .unwrap();
    assert_eq!(replayer.config().worker.workflow_names(), ["Greet"]);
    assert_eq!(replayer.config().data_converter.codecs().len(), 1);
    let results = replayer
        .replay_all(vec![recorded.clone(), recorded])
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(
        entries(&log),
        [
            "a configure_replayer",
            "b configure_replayer",
            "a run_replayer enter",
            "b run_replayer enter",
            "b run_replayer exit",
            "a run_replayer exit",
        ]
    );
}

#[derive(Debug, thiserror::Error)]
#[error("the card was declined: {0}")]
struct CardDeclined(String);

async fn charge(_ctx: WorkflowContext, card: String) -> Result<String, WorkflowError> {
    if card == "declined" {
        return Err(CardDeclined(card).into());
    }
    Ok("charged".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_of_a_plugin_failure_type_fails_the_workflow_not_the_task() {
    let env = TestEnv::new()
        .plugin(
            SimplePlugin::new("acme.payments")
                .workflow("Charge", charge)
                .workflow_failure_type::<CardDeclined>(),
        )
        .start()
        .await
        .unwrap();
    let ok: String = env.execute("Charge", "good").await.unwrap();
    assert_eq!(ok, "charged");
    let err = env
        .execute::<_, String>("Charge", "declined")
        .await
        .unwrap_err();
    let ClientError::Workflow(f) = &err else {
        panic!("{err}");
    };
    let app = f.application_failure().expect("an application failure");
    assert_eq!(app.error_type, "CardDeclined");
    assert!(f.message().contains("the card was declined"), "{err}");
    env.shutdown().await.unwrap();
}

/// A run hook that calls `worker.run()` itself instead of `next.run(worker)`.
struct RunsDirectly;

impl WorkerPlugin for RunsDirectly {
    fn run_worker<'a>(
        &'a self,
        worker: Worker,
        _next: RunNext<'a>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move { Ok(worker.run().await?) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_hook_calling_worker_run_runs_the_worker_not_the_chain_again() {
    let env = TestEnv::new()
        .worker_plugin(RunsDirectly)
        .worker_config(|c| c.workflow("Greet", greet).activity("compose", compose))
        .start()
        .await
        .unwrap();
    let out: String = env.execute("Greet", "direct").await.unwrap();
    assert_eq!(out, "Hello, direct!");
    env.shutdown().await.unwrap();
}

/// Nexus services follow the list rules: a value appends, a function replaces (empty clears);
/// a duplicate service name names both sources, the plugin's included; a worker with only a
/// plugin's Nexus service is valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexus_services_append_replace_and_name_their_plugin() {
    use trellis_worker::nexus::NexusServiceHandler;
    let echo = || {
        NexusServiceHandler::new("EchoService")
            .sync_operation("echo", |_ctx, text: String| async move { Ok(text) })
    };
    let adds = SimplePlugin::new("acme.echo").nexus_service(echo());
    let config = WorkerConfig::new("q")
        .nexus_service(NexusServiceHandler::new("Own"))
        .plugin(adds.clone())
        .apply_plugins()
        .unwrap();
    assert_eq!(config.nexus_service_names(), ["Own", "EchoService"]);

    let replaces = SimplePlugin::new("acme.only").nexus_services_with(|existing| {
        existing.into_iter().filter(|s| s.name() != "Own").collect()
    });
    let config = WorkerConfig::new("q")
        .nexus_service(NexusServiceHandler::new("Own"))
        .nexus_service(NexusServiceHandler::new("Kept"))
        .plugin(replaces)
        .apply_plugins()
        .unwrap();
    assert_eq!(config.nexus_service_names(), ["Kept"]);

    let err = WorkerConfig::new("q")
        .nexus_service(echo())
        .plugin(adds.clone())
        .apply_plugins()
        .unwrap()
        .nexus_inbound_service()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "duplicate Nexus service name \"EchoService\": registered by the worker's configuration \
         and by plugin \"acme.echo\""
    );

    // Only a plugin's Nexus service: the worker starts (validation counts Nexus services).
    let client = trellis_testing::client().await;
    let worker = Worker::new(
        &client,
        WorkerConfig::new(trellis_testing::unique("nexus-only")).plugin(adds),
    )
    .await
    .unwrap();
    assert_eq!(worker.nexus_service_names(), ["EchoService"]);
}
