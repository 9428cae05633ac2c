//! Asynchronous Nexus operations backed by a workflow run: the start request starts a workflow
//! (with the caller's completion callback and links attached), the operation token names that
//! workflow, and the server delivers the workflow's outcome to the caller when it closes.
//!
//! The token is the one the Go and Python SDKs use for workflow-run operations: base64url
//! (no padding) of the JSON object `{"t":1,"ns":<namespace>,"wid":<workflow id>}`, so a token
//! minted by any of them is understood by the others.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use futures::FutureExt;
use serde::de::DeserializeOwned;
use trellis_client::nexus::{Callback, Link, NexusStartOptions, OnConflictOptions};
use trellis_client::{ClientError, Code, WorkflowIdConflictPolicy, WorkflowOptions};
use trellis_converter::IntoPayloads;
use trellis_core_proto::api::common::v1::{callback, link};
use trellis_core_proto::api::enums::v1::EventType;

use super::{
    CancelFn, HandlerError, HandlerErrorType, NexusError, NexusOperationContext,
    NexusServiceHandler, Operation, OperationEntry, StartFn, decode_input,
};
use crate::WorkflowRef;
use crate::interceptors::{NexusInboundResponse, NexusLink};

/// The callback header carrying the operation token (the server passes it back to the caller
/// with the completion).
const TOKEN_CALLBACK_HEADER: &str = "nexus-operation-token";

/// The token type of a workflow-run operation (`"t"`).
const WORKFLOW_RUN_TOKEN_TYPE: i64 = 1;

/// base64url, no padding written, padding accepted when reading.
const TOKEN_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The operation token of a workflow-run operation: the namespace and id of the workflow
/// backing it. Encoded as the Go and Python SDKs encode theirs.
///
/// ```
/// use trellis_worker::nexus::WorkflowRunToken;
///
/// let token = WorkflowRunToken::new("default", "order-42");
/// let encoded = token.encode();
/// assert_eq!(WorkflowRunToken::decode(&encoded).unwrap(), token);
/// assert!(WorkflowRunToken::decode("not a token").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRunToken {
    /// The workflow's namespace.
    pub namespace: String,
    /// The workflow id.
    pub workflow_id: String,
}

/// Why an operation token is not a workflow-run token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid workflow run operation token: {0}")]
pub struct InvalidToken(String);

impl WorkflowRunToken {
    /// The token of workflow `workflow_id` in `namespace`.
    pub fn new(namespace: impl Into<String>, workflow_id: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            workflow_id: workflow_id.into(),
        }
    }

    /// The token string: base64url (unpadded) of `{"t":1,"ns":…,"wid":…}`.
    pub fn encode(&self) -> String {
        /// Field order as the Python SDK writes it.
        #[derive(serde::Serialize)]
        struct Wire<'a> {
            t: i64,
            ns: &'a str,
            wid: &'a str,
        }
        let json = serde_json::to_vec(&Wire {
            t: WORKFLOW_RUN_TOKEN_TYPE,
            ns: &self.namespace,
            wid: &self.workflow_id,
        })
        .expect("strings serialize");
        TOKEN_BASE64.encode(json)
    }

    /// Reads a token string, naming what is wrong with a bad one: not base64url, not a JSON
    /// object, another token type (`"t"` other than 1), no workflow id, or a version (`"v"`)
    /// other than 0.
    pub fn decode(token: &str) -> Result<Self, InvalidToken> {
        let bad = |m: String| InvalidToken(m);
        if token.is_empty() {
            return Err(bad("the token is empty".into()));
        }
        let bytes = TOKEN_BASE64
            .decode(token)
            .map_err(|e| bad(format!("not base64url: {e}")))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not JSON after base64url decoding: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| bad(format!("expected a JSON object, got {value}")))?;
        match obj.get("t").and_then(serde_json::Value::as_i64) {
            Some(WORKFLOW_RUN_TOKEN_TYPE) => {}
            Some(t) => {
                return Err(bad(format!(
                    "token type {t} is not a workflow run (type {WORKFLOW_RUN_TOKEN_TYPE})"
                )));
            }
            None => return Err(bad("no integer token type (\"t\")".into())),
        }
        match obj.get("v") {
            None | Some(serde_json::Value::Null) => {}
            Some(v) if v.as_i64() == Some(0) => {}
            Some(v) => return Err(bad(format!("unsupported token version {v}"))),
        }
        let workflow_id = match obj.get("wid") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(bad("no workflow id (\"wid\")".into())),
        };
        let namespace = match obj.get("ns") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => return Err(bad("no namespace (\"ns\")".into())),
        };
        Ok(Self {
            namespace,
            workflow_id,
        })
    }
}

/// The workflow started for a workflow-run operation, whose result (type `O`) becomes the
/// operation's result. Only [`WorkflowRunContext::start_workflow`] (and its by-name variant)
/// make one, so the workflow always carries the caller's completion callback.
pub struct WorkflowRunHandle<O> {
    token: WorkflowRunToken,
    encoded: String,
    run_id: String,
    links: Vec<NexusLink>,
    _output: PhantomData<fn() -> O>,
}

impl<O> std::fmt::Debug for WorkflowRunHandle<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowRunHandle")
            .field("workflow_id", &self.token.workflow_id)
            .field("run_id", &self.run_id)
            .field("operation_token", &self.encoded)
            .finish()
    }
}

impl<O> WorkflowRunHandle<O> {
    /// The workflow id.
    pub fn workflow_id(&self) -> &str {
        &self.token.workflow_id
    }

    /// The run the start created (or found, under the `UseExisting` conflict policy).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The operation token returned to the caller.
    pub fn operation_token(&self) -> &str {
        &self.encoded
    }

    /// The links returned to the caller (to the workflow's started event).
    pub fn links(&self) -> &[NexusLink] {
        &self.links
    }
}

/// What a workflow-run operation's start function gets: the request's
/// [`NexusOperationContext`] (through `Deref`) and the way to start the backing workflow.
#[derive(Debug, Clone)]
pub struct WorkflowRunContext {
    nexus: NexusOperationContext,
}

impl std::ops::Deref for WorkflowRunContext {
    type Target = NexusOperationContext;

    fn deref(&self) -> &NexusOperationContext {
        &self.nexus
    }
}

impl WorkflowRunContext {
    /// The request's context.
    pub fn nexus(&self) -> &NexusOperationContext {
        &self.nexus
    }

    /// Starts `workflow` with `args` through the worker's client, as the workflow backing this
    /// operation; its result type is the operation's output type. See
    /// [`start_workflow_by_name`](Self::start_workflow_by_name) for what is attached.
    pub async fn start_workflow<A: IntoPayloads, O>(
        &self,
        workflow: WorkflowRef<A, O>,
        args: A,
        options: WorkflowOptions,
    ) -> Result<WorkflowRunHandle<O>, NexusError> {
        self.start_workflow_by_name(workflow.name(), args, options)
            .await
    }

    /// Starts the workflow type `workflow_type` with `args` (a tuple, or `()` for none)
    /// through the worker's client (so client interceptors see the start), as the workflow
    /// backing this operation:
    ///
    /// - an empty `options.task_queue` means the worker's task queue;
    /// - the Nexus request id is the start's request id, so a retried start finds the
    ///   workflow its first attempt started;
    /// - the request's callback (URL and headers, plus the operation token) is attached as a
    ///   completion callback: the server completes the caller when the workflow closes;
    /// - the caller's links are attached (the started event links back to the caller), and a
    ///   link to the started event goes back to the caller;
    /// - with [`WorkflowIdConflictPolicy::UseExisting`] the callback, links and request id are
    ///   attached to a workflow that is already running.
    ///
    /// Errors are Nexus handler errors: a workflow that is already running (conflict policy
    /// `Fail`) is a non-retryable `CONFLICT`, an invalid request `BAD_REQUEST`, an unavailable
    /// server `UNAVAILABLE` (retried), and so on.
    pub async fn start_workflow_by_name<O>(
        &self,
        workflow_type: &str,
        args: impl IntoPayloads,
        mut options: WorkflowOptions,
    ) -> Result<WorkflowRunHandle<O>, NexusError> {
        let client = self.nexus.client().ok_or_else(no_client)?;
        if options.id.is_empty() {
            return Err(HandlerError::new(
                HandlerErrorType::Internal,
                format!(
                    "the workflow-run operation {}/{} starts {workflow_type:?} without a \
                     workflow id (set WorkflowOptions::id)",
                    self.nexus.service(),
                    self.nexus.operation()
                ),
            )
            .retryable(false)
            .into());
        }
        if options.task_queue.is_empty() {
            options.task_queue = self.nexus.task_queue().to_owned();
        }
        let token = WorkflowRunToken::new(client.namespace(), options.id.clone());
        let encoded = token.encode();
        let links: Vec<Link> = self
            .nexus
            .links()
            .iter()
            .filter_map(nexus_link_to_temporal)
            .collect();
        let mut completion_callbacks = Vec::new();
        if !self.nexus.callback_url().is_empty() {
            let mut header = self.nexus.callback_headers().clone();
            header.insert(TOKEN_CALLBACK_HEADER.to_owned(), encoded.clone());
            completion_callbacks.push(Callback {
                links: links.clone(),
                variant: Some(callback::Variant::Nexus(callback::Nexus {
                    url: self.nexus.callback_url().to_owned(),
                    header,
                })),
            });
        }
        let on_conflict_options = (options.id_conflict_policy
            == WorkflowIdConflictPolicy::UseExisting)
            .then_some(OnConflictOptions {
                attach_request_id: true,
                attach_completion_callbacks: true,
                attach_links: true,
            });
        let request_id = self.nexus.request_id().to_owned();
        options.nexus = Some(NexusStartOptions {
            request_id: request_id.clone(),
            completion_callbacks,
            links,
            on_conflict_options,
        });
        let handle = client
            .start_workflow_with_args(workflow_type, args, options)
            .await
            .map_err(|e| client_error(e, "starting the workflow"))?;
        let run_id = handle.run_id().unwrap_or_default().to_owned();
        // The server's link to what the start produced (for a start that joined a running
        // workflow, the event recording the join); without one, the started event by request
        // id, as the Python and Go SDKs build it.
        let started = handle.start_link().cloned().unwrap_or_else(|| Link {
            variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
                namespace: token.namespace.clone(),
                workflow_id: token.workflow_id.clone(),
                run_id: run_id.clone(),
                reference: Some(link::workflow_event::Reference::RequestIdRef(
                    link::workflow_event::RequestIdReference {
                        request_id,
                        event_type: EventType::WorkflowExecutionStarted as i32,
                    },
                )),
            })),
        });
        Ok(WorkflowRunHandle {
            token,
            encoded,
            run_id,
            links: temporal_link_to_nexus(&started).into_iter().collect(),
            _output: PhantomData,
        })
    }
}

fn no_client() -> NexusError {
    HandlerError::new(
        HandlerErrorType::Internal,
        "workflow-run operations need the worker's client, and this stack was called \
         in-process without one",
    )
    .retryable(false)
    .into()
}

/// A client error as the Nexus handler error the caller sees (the Python SDK's mapping of
/// gRPC codes, with "already started" a `CONFLICT`).
fn client_error(e: ClientError, doing: &str) -> NexusError {
    let (error_type, retryable, message) = match &e {
        ClientError::Rpc { status, .. } => {
            let (t, r) = match status.code() {
                Code::InvalidArgument => (HandlerErrorType::BadRequest, None),
                Code::AlreadyExists => (HandlerErrorType::Conflict, Some(false)),
                Code::FailedPrecondition | Code::OutOfRange => {
                    (HandlerErrorType::Internal, Some(false))
                }
                Code::Aborted | Code::Unavailable => (HandlerErrorType::Unavailable, None),
                Code::NotFound => (HandlerErrorType::NotFound, None),
                Code::ResourceExhausted => (HandlerErrorType::ResourceExhausted, None),
                Code::Unimplemented => (HandlerErrorType::NotImplemented, None),
                Code::DeadlineExceeded => (HandlerErrorType::UpstreamTimeout, None),
                _ => (HandlerErrorType::Internal, None),
            };
            (t, r, format!("{doing}: {}", status.message()))
        }
        ClientError::Conversion(_) => (
            HandlerErrorType::Internal,
            Some(false),
            format!("{doing}: {e}"),
        ),
        _ => (HandlerErrorType::Internal, None, format!("{doing}: {e}")),
    };
    let mut h = HandlerError::new(error_type, message).with_source(e);
    h.retryable = retryable;
    h.into()
}

impl NexusServiceHandler {
    /// Adds an asynchronous operation of the contract backed by a workflow run: `start(ctx,
    /// input)` starts the workflow with [`WorkflowRunContext::start_workflow`] and returns its
    /// handle. The caller gets an operation token naming the workflow at once, and the
    /// workflow's outcome when it closes: its result as the operation's result, its failure as
    /// the operation's failure, its cancellation as the operation's cancellation. A cancel
    /// request for the token asks the workflow to cancel.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use trellis_client::WorkflowOptions;
    /// use trellis_worker::nexus::{NexusServiceHandler, Operation};
    /// use trellis_worker::{WorkflowContext, WorkflowError, WorkflowRef};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// pub struct Order { pub id: String }
    ///
    /// const FULFIL: Operation<Order, String> = Operation::new("fulfil");
    /// const FULFIL_WORKFLOW: WorkflowRef<(Order,), String> = WorkflowRef::new("Fulfil");
    ///
    /// async fn fulfil(_ctx: WorkflowContext, order: Order) -> Result<String, WorkflowError> {
    ///     Ok(format!("shipped {}", order.id))
    /// }
    ///
    /// let handler = NexusServiceHandler::new("Orders").workflow_run(FULFIL, |ctx, order: Order| async move {
    ///     let options = WorkflowOptions { id: format!("fulfil-{}", order.id), ..Default::default() };
    ///     ctx.start_workflow(FULFIL_WORKFLOW, (order,), options).await
    /// });
    /// let config = trellis_worker::WorkerConfig::new("orders")
    ///     .workflow(FULFIL_WORKFLOW.name(), fulfil)
    ///     .nexus_service(handler);
    /// ```
    pub fn workflow_run<I, O, F, Fut>(self, operation: Operation<I, O>, start: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: 'static,
        F: Fn(WorkflowRunContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<WorkflowRunHandle<O>, NexusError>> + Send + 'static,
    {
        self.workflow_run_operation(operation.name(), start)
    }

    /// Adds an asynchronous operation named `name` backed by a workflow run (see
    /// [`workflow_run`](Self::workflow_run)); start the workflow by type name with
    /// [`WorkflowRunContext::start_workflow_by_name`].
    pub fn workflow_run_operation<I, O, F, Fut>(mut self, name: impl Into<String>, start: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: 'static,
        F: Fn(WorkflowRunContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<WorkflowRunHandle<O>, NexusError>> + Send + 'static,
    {
        let start = Arc::new(start);
        let start_fn: StartFn = Arc::new(move |ctx: NexusOperationContext, input| {
            let converter = ctx.data_converter().clone();
            match decode_input::<I>(&converter, &ctx, input) {
                Ok(input) => {
                    let fut = start(WorkflowRunContext { nexus: ctx }, input);
                    async move {
                        let handle = fut.await.map_err(NexusError::into_inner)?;
                        Ok(NexusInboundResponse::Started {
                            operation_token: handle.encoded,
                            links: handle.links,
                        })
                    }
                    .boxed()
                }
                Err(e) => futures::future::ready(Err(e)).boxed(),
            }
        });
        let cancel_fn: CancelFn = Arc::new(|ctx: NexusOperationContext, token: String| {
            async move {
                cancel_workflow_run(&ctx, &token)
                    .await
                    .map_err(NexusError::into_inner)
            }
            .boxed()
        });
        self.operations.push(OperationEntry {
            name: name.into(),
            start: start_fn,
            cancel: Some(cancel_fn),
        });
        self
    }
}

/// Cancels the workflow a workflow-run token names: a bad token (or one of another namespace)
/// is `BAD_REQUEST`.
async fn cancel_workflow_run(ctx: &NexusOperationContext, token: &str) -> Result<(), NexusError> {
    let token = WorkflowRunToken::decode(token).map_err(|e| {
        NexusError::from(HandlerError::new(
            HandlerErrorType::BadRequest,
            e.to_string(),
        ))
    })?;
    let client = ctx.client().ok_or_else(no_client)?;
    if token.namespace != client.namespace() {
        return Err(NexusError::bad_request(format!(
            "the operation token names namespace {:?}, but this worker serves {:?}",
            token.namespace,
            client.namespace()
        )));
    }
    client
        .workflow_handle(token.workflow_id.clone(), None)
        .cancel("the Nexus operation was cancelled")
        .await
        .map_err(|e| client_error(e, &format!("cancelling workflow {:?}", token.workflow_id)))
}

// ---- Nexus links <-> Temporal links -------------------------------------------------------

const WORKFLOW_EVENT_LINK_TYPE: &str = "temporal.api.common.v1.Link.WorkflowEvent";
const WORKFLOW_LINK_TYPE: &str = "temporal.api.common.v1.Link.Workflow";

/// A Temporal link as a Nexus link (`temporal:///namespaces/…` URL), for the workflow-event
/// and workflow kinds; `None` for the others.
pub(crate) fn temporal_link_to_nexus(l: &Link) -> Option<NexusLink> {
    let mut url = url::Url::parse("temporal:///").expect("a valid base URL");
    match l.variant.as_ref()? {
        link::Variant::WorkflowEvent(e) => {
            url.path_segments_mut().ok()?.clear().extend([
                "namespaces",
                &e.namespace,
                "workflows",
                &e.workflow_id,
                &e.run_id,
                "history",
            ]);
            // Keys in sorted order, as the server writes them.
            match e.reference.as_ref()? {
                link::workflow_event::Reference::EventRef(r) => {
                    let mut q = url.query_pairs_mut();
                    if r.event_id != 0 {
                        q.append_pair("eventID", &r.event_id.to_string());
                    }
                    q.append_pair("eventType", &event_type_param(r.event_type));
                    q.append_pair("referenceType", "EventReference");
                }
                link::workflow_event::Reference::RequestIdRef(r) => {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("eventType", &event_type_param(r.event_type));
                    q.append_pair("referenceType", "RequestIdReference");
                    if !r.request_id.is_empty() {
                        q.append_pair("requestID", &r.request_id);
                    }
                }
            }
            Some(NexusLink {
                url: url.to_string(),
                r#type: WORKFLOW_EVENT_LINK_TYPE.to_owned(),
            })
        }
        link::Variant::Workflow(w) => {
            url.path_segments_mut().ok()?.clear().extend([
                "namespaces",
                &w.namespace,
                "workflows",
                &w.workflow_id,
                &w.run_id,
            ]);
            if !w.reason.is_empty() {
                url.query_pairs_mut().append_pair("reason", &w.reason);
            }
            Some(NexusLink {
                url: url.to_string(),
                r#type: WORKFLOW_LINK_TYPE.to_owned(),
            })
        }
        _ => None,
    }
}

/// A Nexus link from the caller as a Temporal link, for the workflow-event and workflow kinds;
/// `None` (logged) for others or malformed ones.
pub(crate) fn nexus_link_to_temporal(l: &NexusLink) -> Option<Link> {
    let parsed = parse_nexus_link(l);
    if parsed.is_none() {
        tracing::debug!(url = %l.url, r#type = %l.r#type, "Nexus link not attached: not a Temporal workflow link");
    }
    parsed
}

fn parse_nexus_link(l: &NexusLink) -> Option<Link> {
    let url = url::Url::parse(&l.url).ok()?;
    if url.scheme() != "temporal" {
        return None;
    }
    let segments: Vec<String> = url
        .path_segments()?
        .map(percent_decode)
        .collect::<Option<_>>()?;
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match (l.r#type.as_str(), segments.as_slice()) {
        (WORKFLOW_EVENT_LINK_TYPE, [n, ns, w, wid, rid, h])
            if n == "namespaces" && w == "workflows" && h == "history" && !rid.is_empty() =>
        {
            let event_type = parse_event_type(param("eventType")?)?;
            let reference = match param("referenceType")? {
                "EventReference" => {
                    let event_id = match param("eventID") {
                        Some(id) if !id.is_empty() => id.parse().ok()?,
                        _ => 0,
                    };
                    link::workflow_event::Reference::EventRef(
                        link::workflow_event::EventReference {
                            event_id,
                            event_type,
                        },
                    )
                }
                "RequestIdReference" => link::workflow_event::Reference::RequestIdRef(
                    link::workflow_event::RequestIdReference {
                        request_id: param("requestID").unwrap_or_default().to_owned(),
                        event_type,
                    },
                ),
                _ => return None,
            };
            Some(Link {
                variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
                    namespace: ns.clone(),
                    workflow_id: wid.clone(),
                    run_id: rid.clone(),
                    reference: Some(reference),
                })),
            })
        }
        (WORKFLOW_LINK_TYPE, [n, ns, w, wid, rid])
            if n == "namespaces" && w == "workflows" && !rid.is_empty() =>
        {
            Some(Link {
                variant: Some(link::Variant::Workflow(link::Workflow {
                    namespace: ns.clone(),
                    workflow_id: wid.clone(),
                    run_id: rid.clone(),
                    reason: param("reason").unwrap_or_default().to_owned(),
                })),
            })
        }
        _ => None,
    }
}

/// `EVENT_TYPE_WORKFLOW_EXECUTION_STARTED` as the URL's `WorkflowExecutionStarted`.
fn event_type_param(event_type: i32) -> String {
    let name = EventType::try_from(event_type)
        .unwrap_or(EventType::Unspecified)
        .as_str_name();
    let name = name.strip_prefix("EVENT_TYPE_").unwrap_or(name);
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or_else(String::new, |f| {
                f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase()
            })
        })
        .collect()
}

/// Either `WorkflowExecutionStarted` or `EVENT_TYPE_WORKFLOW_EXECUTION_STARTED`.
fn parse_event_type(s: &str) -> Option<i32> {
    let constant = if s.starts_with("EVENT_TYPE_") {
        s.to_owned()
    } else {
        let mut out = String::from("EVENT_TYPE");
        for c in s.chars() {
            if c.is_ascii_uppercase() {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    };
    EventType::from_str_name(&constant).map(|e| e as i32)
}

/// Decodes `%XX` escapes of a URL path segment (`None` if not UTF-8 or malformed).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
#[path = "workflow_run_tests.rs"]
mod tests;
