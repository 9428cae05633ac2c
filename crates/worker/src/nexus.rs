//! Nexus: typed service contracts and the handlers a worker serves.
//!
//! A Nexus **service** is a named set of **operations**, each taking an input and producing an
//! output. Callers reach a service through an **endpoint** (created on the server, targeting a
//! worker's task queue; see `trellis_client::nexus::create_endpoint`); the worker polling that
//! task queue runs the handler.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use trellis_worker::WorkerConfig;
//! use trellis_worker::nexus::{NexusError, NexusServiceHandler, Operation, Service};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct City { pub name: String }
//! #[derive(Serialize, Deserialize)]
//! pub struct Forecast { pub city: String, pub celsius: i32 }
//!
//! /// The contract, shared by handler and callers.
//! pub struct WeatherService;
//! impl Service for WeatherService {
//!     const NAME: &'static str = "WeatherService";
//! }
//! impl WeatherService {
//!     pub const GET_WEATHER: Operation<City, Forecast> = Operation::new("get_weather");
//! }
//!
//! let handler = NexusServiceHandler::for_service::<WeatherService>().sync(
//!     WeatherService::GET_WEATHER,
//!     |_ctx, city: City| async move {
//!         if city.name.is_empty() {
//!             return Err(NexusError::bad_request("the city has no name"));
//!         }
//!         Ok(Forecast { city: city.name, celsius: 21 })
//!     },
//! );
//! let config = WorkerConfig::new("weather").nexus_service(handler);
//! ```
//!
//! # Errors
//!
//! A handler returns [`NexusError`]; what the caller sees depends on what it holds:
//! - a [`HandlerError`] is a Nexus handler error of its [`HandlerErrorType`] (retryable or not:
//!   the caller's server retries retryable ones until the operation's timeout);
//! - an [`OperationError`] **fails** or **cancels** the operation (never retried); the caller
//!   gets a Nexus operation error whose cause carries the message;
//! - any other error (with `?`) is an `INTERNAL` handler error carrying the error as its cause;
//!   an [`ApplicationFailure`] marked non-retryable makes it non-retryable.
//!
//! An unknown service or operation is a `NOT_FOUND` handler error; input that does not decode
//! into the operation's input type is `BAD_REQUEST`; a panic in a handler is an `INTERNAL`
//! handler error and the worker keeps running.
//!
//! # Operations
//!
//! - [`NexusServiceHandler::sync_operation`] / [`NexusServiceHandler::sync`]: the result is
//!   returned in the start response (a sync operation should finish within seconds).
//! - [`NexusServiceHandler::workflow_run`] / [`NexusServiceHandler::workflow_run_operation`]:
//!   the start starts a workflow (with the caller's completion callback and links attached)
//!   and returns a [`WorkflowRunToken`]; the workflow's outcome completes the operation, and a
//!   cancel request cancels the workflow.
//! - [`NexusServiceHandler::async_operation`]: the start returns an operation token; something
//!   else delivers the result to the request's callback later, and cancel requests for the
//!   token reach the operation's cancel function.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_client::Client;
use trellis_converter::{
    ApplicationFailure, CancelledFailure, DataConverter, FailureConverter, NexusHandlerFailure,
    PayloadConverterExt, TemporalFailure,
};
use trellis_core_proto::Failure;
use trellis_core_proto::Payload;
use trellis_core_proto::api::enums::v1::NexusHandlerErrorRetryBehavior;
use trellis_interceptor::BoxError;

use crate::error::WorkerError;
use crate::interceptors::{
    NexusHeaders, NexusInbound, NexusInboundResponse, NexusLink, NexusService, NexusTaskInfo,
};

pub(crate) mod runner;
mod workflow_run;

pub use workflow_run::{InvalidToken, WorkflowRunContext, WorkflowRunHandle, WorkflowRunToken};

/// A Nexus service contract: its name. Pair it with [`Operation`] constants naming the
/// operations and their types (see the [module docs](self)), so the handler and every caller
/// agree on names and types at compile time.
pub trait Service {
    /// The service name callers address.
    const NAME: &'static str;
}

/// An operation of a Nexus service contract: its name, input type `I` and output type `O`.
pub struct Operation<I, O> {
    name: &'static str,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Operation<I, O> {
    /// The operation named `name` (usable in `const` items).
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            _types: PhantomData,
        }
    }

    /// The operation name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<I, O> Clone for Operation<I, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<I, O> Copy for Operation<I, O> {}

impl<I, O> std::fmt::Debug for Operation<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("input", &std::any::type_name::<I>())
            .field("output", &std::any::type_name::<O>())
            .finish()
    }
}

/// The predefined Nexus handler error types (the Nexus specification's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandlerErrorType {
    /// The request is invalid (e.g. the input does not decode). Not retried.
    BadRequest,
    /// The caller is not authenticated. Not retried.
    Unauthenticated,
    /// The caller may not do this. Not retried.
    Unauthorized,
    /// The service or operation does not exist. Not retried.
    NotFound,
    /// The request took longer than its deadline. Retried.
    RequestTimeout,
    /// The request conflicts with the current state. Not retried.
    Conflict,
    /// A limit was hit (rate, quota). Retried.
    ResourceExhausted,
    /// The handler failed unexpectedly. Retried.
    Internal,
    /// The handler does not implement this. Not retried.
    NotImplemented,
    /// The handler is temporarily unavailable. Retried.
    Unavailable,
    /// A service the handler called timed out. Retried.
    UpstreamTimeout,
}

impl HandlerErrorType {
    /// The wire name, e.g. `BAD_REQUEST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BAD_REQUEST",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::NotFound => "NOT_FOUND",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::Conflict => "CONFLICT",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::Internal => "INTERNAL",
            Self::NotImplemented => "NOT_IMPLEMENTED",
            Self::Unavailable => "UNAVAILABLE",
            Self::UpstreamTimeout => "UPSTREAM_TIMEOUT",
        }
    }

    /// The type of a wire name such as `BAD_REQUEST` (`None` for names the specification
    /// does not define).
    pub fn from_wire_name(name: &str) -> Option<Self> {
        Some(match name {
            "BAD_REQUEST" => Self::BadRequest,
            "UNAUTHENTICATED" => Self::Unauthenticated,
            "UNAUTHORIZED" => Self::Unauthorized,
            "NOT_FOUND" => Self::NotFound,
            "REQUEST_TIMEOUT" => Self::RequestTimeout,
            "CONFLICT" => Self::Conflict,
            "RESOURCE_EXHAUSTED" => Self::ResourceExhausted,
            "INTERNAL" => Self::Internal,
            "NOT_IMPLEMENTED" => Self::NotImplemented,
            "UNAVAILABLE" => Self::Unavailable,
            "UPSTREAM_TIMEOUT" => Self::UpstreamTimeout,
            _ => return None,
        })
    }

    /// Whether the specification retries this type when the error does not say.
    pub fn retryable_by_default(self) -> bool {
        matches!(
            self,
            Self::RequestTimeout
                | Self::ResourceExhausted
                | Self::Internal
                | Self::Unavailable
                | Self::UpstreamTimeout
        )
    }
}

impl std::fmt::Display for HandlerErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Nexus handler error: the handler could not process the request. Retryable ones are
/// retried by the caller's server until the operation's timeout.
#[derive(Debug)]
pub struct HandlerError {
    /// The error type.
    pub error_type: HandlerErrorType,
    /// The message the caller sees.
    pub message: String,
    /// Overrides the type's default retry behaviour when set.
    pub retryable: Option<bool>,
    source: Option<BoxError>,
}

impl HandlerError {
    /// A handler error of `error_type` with `message`, retried as the type says.
    pub fn new(error_type: HandlerErrorType, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
            retryable: None,
            source: None,
        }
    }

    /// Sets whether the caller's server retries the request.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = Some(retryable);
        self
    }

    /// Attaches the underlying error (sent to the caller as the failure's cause).
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Whether the caller's server retries this error.
    pub fn is_retryable(&self) -> bool {
        self.retryable
            .unwrap_or_else(|| self.error_type.retryable_by_default())
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} handler error: {}", self.error_type, self.message)
    }
}

impl std::error::Error for HandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// How an operation ended unsuccessfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationState {
    /// The operation failed.
    Failed,
    /// The operation was cancelled.
    Canceled,
}

/// The operation itself failed or was cancelled: final, never retried. The caller gets a
/// Nexus operation error whose cause carries the message (and this error's source).
#[derive(Debug)]
pub struct OperationError {
    /// Failed or canceled.
    pub state: OperationState,
    /// The message the caller sees.
    pub message: String,
    source: Option<BoxError>,
}

impl OperationError {
    /// The operation failed with `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            state: OperationState::Failed,
            message: message.into(),
            source: None,
        }
    }

    /// The operation was cancelled.
    pub fn canceled(message: impl Into<String>) -> Self {
        Self {
            state: OperationState::Canceled,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error (sent to the caller as the failure's cause).
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }
}

impl std::fmt::Display for OperationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.state {
            OperationState::Failed => write!(f, "operation failed: {}", self.message),
            OperationState::Canceled => write!(f, "operation canceled: {}", self.message),
        }
    }
}

impl std::error::Error for OperationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The error side of a Nexus operation handler; see the [module docs](self#errors) for what
/// the caller sees. Any `std::error::Error` converts into it, so `?` works.
#[derive(Debug)]
pub struct NexusError(BoxError);

impl<E: std::error::Error + Send + Sync + 'static> From<E> for NexusError {
    fn from(e: E) -> Self {
        Self(Box::new(e))
    }
}

impl std::fmt::Display for NexusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl NexusError {
    /// A handler error of `error_type`.
    pub fn handler(error_type: HandlerErrorType, message: impl Into<String>) -> Self {
        Self::from(HandlerError::new(error_type, message))
    }

    /// A `BAD_REQUEST` handler error (not retried).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::handler(HandlerErrorType::BadRequest, message)
    }

    /// A `NOT_FOUND` handler error (not retried).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::handler(HandlerErrorType::NotFound, message)
    }

    /// An `INTERNAL` handler error (retried).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::handler(HandlerErrorType::Internal, message)
    }

    /// Fails the operation (final).
    pub fn operation_failed(message: impl Into<String>) -> Self {
        Self::from(OperationError::failed(message))
    }

    /// Cancels the operation (final).
    pub fn operation_canceled(message: impl Into<String>) -> Self {
        Self::from(OperationError::canceled(message))
    }

    /// Any boxed error (classified as the module docs say).
    pub fn other(e: impl Into<BoxError>) -> Self {
        Self(e.into())
    }

    /// The inner error.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The inner error, boxed.
    pub fn into_inner(self) -> BoxError {
        self.0
    }
}

/// What an operation handler knows about the request it serves. Cheap to clone.
#[derive(Clone)]
pub struct NexusOperationContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    service: String,
    operation: String,
    headers: NexusHeaders,
    request_id: String,
    callback_url: String,
    callback_headers: NexusHeaders,
    links: Vec<NexusLink>,
    task: NexusTaskInfo,
    env: Arc<HandlerEnv>,
}

/// What every handler of a worker shares.
pub(crate) struct HandlerEnv {
    pub(crate) namespace: String,
    pub(crate) task_queue: String,
    pub(crate) converter: DataConverter,
    pub(crate) client: Option<Client>,
}

impl std::fmt::Debug for NexusOperationContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexusOperationContext")
            .field("service", &self.inner.service)
            .field("operation", &self.inner.operation)
            .field("endpoint", &self.inner.task.endpoint)
            .field("request_id", &self.inner.request_id)
            .finish_non_exhaustive()
    }
}

impl NexusOperationContext {
    /// The service name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The operation name.
    pub fn operation(&self) -> &str {
        &self.inner.operation
    }

    /// The endpoint the caller addressed.
    pub fn endpoint(&self) -> &str {
        &self.inner.task.endpoint
    }

    /// The worker's namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.env.namespace
    }

    /// The worker's task queue.
    pub fn task_queue(&self) -> &str {
        &self.inner.env.task_queue
    }

    /// The request's Nexus headers (as the inbound layers left them).
    pub fn headers(&self) -> &NexusHeaders {
        &self.inner.headers
    }

    /// The caller's request id: the same on retries of one start (empty for a cancel).
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// Where an asynchronous operation delivers its result (empty for a cancel).
    pub fn callback_url(&self) -> &str {
        &self.inner.callback_url
    }

    /// Headers to send with that callback.
    pub fn callback_headers(&self) -> &NexusHeaders {
        &self.inner.callback_headers
    }

    /// Links from the caller (e.g. to the workflow event that started the operation).
    pub fn links(&self) -> &[NexusLink] {
        &self.inner.links
    }

    /// When the caller stops waiting for this request, if known.
    pub fn request_deadline(&self) -> Option<SystemTime> {
        self.inner.task.request_deadline
    }

    /// Whether the engine gave up on this request (deadline passed, worker shutting down).
    /// The handler's future is dropped then; this lets work it handed elsewhere stop too.
    pub fn is_cancelled(&self) -> bool {
        self.inner.task.cancellation.is_cancelled()
    }

    /// The worker's data converter.
    pub fn data_converter(&self) -> &DataConverter {
        &self.inner.env.converter
    }

    /// The client the worker was built from (to start or signal workflows, …); `None` for a
    /// stack called in-process with
    /// [`WorkerConfig::nexus_inbound_service`](crate::WorkerConfig::nexus_inbound_service).
    pub fn client(&self) -> Option<&Client> {
        self.inner.env.client.as_ref()
    }
}

type StartFn = Arc<
    dyn Fn(
            NexusOperationContext,
            Option<Payload>,
        ) -> BoxFuture<'static, Result<NexusInboundResponse, BoxError>>
        + Send
        + Sync,
>;
type CancelFn = Arc<
    dyn Fn(NexusOperationContext, String) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync,
>;

#[derive(Clone)]
pub(crate) struct OperationEntry {
    name: String,
    start: StartFn,
    /// `None` for synchronous operations (nothing to cancel).
    cancel: Option<CancelFn>,
}

/// The handlers of one Nexus service: register it with
/// [`WorkerConfig::nexus_service`](crate::WorkerConfig::nexus_service). Cheap to clone.
#[derive(Clone)]
pub struct NexusServiceHandler {
    name: String,
    operations: Vec<OperationEntry>,
}

impl std::fmt::Debug for NexusServiceHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexusServiceHandler")
            .field("name", &self.name)
            .field("operations", &self.operation_names())
            .finish()
    }
}

/// Decodes an operation's input (no input decodes as `null`, so `()` fits).
fn decode_input<I: DeserializeOwned + 'static>(
    converter: &DataConverter,
    ctx: &NexusOperationContext,
    input: Option<Payload>,
) -> Result<I, BoxError> {
    let decoded = match input {
        Some(p) => converter.payloads().decode(&p),
        None => converter
            .payloads()
            .encode(&())
            .and_then(|p| converter.payloads().decode(&p)),
    };
    decoded.map_err(|e| {
        BoxError::from(
            HandlerError::new(
                HandlerErrorType::BadRequest,
                format!(
                    "the input of Nexus operation {}/{} does not decode into {}: {e}",
                    ctx.service(),
                    ctx.operation(),
                    std::any::type_name::<I>()
                ),
            )
            .with_source(e),
        )
    })
}

impl NexusServiceHandler {
    /// The handlers of the service named `name`, with no operations yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            operations: Vec::new(),
        }
    }

    /// The handlers of the contract `S` (named [`Service::NAME`]).
    pub fn for_service<S: Service>() -> Self {
        Self::new(S::NAME)
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operation names, in registration order.
    pub fn operation_names(&self) -> Vec<&str> {
        self.operations.iter().map(|o| o.name.as_str()).collect()
    }

    /// Adds a synchronous operation: `f(ctx, input)` runs for each start request, and its
    /// output is the operation's result. The input is decoded with the worker's data
    /// converter (after its codecs); a decode failure is a `BAD_REQUEST` handler error.
    pub fn sync_operation<I, O, F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        F: Fn(NexusOperationContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, NexusError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let start: StartFn = Arc::new(move |ctx: NexusOperationContext, input| {
            let converter = ctx.data_converter().clone();
            match decode_input::<I>(&converter, &ctx, input) {
                Ok(input) => {
                    let fut = f(ctx, input);
                    async move {
                        let output = fut.await.map_err(NexusError::into_inner)?;
                        let payload = converter.payloads().encode(&output)?;
                        Ok(NexusInboundResponse::Completed(payload))
                    }
                    .boxed()
                }
                Err(e) => futures::future::ready(Err(e)).boxed(),
            }
        });
        self.operations.push(OperationEntry {
            name: name.into(),
            start,
            cancel: None,
        });
        self
    }

    /// Adds a synchronous operation of the contract: the input and output types are the
    /// operation's (see [`NexusServiceHandler::sync_operation`]).
    pub fn sync<I, O, F, Fut>(self, operation: Operation<I, O>, f: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        F: Fn(NexusOperationContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, NexusError>> + Send + 'static,
    {
        self.sync_operation(operation.name(), f)
    }

    /// Adds an asynchronous operation: `start(ctx, input)` begins the work and returns an
    /// operation token naming it; whatever does the work later delivers the result to
    /// [`NexusOperationContext::callback_url`] (with its callback headers). A cancel request
    /// for the token runs `cancel(ctx, token)`.
    pub fn async_operation<I, F, Fut, C, CFut>(
        mut self,
        name: impl Into<String>,
        start: F,
        cancel: C,
    ) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        F: Fn(NexusOperationContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, NexusError>> + Send + 'static,
        C: Fn(NexusOperationContext, String) -> CFut + Send + Sync + 'static,
        CFut: Future<Output = Result<(), NexusError>> + Send + 'static,
    {
        let start = Arc::new(start);
        let start_fn: StartFn = Arc::new(move |ctx: NexusOperationContext, input| {
            let converter = ctx.data_converter().clone();
            match decode_input::<I>(&converter, &ctx, input) {
                Ok(input) => {
                    let fut = start(ctx, input);
                    async move {
                        let operation_token = fut.await.map_err(NexusError::into_inner)?;
                        Ok(NexusInboundResponse::Started {
                            operation_token,
                            links: Vec::new(),
                        })
                    }
                    .boxed()
                }
                Err(e) => futures::future::ready(Err(e)).boxed(),
            }
        });
        let cancel = Arc::new(cancel);
        let cancel_fn: CancelFn = Arc::new(move |ctx, token| {
            let fut = cancel(ctx, token);
            async move { fut.await.map_err(NexusError::into_inner) }.boxed()
        });
        self.operations.push(OperationEntry {
            name: name.into(),
            start: start_fn,
            cancel: Some(cancel_fn),
        });
        self
    }
}

/// A registered service: its operations by name.
pub(crate) type ServiceEntry = Arc<HashMap<String, OperationEntry>>;

/// Registered Nexus services by name.
pub(crate) type NexusRegistry = crate::registry::Registry<ServiceEntry>;

/// Builds the registry, refusing a service name given twice (naming both sources) and an
/// operation name given twice within a service.
pub(crate) fn build_nexus_registry(
    services: &[(String, NexusServiceHandler)],
) -> Result<NexusRegistry, WorkerError> {
    let mut entries = Vec::with_capacity(services.len());
    for (source, handler) in services {
        let mut ops = HashMap::new();
        for op in &handler.operations {
            if ops.insert(op.name.clone(), op.clone()).is_some() {
                return Err(WorkerError::Duplicate {
                    kind: "Nexus operation",
                    name: format!("{}/{}", handler.name, op.name),
                    first: source.clone(),
                    second: source.clone(),
                });
            }
        }
        entries.push((source.as_str(), handler.name.as_str(), Arc::new(ops)));
    }
    crate::registry::Registry::build(
        "Nexus service",
        entries.iter().map(|(s, n, v)| (*s, *n, false, v)),
    )
}

/// The innermost Nexus inbound service: finds the operation and runs its handler.
pub(crate) fn base_nexus_service(
    registry: Arc<NexusRegistry>,
    env: Arc<HandlerEnv>,
) -> NexusService {
    NexusService::new(tower::service_fn(move |req: NexusInbound| {
        let registry = registry.clone();
        let env = env.clone();
        async move {
            let service = registry.get(req.service()).ok_or_else(|| {
                HandlerError::new(
                    HandlerErrorType::NotFound,
                    format!(
                        "Nexus service {:?} is not served by this worker (task queue {:?}); \
                         served: [{}]",
                        req.service(),
                        env.task_queue,
                        registry.names().join(", ")
                    ),
                )
            })?;
            let op = service.get(req.operation()).ok_or_else(|| {
                let mut names: Vec<&str> = service.keys().map(String::as_str).collect();
                names.sort_unstable();
                HandlerError::new(
                    HandlerErrorType::NotFound,
                    format!(
                        "Nexus service {:?} has no operation {:?}; operations: [{}]",
                        req.service(),
                        req.operation(),
                        names.join(", ")
                    ),
                )
            })?;
            match req {
                NexusInbound::StartOperation(s) => {
                    let ctx = NexusOperationContext {
                        inner: Arc::new(ContextInner {
                            service: s.service,
                            operation: s.operation,
                            headers: s.headers,
                            request_id: s.request_id,
                            callback_url: s.callback_url,
                            callback_headers: s.callback_headers,
                            links: s.links,
                            task: s.task,
                            env,
                        }),
                    };
                    (op.start)(ctx, s.input).await
                }
                NexusInbound::CancelOperation(c) => {
                    let Some(cancel) = op.cancel.clone() else {
                        return Err(BoxError::from(HandlerError::new(
                            HandlerErrorType::NotImplemented,
                            format!(
                                "Nexus operation {}/{} is synchronous: it has nothing to cancel",
                                c.service, c.operation
                            ),
                        )));
                    };
                    let ctx = NexusOperationContext {
                        inner: Arc::new(ContextInner {
                            service: c.service,
                            operation: c.operation,
                            headers: c.headers,
                            request_id: String::new(),
                            callback_url: String::new(),
                            callback_headers: NexusHeaders::new(),
                            links: Vec::new(),
                            task: c.task,
                            env,
                        }),
                    };
                    cancel(ctx, c.operation_token).await?;
                    Ok(NexusInboundResponse::CancelAccepted)
                }
            }
        }
    }))
}

/// How a failed request is reported.
pub(crate) enum ErrorReport {
    /// The operation failed or was cancelled: a start response carrying this failure.
    Operation(Failure),
    /// A handler error: the task completion's failure.
    Handler(Failure),
}

/// Classifies an error from the Nexus inbound stack (see the module docs) into the failure the
/// caller sees.
pub(crate) fn report_error(
    err: &(dyn std::error::Error + 'static),
    failures: &FailureConverter,
    start: bool,
) -> ErrorReport {
    if let Some(h) = err.downcast_ref::<HandlerError>() {
        return ErrorReport::Handler(handler_failure(
            h.error_type,
            &h.message,
            h.retryable,
            h.source
                .as_deref()
                .map(|e| failures.error_to_failure(e as &(dyn std::error::Error + 'static))),
            failures,
        ));
    }
    if start && let Some(o) = err.downcast_ref::<OperationError>() {
        let cause = o
            .source
            .as_deref()
            .map(|e| failures.error_to_failure(e as &(dyn std::error::Error + 'static)));
        return ErrorReport::Operation(match o.state {
            OperationState::Failed => {
                let mut f = failures.application_to_failure(
                    &ApplicationFailure::new("OperationError", o.message.clone()).non_retryable(),
                );
                f.cause = cause.map(Box::new);
                f
            }
            OperationState::Canceled => {
                let mut f = failures.to_failure(&TemporalFailure::Cancelled(CancelledFailure {
                    message: o.message.clone(),
                    ..CancelledFailure::default()
                }));
                f.cause = cause.map(Box::new);
                f
            }
        });
    }
    let retryable = err
        .downcast_ref::<ApplicationFailure>()
        .map(|a| !a.non_retryable);
    let message = err
        .downcast_ref::<ApplicationFailure>()
        .map_or_else(|| err.to_string(), |a| a.message.clone());
    ErrorReport::Handler(handler_failure(
        HandlerErrorType::Internal,
        &message,
        retryable,
        Some(failures.error_to_failure(err)),
        failures,
    ))
}

/// A Temporal failure carrying a Nexus handler error.
pub(crate) fn handler_failure(
    error_type: HandlerErrorType,
    message: &str,
    retryable: Option<bool>,
    cause: Option<Failure>,
    failures: &FailureConverter,
) -> Failure {
    let retry_behavior = match retryable {
        None => NexusHandlerErrorRetryBehavior::Unspecified,
        Some(true) => NexusHandlerErrorRetryBehavior::Retryable,
        Some(false) => NexusHandlerErrorRetryBehavior::NonRetryable,
    };
    let mut f = failures.to_failure(&TemporalFailure::NexusHandler(NexusHandlerFailure {
        message: message.to_owned(),
        error_type: error_type.as_str().to_owned(),
        retry_behavior,
        ..NexusHandlerFailure::default()
    }));
    f.cause = cause.map(Box::new);
    f
}

#[cfg(test)]
#[path = "nexus_tests.rs"]
mod tests;
