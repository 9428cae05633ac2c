//! Child workflows, external workflows, continue-as-new, side effects, memo and search
//! attribute upserts, and cancellation scopes.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_converter::{ConversionError, IntoPayloads};
use trellis_core_proto::Payload;
use trellis_core_proto::api::common::v1::{Memo, RetryPolicy, SearchAttributes};
use trellis_core_proto::api::enums::v1::WorkflowIdReusePolicy;
use trellis_core_proto::api::failure::v1::Failure;
use trellis_core_proto::coresdk::child_workflow::{
    ChildWorkflowCancellationType, ParentClosePolicy, child_workflow_result,
};
use trellis_core_proto::coresdk::common::NamespacedWorkflowExecution;
use trellis_core_proto::coresdk::workflow_activation::resolve_child_workflow_execution_start;
use trellis_core_proto::coresdk::workflow_commands::{
    CancelChildWorkflowExecution, ContinueAsNewWorkflowExecution, ModifyWorkflowProperties,
    RequestCancelExternalWorkflowExecution, SignalExternalWorkflowExecution,
    StartChildWorkflowExecution, UpsertWorkflowSearchAttributes,
    signal_external_workflow_execution, workflow_command,
};
use trellis_core_proto::time::to_proto_duration;

use super::context::{OutboundFuture, WorkflowContext};
use crate::error::{
    ChildWorkflowFailed, ChildWorkflowFailedKind, ExternalWorkflowFailed, WorkflowError,
};
use crate::interceptors::{WorkflowOutbound, WorkflowOutboundResponse};

/// The activity type of side effects: a local activity this worker runs itself.
pub(crate) const SIDE_EFFECT_TYPE: &str = "__trellis_side_effect";

impl WorkflowContext {
    /// Prepares a child workflow of type `workflow_type`; set its arguments and options, then
    /// [`start`](ChildWorkflowCall::start) it (for a handle) or [`run`](ChildWorkflowCall::run)
    /// it (for its result).
    pub fn child_workflow(&self, workflow_type: impl Into<String>) -> ChildWorkflowCall {
        ChildWorkflowCall {
            ctx: self.clone(),
            cmd: StartChildWorkflowExecution {
                workflow_type: workflow_type.into(),
                namespace: self.shared.info.namespace.clone(),
                task_queue: self.shared.info.task_queue.clone(),
                cancellation_type: ChildWorkflowCancellationType::WaitCancellationCompleted as i32,
                parent_close_policy: ParentClosePolicy::Terminate as i32,
                ..Default::default()
            },
            errors: Vec::new(),
        }
    }

    /// A handle to another workflow (by id, and run id or the latest run), to signal or
    /// cancel it.
    pub fn external_workflow(
        &self,
        workflow_id: impl Into<String>,
        run_id: Option<String>,
    ) -> ExternalWorkflowHandle {
        ExternalWorkflowHandle {
            ctx: self.clone(),
            workflow_id: workflow_id.into(),
            run_id: run_id.unwrap_or_default(),
        }
    }

    /// Prepares to continue as new: this run closes and a new run of the same workflow id
    /// starts with `input` (carry state over in it). Return it as the workflow's error:
    /// `return Err(ctx.continue_as_new(&state).into())`.
    pub fn continue_as_new<I: Serialize + ?Sized>(&self, input: &I) -> ContinueAsNew {
        let mut can = ContinueAsNew {
            cmd: Box::new(ContinueAsNewWorkflowExecution {
                workflow_type: self.shared.info.workflow_type.clone(),
                task_queue: self.shared.info.task_queue.clone(),
                ..Default::default()
            }),
            error: None,
        };
        match self.shared.converter.encode(input) {
            Ok(p) => can.cmd.arguments = vec![p],
            Err(e) => can.error = Some(e.to_string()),
        }
        can
    }

    /// Runs `f` once and records its result in history (as a local activity marker), so replays
    /// get the recorded value instead of running `f` again. For small non-deterministic
    /// values (a clock reading, a random id from the OS); `f` runs on the activity runner, not
    /// in workflow code, so it must be `Send`.
    pub fn side_effect<T, F>(&self, f: F) -> SideEffect<T>
    where
        T: Serialize + DeserializeOwned + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let run_id = self.shared.info.run_id.clone();
        let call = self
            .local_activity(SIDE_EFFECT_TYPE)
            .start_to_close_timeout(Duration::from_secs(60))
            .retry_policy(RetryPolicy {
                maximum_attempts: 1,
                ..Default::default()
            });
        // The seq the call will take: register the function under it first.
        let seq = self.peek_activity_seq();
        let converter = self.shared.converter.clone();
        crate::activity::register_side_effect(
            &run_id,
            seq,
            Box::new(move || converter.encode(&f()).map_err(Into::into)),
        );
        self.shared.state.borrow_mut().side_effects.push(seq);
        SideEffect {
            inner: call.run::<T>(),
        }
    }

    /// Adds or replaces memo fields of this workflow (values already encoded, e.g. with
    /// [`data_converter`](Self::data_converter)); visible to clients describing it.
    pub fn upsert_memo(&self, fields: HashMap<String, Payload>) {
        self.shared
            .push_command(workflow_command::Variant::ModifyWorkflowProperties(
                ModifyWorkflowProperties {
                    upserted_memo: Some(Memo { fields }),
                },
            ));
    }

    /// Adds or replaces one memo field.
    pub fn upsert_memo_field<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
    ) -> Result<(), ConversionError> {
        let p = self.shared.converter.encode(value)?;
        self.shared
            .push_command(workflow_command::Variant::ModifyWorkflowProperties(
                ModifyWorkflowProperties {
                    upserted_memo: Some(Memo {
                        fields: HashMap::from([(key.to_owned(), p)]),
                    }),
                },
            ));
        Ok(())
    }

    /// Adds or replaces search attributes of this workflow (the attributes must be registered
    /// on the namespace; values are encoded as JSON, e.g. a string for `Keyword`).
    pub fn upsert_search_attribute<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
    ) -> Result<(), ConversionError> {
        let p = self.shared.converter.encode(value)?;
        self.shared
            .push_command(workflow_command::Variant::UpsertWorkflowSearchAttributes(
                UpsertWorkflowSearchAttributes {
                    search_attributes: Some(SearchAttributes {
                        indexed_fields: HashMap::from([(key.to_owned(), p)]),
                    }),
                },
            ));
        Ok(())
    }

    /// A new cancellation scope: futures run inside it with
    /// [`CancellationScope::run`] are dropped together when it is cancelled, which cancels
    /// their pending timers and activities.
    pub fn cancellation_scope(&self) -> CancellationScope {
        CancellationScope::default()
    }
}

/// A prepared child workflow. See [`WorkflowContext::child_workflow`].
#[must_use = "a child workflow does nothing until started"]
pub struct ChildWorkflowCall {
    ctx: WorkflowContext,
    cmd: StartChildWorkflowExecution,
    errors: Vec<String>,
}

impl std::fmt::Debug for ChildWorkflowCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildWorkflowCall")
            .field("workflow_type", &self.cmd.workflow_type)
            .finish_non_exhaustive()
    }
}

impl ChildWorkflowCall {
    fn encode<V: Serialize + ?Sized>(&mut self, what: &str, value: &V) -> Option<Payload> {
        match self.ctx.shared.converter.encode(value) {
            Ok(p) => Some(p),
            Err(e) => {
                self.errors.push(format!("{what} cannot be encoded: {e}"));
                None
            }
        }
    }

    /// Adds one argument.
    pub fn arg<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        if let Some(p) = self.encode("an argument", value) {
            self.cmd.input.push(p);
        }
        self
    }

    /// Adds every element of a tuple as an argument.
    pub fn args(mut self, values: impl IntoPayloads) -> Self {
        match values.into_payloads(&self.ctx.shared.converter) {
            Ok(ps) => self.cmd.input.extend(ps),
            Err(e) => self
                .errors
                .push(format!("an argument cannot be encoded: {e}")),
        }
        self
    }

    /// The child's workflow id (default: a deterministic UUID).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.cmd.workflow_id = id.into();
        self
    }

    /// The child's task queue (default: the parent's).
    pub fn task_queue(mut self, task_queue: impl Into<String>) -> Self {
        self.cmd.task_queue = task_queue.into();
        self
    }

    /// Limit on the child's whole execution, continue-as-new and retries included.
    pub fn execution_timeout(mut self, d: Duration) -> Self {
        self.cmd.workflow_execution_timeout = Some(to_proto_duration(d));
        self
    }

    /// Limit on one run of the child.
    pub fn run_timeout(mut self, d: Duration) -> Self {
        self.cmd.workflow_run_timeout = Some(to_proto_duration(d));
        self
    }

    /// Limit on one workflow task of the child.
    pub fn task_timeout(mut self, d: Duration) -> Self {
        self.cmd.workflow_task_timeout = Some(to_proto_duration(d));
        self
    }

    /// The child's retry policy (default: no retries).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.cmd.retry_policy = Some(policy);
        self
    }

    /// What happens to the child when the parent closes (default: terminate).
    pub fn parent_close_policy(mut self, policy: ParentClosePolicy) -> Self {
        self.cmd.parent_close_policy = policy as i32;
        self
    }

    /// Whether the child's id may reuse a closed workflow's id.
    pub fn id_reuse_policy(mut self, policy: WorkflowIdReusePolicy) -> Self {
        self.cmd.workflow_id_reuse_policy = policy as i32;
        self
    }

    /// What [`ChildWorkflowHandle::cancel`] waits for (default: the child's cancellation to
    /// complete).
    pub fn cancellation_type(mut self, t: ChildWorkflowCancellationType) -> Self {
        self.cmd.cancellation_type = t as i32;
        self
    }

    /// Adds a memo field to the child.
    pub fn memo<V: Serialize + ?Sized>(mut self, key: &str, value: &V) -> Self {
        if let Some(p) = self.encode("a memo value", value) {
            self.cmd.memo.insert(key.to_owned(), p);
        }
        self
    }

    /// Adds a search attribute to the child (registered on the namespace; JSON-encoded).
    pub fn search_attribute<V: Serialize + ?Sized>(mut self, key: &str, value: &V) -> Self {
        if let Some(p) = self.encode("a search attribute", value) {
            self.cmd
                .search_attributes
                .get_or_insert_with(Default::default)
                .indexed_fields
                .insert(key.to_owned(), p);
        }
        self
    }

    /// Starts the child; completes once the server has started it (or refused to).
    pub async fn start(mut self) -> Result<ChildWorkflowHandle, ChildWorkflowFailed> {
        let ctx = self.ctx.clone();
        let seq = ctx.next_child_seq();
        if self.cmd.workflow_id.is_empty() {
            self.cmd.workflow_id = ctx.uuid4().to_string();
        }
        self.cmd.seq = seq;
        let workflow_id = self.cmd.workflow_id.clone();
        let workflow_type = self.cmd.workflow_type.clone();
        let fail = |kind, failure: Option<Failure>| ChildWorkflowFailed {
            workflow_type: workflow_type.clone(),
            workflow_id: workflow_id.clone(),
            kind,
            failure: failure.unwrap_or_default(),
        };
        if !self.errors.is_empty() {
            return Err(fail(
                ChildWorkflowFailedKind::InvalidOptions(self.errors.join("; ")),
                None,
            ));
        }
        let answer = ctx
            .outbound(WorkflowOutbound::StartChildWorkflow(Box::new(self.cmd)))
            .await;
        let start = match answer {
            Ok(WorkflowOutboundResponse::ChildStarted(s)) => *s,
            Ok(other) => {
                return Err(fail(
                    ChildWorkflowFailedKind::Rejected(format!(
                        "an outbound interceptor answered with {other:?}"
                    )),
                    None,
                ));
            }
            Err(e) => {
                return Err(fail(ChildWorkflowFailedKind::Rejected(e.to_string()), None));
            }
        };
        use resolve_child_workflow_execution_start::Status;
        match start.status {
            Some(Status::Succeeded(s)) => Ok(ChildWorkflowHandle {
                ctx,
                seq,
                workflow_type,
                workflow_id,
                run_id: s.run_id,
            }),
            Some(Status::Failed(f)) => Err(fail(
                ChildWorkflowFailedKind::StartFailed(format!("{:?}", f.cause())),
                None,
            )),
            Some(Status::Cancelled(c)) => Err(fail(ChildWorkflowFailedKind::Cancelled, c.failure)),
            None => Err(fail(
                ChildWorkflowFailedKind::Decode("core resolved the start without a status".into()),
                None,
            )),
        }
    }

    /// Starts the child and waits for its result, decoded as `T`.
    pub async fn run<T: DeserializeOwned + 'static>(self) -> Result<T, ChildWorkflowFailed> {
        self.start().await?.result().await
    }
}

/// A started child workflow. See [`ChildWorkflowCall::start`].
#[derive(Clone)]
pub struct ChildWorkflowHandle {
    ctx: WorkflowContext,
    seq: u32,
    workflow_type: String,
    workflow_id: String,
    run_id: String,
}

impl std::fmt::Debug for ChildWorkflowHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildWorkflowHandle")
            .field("workflow_type", &self.workflow_type)
            .field("workflow_id", &self.workflow_id)
            .field("run_id", &self.run_id)
            .finish()
    }
}

impl ChildWorkflowHandle {
    /// The child's workflow id.
    pub fn id(&self) -> &str {
        &self.workflow_id
    }

    /// The child's first run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Waits for the child to close and decodes its result. Only one caller gets the result.
    pub fn result<T: DeserializeOwned + 'static>(
        &self,
    ) -> impl Future<Output = Result<T, ChildWorkflowFailed>> + use<T> {
        let this = self.clone();
        let wait = std::future::poll_fn(move |cx| {
            let mut st = this.ctx.shared.state.borrow_mut();
            let Some(slot) = st.child_results.get_mut(&this.seq) else {
                return Poll::Ready(None);
            };
            match slot.result.take() {
                Some(r) => {
                    st.child_results.remove(&this.seq);
                    Poll::Ready(Some(r))
                }
                None => {
                    slot.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        });
        let this = self.clone();
        async move {
            let fail = |kind, failure: Option<Failure>| ChildWorkflowFailed {
                workflow_type: this.workflow_type.clone(),
                workflow_id: this.workflow_id.clone(),
                kind,
                failure: failure.unwrap_or_default(),
            };
            let Some(result) = wait.await else {
                return Err(fail(
                    ChildWorkflowFailedKind::Decode("the result was already taken".into()),
                    None,
                ));
            };
            use child_workflow_result::Status;
            match result.status {
                Some(Status::Completed(s)) => {
                    let payloads: Vec<Payload> = s.result.into_iter().collect();
                    this.ctx
                        .shared
                        .converter
                        .decode_args(&payloads)
                        .map_err(|e| fail(ChildWorkflowFailedKind::Decode(e.to_string()), None))
                }
                Some(Status::Failed(mut f)) => {
                    f.failure
                        .as_mut()
                        .map(trellis_converter::decode_common_attributes);
                    Err(fail(ChildWorkflowFailedKind::Failed, f.failure))
                }
                Some(Status::Cancelled(mut c)) => {
                    c.failure
                        .as_mut()
                        .map(trellis_converter::decode_common_attributes);
                    Err(fail(ChildWorkflowFailedKind::Cancelled, c.failure))
                }
                None => Err(fail(
                    ChildWorkflowFailedKind::Decode("core sent a result without a status".into()),
                    None,
                )),
            }
        }
    }

    /// Sends a signal with one input value to the child.
    pub fn signal<I: Serialize + ?Sized>(
        &self,
        name: &str,
        input: &I,
    ) -> impl Future<Output = Result<(), ExternalWorkflowFailed>> + use<I> {
        let args = self
            .ctx
            .shared
            .converter
            .encode(input)
            .map(|p| vec![p])
            .map_err(|e| e.to_string());
        send_signal(
            &self.ctx,
            signal_external_workflow_execution::Target::ChildWorkflowId(self.workflow_id.clone()),
            &self.workflow_id,
            name,
            args,
        )
    }

    /// Asks the child to cancel. What the child's result then reports depends on the
    /// call's cancellation type.
    pub fn cancel(&self, reason: &str) {
        self.ctx
            .shared
            .push_command(workflow_command::Variant::CancelChildWorkflowExecution(
                CancelChildWorkflowExecution {
                    child_workflow_seq: self.seq,
                    reason: reason.to_owned(),
                },
            ));
    }
}

fn send_signal(
    ctx: &WorkflowContext,
    target: signal_external_workflow_execution::Target,
    workflow_id: &str,
    name: &str,
    args: Result<Vec<Payload>, String>,
) -> impl Future<Output = Result<(), ExternalWorkflowFailed>> + use<> {
    let fail = {
        let workflow_id = workflow_id.to_owned();
        move |failure: Failure| ExternalWorkflowFailed {
            workflow_id: workflow_id.clone(),
            operation: "signal",
            failure,
        }
    };
    let fut: Result<OutboundFuture, ExternalWorkflowFailed> = match args {
        Err(e) => Err(fail(Failure {
            message: format!("the signal's input cannot be encoded: {e}"),
            ..Default::default()
        })),
        Ok(args) => {
            let seq = ctx.next_signal_external_seq();
            Ok(ctx.outbound(WorkflowOutbound::SignalExternal(Box::new(
                SignalExternalWorkflowExecution {
                    seq,
                    target: Some(target),
                    signal_name: name.to_owned(),
                    args,
                    headers: HashMap::new(),
                },
            ))))
        }
    };
    async move { external_outcome(fut?.await, fail) }
}

fn external_outcome(
    answer: Result<WorkflowOutboundResponse, WorkflowError>,
    fail: impl Fn(Failure) -> ExternalWorkflowFailed,
) -> Result<(), ExternalWorkflowFailed> {
    match answer {
        Ok(WorkflowOutboundResponse::ExternalResolved(None)) => Ok(()),
        Ok(WorkflowOutboundResponse::ExternalResolved(Some(f))) => Err(fail(*f)),
        Ok(other) => Err(fail(Failure {
            message: format!("an outbound interceptor answered with {other:?}"),
            ..Default::default()
        })),
        Err(e) => Err(fail(Failure {
            message: e.to_string(),
            ..Default::default()
        })),
    }
}

/// Another workflow, to signal or cancel. See [`WorkflowContext::external_workflow`].
#[derive(Clone)]
pub struct ExternalWorkflowHandle {
    ctx: WorkflowContext,
    workflow_id: String,
    run_id: String,
}

impl std::fmt::Debug for ExternalWorkflowHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalWorkflowHandle")
            .field("workflow_id", &self.workflow_id)
            .field("run_id", &self.run_id)
            .finish()
    }
}

impl ExternalWorkflowHandle {
    fn execution(&self) -> NamespacedWorkflowExecution {
        NamespacedWorkflowExecution {
            namespace: self.ctx.shared.info.namespace.clone(),
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id.clone(),
        }
    }

    /// Sends a signal with one input value; completes once the server delivered it (or
    /// could not, e.g. the workflow does not exist).
    pub fn signal<I: Serialize + ?Sized>(
        &self,
        name: &str,
        input: &I,
    ) -> impl Future<Output = Result<(), ExternalWorkflowFailed>> + use<I> {
        let args = self
            .ctx
            .shared
            .converter
            .encode(input)
            .map(|p| vec![p])
            .map_err(|e| e.to_string());
        send_signal(
            &self.ctx,
            signal_external_workflow_execution::Target::WorkflowExecution(self.execution()),
            &self.workflow_id,
            name,
            args,
        )
    }

    /// Sends a signal with a list of arguments (a tuple, or `()` for none).
    pub fn signal_with_args<A: IntoPayloads>(
        &self,
        name: &str,
        args: A,
    ) -> impl Future<Output = Result<(), ExternalWorkflowFailed>> + use<A> {
        let args = args
            .into_payloads(&self.ctx.shared.converter)
            .map_err(|e| e.to_string());
        send_signal(
            &self.ctx,
            signal_external_workflow_execution::Target::WorkflowExecution(self.execution()),
            &self.workflow_id,
            name,
            args,
        )
    }

    /// Asks the workflow to cancel; completes once the server recorded the request.
    pub fn cancel(
        &self,
        reason: &str,
    ) -> impl Future<Output = Result<(), ExternalWorkflowFailed>> + use<> {
        let seq = self.ctx.next_cancel_external_seq();
        let fut = self.ctx.outbound(WorkflowOutbound::CancelExternal(Box::new(
            RequestCancelExternalWorkflowExecution {
                seq,
                workflow_execution: Some(self.execution()),
                reason: reason.to_owned(),
            },
        )));
        let workflow_id = self.workflow_id.clone();
        async move {
            external_outcome(fut.await, |failure| ExternalWorkflowFailed {
                workflow_id: workflow_id.clone(),
                operation: "cancel",
                failure,
            })
        }
    }
}

/// A request to continue as new, returned as the workflow's error. See
/// [`WorkflowContext::continue_as_new`].
#[derive(Debug)]
pub struct ContinueAsNew {
    pub(crate) cmd: Box<ContinueAsNewWorkflowExecution>,
    pub(crate) error: Option<String>,
}

impl ContinueAsNew {
    /// Runs the new run on another task queue.
    pub fn task_queue(mut self, task_queue: impl Into<String>) -> Self {
        self.cmd.task_queue = task_queue.into();
        self
    }

    /// Continues as another workflow type.
    pub fn workflow_type(mut self, workflow_type: impl Into<String>) -> Self {
        self.cmd.workflow_type = workflow_type.into();
        self
    }

    /// The new run's run timeout.
    pub fn run_timeout(mut self, d: Duration) -> Self {
        self.cmd.workflow_run_timeout = Some(to_proto_duration(d));
        self
    }

    /// The new run's retry policy.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.cmd.retry_policy = Some(policy);
        self
    }

    /// The new run's memo (already encoded).
    pub fn memo(mut self, memo: HashMap<String, Payload>) -> Self {
        self.cmd.memo = memo;
        self
    }
}

impl std::fmt::Display for ContinueAsNew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "continue as new ({})", self.cmd.workflow_type)
    }
}

impl std::error::Error for ContinueAsNew {}

/// The value of a side effect; await it. See [`WorkflowContext::side_effect`].
#[must_use = "a side effect's value is lost unless awaited"]
pub struct SideEffect<T> {
    inner: super::context::ActivityFuture<T>,
}

impl<T> std::fmt::Debug for SideEffect<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideEffect").finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + 'static> Future for SideEffect<T> {
    type Output = Result<T, WorkflowError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner)
            .poll(cx)
            .map(|r| r.map_err(|e| WorkflowError::task(format!("side effect failed: {e}"))))
    }
}

#[derive(Default)]
struct ScopeInner {
    cancelled: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

/// A group of pending operations cancelled together. See
/// [`WorkflowContext::cancellation_scope`].
#[derive(Clone, Default)]
pub struct CancellationScope {
    inner: Rc<ScopeInner>,
}

impl std::fmt::Debug for CancellationScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancellationScope")
            .field("cancelled", &self.inner.cancelled.get())
            .finish()
    }
}

/// The error of a future whose [`CancellationScope`] was cancelled. Returned from a workflow,
/// it closes the workflow as cancelled.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the cancellation scope was cancelled")]
pub struct ScopeCancelled;

impl CancellationScope {
    /// Cancels every future running in the scope (now and later): each is dropped, which
    /// cancels its pending timers and activities, and completes with [`ScopeCancelled`].
    pub fn cancel(&self) {
        self.inner.cancelled.set(true);
        for w in self.inner.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Whether the scope was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.get()
    }

    /// Runs `fut` in the scope.
    pub fn run<F: Future>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, ScopeCancelled>> + use<F> {
        let inner = self.inner.clone();
        let mut fut = Some(Box::pin(fut));
        std::future::poll_fn(move |cx| {
            if inner.cancelled.get() {
                fut = None;
                return Poll::Ready(Err(ScopeCancelled));
            }
            let Some(f) = fut.as_mut() else {
                return Poll::Ready(Err(ScopeCancelled));
            };
            match f.as_mut().poll(cx) {
                Poll::Ready(v) => {
                    fut = None;
                    Poll::Ready(Ok(v))
                }
                Poll::Pending => {
                    inner.wakers.borrow_mut().push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}
