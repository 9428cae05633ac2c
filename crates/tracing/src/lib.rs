//! Tracing for Trellis: [`tracing`] spans for client calls, workflow runs, signals, queries,
//! activities and Nexus operations, joined into one trace by W3C trace context carried in
//! Temporal headers (and Nexus headers).
//!
//! One [`TracingInterceptor`] goes on both sides: [`TracingInterceptor::apply_to_client`] on the
//! [`ClientConfig`] and [`TracingInterceptor::apply_to_worker`] on each [`WorkerConfig`].
//!
//! ```no_run
//! use std::time::Duration;
//! use trellis_client::{Client, ClientConfig, WorkflowOptions};
//! use trellis_tracing::TracingInterceptor;
//! use trellis_worker::{ActivityContext, ActivityError, Worker, WorkerConfig, WorkflowContext, WorkflowError};
//!
//! async fn compose_greeting(_ctx: ActivityContext, name: String) -> Result<String, ActivityError> {
//!     Ok(format!("Hello, {name}!"))
//! }
//!
//! async fn greet(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
//!     Ok(ctx.activity("compose_greeting").arg(&name)
//!         .start_to_close_timeout(Duration::from_secs(10)).run().await?)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! tracing_subscriber::fmt::init(); // or any other `tracing` subscriber
//! let tracing = TracingInterceptor::new();
//! let client = Client::connect(tracing.apply_to_client(ClientConfig::new("127.0.0.1:7233"))).await?;
//! let worker = Worker::new(&client, tracing.apply_to_worker(
//!     WorkerConfig::new("greetings")
//!         .workflow("Greet", greet)
//!         .activity("compose_greeting", compose_greeting),
//! )).await?;
//! tokio::spawn(worker.run());
//!
//! // One trace: temporal.client (StartWorkflow:Greet) → RunWorkflow:Greet →
//! // StartActivity:compose_greeting → RunActivity:compose_greeting.
//! let handle = client.start_workflow("Greet", "world", WorkflowOptions::new("greet-1", "greetings")).await?;
//! let greeting: String = handle.result().await?;
//! # Ok(()) }
//! ```
//!
//! # Spans
//!
//! `tracing` span names are static, so each span has its kind as its name and the full name in
//! the `otel.name` field (which `tracing-opentelemetry` exports as the span's name):
//!
//! | span name | `otel.name` | where | parent |
//! | --- | --- | --- | --- |
//! | `temporal.client` | `StartWorkflow:<type>`, `SignalWithStartWorkflow:<type>`, `SignalWorkflow:<name>`, `QueryWorkflow:<name>`, `GetWorkflowResult`, `CancelWorkflow`, `CompleteActivity`, … | every client call | [`TraceContext::current`], else none |
//! | `RunWorkflow` | `RunWorkflow:<type>` | a workflow run, until it completes (or leaves the worker's cache) | the starting call |
//! | `HandleSignal` | `HandleSignal:<name>` | delivering a signal | the signalling call, else the run |
//! | `HandleQuery` | `HandleQuery:<name>` | answering a query | the querying call, else the run |
//! | `StartActivity` | `StartActivity:<type>` | scheduling an activity, until it resolves | the run |
//! | `RunActivity` | `RunActivity:<type>` | one activity attempt | its `StartActivity` |
//! | `StartNexusOperation` | `StartNexusOperation:<service>/<operation>` | a workflow starting a Nexus operation, until it started (or failed to) | the run |
//! | `RunNexusOperationHandler` | `RunStartNexusOperationHandler:<service>/<operation>`, `RunCancelNexusOperationHandler:<service>/<operation>` | a Nexus handler answering a start or cancel request | the `traceparent` Nexus header (its `StartNexusOperation`), else none |
//!
//! Every span records `trace_id` (32 hex digits), `span_id` (16), `parent_span_id` (when it has
//! a parent), `otel.kind`, `workflow_id`, `run_id` (the workflow's run, when known), `error`
//! (when the call or handler failed), and per kind `call`, `workflow_type`, `signal`, `query`,
//! `activity_type`, `activity_id`, `attempt`, `nexus_endpoint`, `nexus_service`,
//! `nexus_operation`, `nexus_operation_token`. Parent links across processes are these fields;
//! within a process the `tracing` parent is the usual contextual one (the user's current span
//! for client calls, the run's span for `StartActivity`). All spans are at `INFO` level with
//! target `trellis_tracing`.
//!
//! # Propagation
//!
//! The context travels in the [`TRACER_HEADER`] header (`_tracer-data`), the header the
//! OpenTelemetry interceptors of the Python and TypeScript SDKs use: a `json/plain` payload of a
//! JSON object whose `traceparent` entry is `00-<32 hex trace id>-<16 hex span id>-<flags>`.
//! The client writes it on start, signal-with-start, signal and query; the workflow reads it on execute, signal
//! and query, and writes it on every activity it schedules; the activity reads it.
//! An activity attempt runs with its context as [`TraceContext::current`], so client calls it
//! makes continue the trace; wrap other code in [`TraceContext::scope`] to do the same.
//!
//! Nexus headers are strings, not payloads: a workflow's Nexus start carries the context as the
//! W3C [`TRACEPARENT_HEADER`] (`traceparent`) Nexus header, as the Python SDK's OpenTelemetry
//! interceptor does, and the handler side reads it from there. A Nexus handler runs with its
//! span's context as [`TraceContext::current`], so a workflow it starts joins the trace.
//!
//! # Determinism and replay
//!
//! Ids made inside a workflow are derived from the run id and a number that replays identically
//! (the activity's sequence number, the signal's position), never from the OS or the workflow's
//! own random generator; client and activity ids are random. While a run replays, its workflow
//! spans are not emitted — the first execution emitted them — but activity headers are still
//! written, with the same ids, so a span emitted after the replay (e.g. `StartActivity` of the
//! next activity) names the original `RunWorkflow` span as its `parent_span_id`. Queries are
//! never in history, so each one gets its span.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod activity;
mod client;
mod context;
mod nexus;
mod workflow;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};

use trellis_client::ClientConfig;
use trellis_worker::WorkerConfig;

pub use activity::{ActivityTracing, ActivityTracingLayer};
pub use client::{ClientTracing, ClientTracingLayer};
pub use context::{FLAG_SAMPLED, TRACEPARENT_HEADER, TRACER_HEADER, TraceContext};
pub use nexus::{NexusTracing, NexusTracingLayer};

/// The tracing interceptor: install it on the client with
/// [`apply_to_client`](Self::apply_to_client) and on workers with
/// [`apply_to_worker`](Self::apply_to_worker). Cheap to clone; clones are the same interceptor.
#[derive(Clone, Debug)]
pub struct TracingInterceptor {
    instance: u64,
    query_seed: u64,
}

impl Default for TracingInterceptor {
    fn default() -> Self {
        Self::new()
    }
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl TracingInterceptor {
    /// A new interceptor.
    pub fn new() -> Self {
        Self {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            query_seed: rand::random(),
        }
    }

    /// The client-call layer alone, for [`ClientConfig::call_layer`] when the order among other
    /// layers matters (layers added first are outermost).
    pub fn client_layer(&self) -> ClientTracingLayer {
        ClientTracingLayer::new()
    }

    /// The activity layer alone, for [`WorkerConfig::activity_layer`].
    pub fn activity_layer(&self) -> ActivityTracingLayer {
        ActivityTracingLayer::new()
    }

    /// The Nexus inbound layer alone, for [`WorkerConfig::nexus_inbound_layer`].
    pub fn nexus_layer(&self) -> NexusTracingLayer {
        NexusTracingLayer::new()
    }

    /// Adds the client-call layer: a `temporal.client` span around every call of clients built
    /// from `config`, and the trace context in the headers of starts, signals and queries.
    pub fn apply_to_client(&self, config: ClientConfig) -> ClientConfig {
        config.call_layer(self.client_layer())
    }

    /// Adds the activity layer, the workflow inbound and outbound layers and the Nexus inbound
    /// layer (in that order, after the layers `config` already has, so inside them).
    ///
    /// The workflow layers come as a pair: the outbound layer asks the inbound layer's state
    /// of the same run whether the run is replaying, which is why they are not offered
    /// separately.
    pub fn apply_to_worker(&self, config: WorkerConfig) -> WorkerConfig {
        let (instance, query_seed) = (self.instance, self.query_seed);
        config
            .activity_layer(self.activity_layer())
            .workflow_inbound_layer(move |ctx, inner| {
                workflow::inbound(instance, query_seed, ctx, inner)
            })
            .workflow_outbound_layer(move |ctx, inner| workflow::outbound(instance, ctx, inner))
            .nexus_inbound_layer(self.nexus_layer())
    }
}

/// As an [`Interceptor`](trellis_worker::Interceptor), e.g. given to a plugin: its client part
/// goes to clients, its worker part to workers and replayers, once each.
impl trellis_worker::Interceptor for TracingInterceptor {
    fn intercept_client(&self, config: ClientConfig) -> ClientConfig {
        self.apply_to_client(config)
    }

    fn intercept_worker(&self, config: WorkerConfig) -> WorkerConfig {
        self.apply_to_worker(config)
    }
}
