use trellis_converter::{ApplicationFailure, FailureConverter};
use trellis_core_proto::Failure;
use trellis_core_proto::api::enums::v1::TimeoutType;
use trellis_core_proto::api::failure::v1::failure::FailureInfo;
use trellis_interceptor::BoxError;

/// Why a worker could not be built or stopped running.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration is unusable (no task queue, nothing registered, …).
    #[error("invalid worker configuration: {0}")]
    Config(String),
    /// Two registrations share a name.
    #[error("duplicate {kind} name {name:?}: registered by {first} and by {second}")]
    Duplicate {
        /// `workflow`, `activity`, `Nexus service` or `Nexus operation`.
        kind: &'static str,
        /// The shared name.
        name: String,
        /// Where the first registration came from.
        first: String,
        /// Where the second registration came from.
        second: String,
    },
    /// Temporal's core engine refused to create or validate the worker.
    #[error("cannot start the worker on task queue {task_queue:?}: {cause}")]
    Init {
        /// The task queue.
        task_queue: String,
        /// The engine's message.
        cause: String,
    },
    /// A plugin's hook failed.
    #[error("plugin {plugin:?} failed in {hook}: {cause}")]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// The hook (`configure_worker`, `run_worker`, `configure_replayer`, `run_replayer`).
        hook: &'static str,
        /// The hook's error.
        cause: BoxError,
    },
    /// Polling failed in a way that cannot be retried (e.g. the namespace is gone).
    #[error("the worker stopped polling {what}: {cause}")]
    Poll {
        /// Workflow activations or activity tasks.
        what: &'static str,
        /// The engine's message.
        cause: String,
    },
}

/// The error side of an activity: return it (or any error, with `?`) to fail the attempt.
///
/// Any `std::error::Error` converts into it. An [`ApplicationFailure`] keeps its type,
/// retryability and details; other errors become retryable failures carrying their message.
#[derive(Debug)]
pub enum ActivityError {
    /// The attempt failed.
    Failed(BoxError),
    /// The activity acknowledges a cancellation request and stops.
    Cancelled,
    /// The function returns, but the activity is not done: something else completes it later
    /// through a client's
    /// [`async_activity_handle`](trellis_client::Client::async_activity_handle), by the
    /// attempt's [task token](crate::ActivityContext::task_token) or by its ids. The attempt's
    /// timeouts still apply (heartbeat from the client to keep it alive).
    WillCompleteAsync,
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ActivityError {
    fn from(e: E) -> Self {
        Self::Failed(Box::new(e))
    }
}

impl ActivityError {
    /// A failure from any boxed error.
    pub fn failed(e: impl Into<BoxError>) -> Self {
        Self::Failed(e.into())
    }

    /// A retryable application failure with a type and message.
    pub fn application(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self::from(ApplicationFailure::new(error_type, message))
    }
}

impl std::fmt::Display for ActivityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Failed(e) => write!(f, "{e}"),
            Self::Cancelled => f.write_str("activity cancelled"),
            Self::WillCompleteAsync => f.write_str("activity will complete asynchronously"),
        }
    }
}

/// The error side of a workflow.
///
/// What happens depends on what it holds, as in the other Temporal SDKs:
/// - an [`ApplicationFailure`] or an [`ActivityFailed`] **fails the workflow** (it closes with
///   that failure);
/// - [`WorkflowError::cancelled`] closes the workflow as cancelled;
/// - any other error **fails the workflow task**: the server retries the task, so a fixed
///   deployment can carry the workflow on (a bug is not a business failure).
///
/// Any `std::error::Error` converts into it, so `?` works in workflow code.
#[derive(Debug)]
pub struct WorkflowError(pub(crate) BoxError);

impl<E: std::error::Error + Send + Sync + 'static> From<E> for WorkflowError {
    fn from(e: E) -> Self {
        Self(Box::new(e))
    }
}

impl std::fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The marker a cancelled workflow returns.
#[derive(Debug, thiserror::Error)]
#[error("workflow cancelled")]
pub(crate) struct Cancelled;

impl WorkflowError {
    /// Closes the workflow as cancelled (after a cancellation request).
    pub fn cancelled() -> Self {
        Self(Box::new(Cancelled))
    }

    /// A retryable application failure that fails the workflow.
    pub fn application(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self::from(ApplicationFailure::new(error_type, message))
    }

    /// Fails the workflow task (retried by the server) with this error.
    pub fn task(e: impl Into<BoxError>) -> Self {
        Self(e.into())
    }

    /// The inner error.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

/// What a workflow error means for the run.
pub(crate) enum Outcome {
    FailWorkflow(Failure),
    Cancel,
    FailTask(Failure),
}

pub(crate) fn classify(err: &WorkflowError, failures: &FailureConverter) -> Outcome {
    let e: &(dyn std::error::Error + 'static) = &*err.0;
    if e.is::<Cancelled>() {
        return Outcome::Cancel;
    }
    if let Some(a) = e.downcast_ref::<ActivityFailed>() {
        return match &a.kind {
            ActivityFailedKind::InvalidOptions(_)
            | ActivityFailedKind::Decode(_)
            | ActivityFailedKind::Rejected(_) => {
                Outcome::FailTask(failures.application_to_failure(&ApplicationFailure::new(
                    "ActivityError",
                    a.to_string(),
                )))
            }
            _ => Outcome::FailWorkflow(reencode(a.failure.clone(), failures)),
        };
    }
    if e.is::<crate::workflow::ops::ScopeCancelled>() {
        return Outcome::Cancel;
    }
    if let Some(c) = e.downcast_ref::<ChildWorkflowFailed>() {
        return match &c.kind {
            ChildWorkflowFailedKind::Failed | ChildWorkflowFailedKind::Cancelled => {
                Outcome::FailWorkflow(reencode(c.failure.clone(), failures))
            }
            ChildWorkflowFailedKind::StartFailed(_) => {
                Outcome::FailWorkflow(failures.application_to_failure(&ApplicationFailure::new(
                    "ChildWorkflowStartFailed",
                    c.to_string(),
                )))
            }
            _ => Outcome::FailTask(failures.application_to_failure(&ApplicationFailure::new(
                "ChildWorkflowError",
                c.to_string(),
            ))),
        };
    }
    if let Some(n) = e.downcast_ref::<NexusOperationFailed>() {
        return match &n.kind {
            NexusOperationFailedKind::InvalidOptions(_)
            | NexusOperationFailedKind::Decode(_)
            | NexusOperationFailedKind::Rejected(_) => {
                Outcome::FailTask(failures.application_to_failure(&ApplicationFailure::new(
                    "NexusOperationError",
                    n.to_string(),
                )))
            }
            _ => Outcome::FailWorkflow(reencode(n.failure.clone(), failures)),
        };
    }
    if let Some(x) = e.downcast_ref::<ExternalWorkflowFailed>() {
        return Outcome::FailWorkflow(failures.application_to_failure(&ApplicationFailure::new(
            "ExternalWorkflowError",
            x.to_string(),
        )));
    }
    if let Some(app) = e.downcast_ref::<ApplicationFailure>() {
        return Outcome::FailWorkflow(failures.application_to_failure(app));
    }
    Outcome::FailTask(failures.error_to_failure(e))
}

/// A failure decoded for the workflow to read leaves again inside the workflow's failure:
/// protect it the same way it arrived.
fn reencode(mut failure: Failure, failures: &FailureConverter) -> Failure {
    if failures.encodes_common_attributes() {
        let mut cur = Some(&mut failure);
        while let Some(f) = cur {
            if f.encoded_attributes.is_none() {
                trellis_converter::encode_common_attributes(f);
            }
            cur = f.cause.as_deref_mut();
        }
    }
    failure
}

/// Why a child workflow did not produce a result.
#[derive(Debug, Clone)]
pub enum ChildWorkflowFailedKind {
    /// The server refused to start it (e.g. the id is in use); the cause is named.
    StartFailed(String),
    /// The child failed (or timed out, or was terminated).
    Failed,
    /// The child was cancelled.
    Cancelled,
    /// The options or arguments are unusable. Fails the workflow task.
    InvalidOptions(String),
    /// The result does not decode into the requested type. Fails the workflow task.
    Decode(String),
    /// A workflow outbound interceptor refused or replaced the call. Fails the workflow task.
    Rejected(String),
}

/// A child workflow did not produce a result. Returned with `?` from a workflow, a failed or
/// cancelled child fails the workflow with the child's failure.
#[derive(Debug, Clone)]
pub struct ChildWorkflowFailed {
    /// The child's workflow type.
    pub workflow_type: String,
    /// The child's workflow id.
    pub workflow_id: String,
    /// How it ended.
    pub kind: ChildWorkflowFailedKind,
    /// The failure as the server recorded it; its cause is the child's own error.
    pub failure: Failure,
}

impl ChildWorkflowFailed {
    /// The innermost failure message (the child's own error).
    pub fn cause_message(&self) -> String {
        let mut f = &self.failure;
        while let Some(c) = f.cause.as_deref() {
            f = c;
        }
        f.message.clone()
    }
}

impl std::fmt::Display for ChildWorkflowFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "child workflow {} (id {}) ",
            self.workflow_type, self.workflow_id
        )?;
        match &self.kind {
            ChildWorkflowFailedKind::StartFailed(cause) => write!(f, "could not start: {cause}"),
            ChildWorkflowFailedKind::Failed => write!(f, "failed: {}", self.cause_message()),
            ChildWorkflowFailedKind::Cancelled => f.write_str("was cancelled"),
            ChildWorkflowFailedKind::InvalidOptions(m) => write!(f, "cannot be started: {m}"),
            ChildWorkflowFailedKind::Decode(m) => write!(f, "result: {m}"),
            ChildWorkflowFailedKind::Rejected(m) => write!(f, "was refused by an interceptor: {m}"),
        }
    }
}

impl std::error::Error for ChildWorkflowFailed {}

/// Why a Nexus operation called from a workflow did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NexusOperationFailedKind {
    /// The handler answered with a Nexus handler error (after the server's retries, for
    /// retryable ones): its type (the Nexus specification's name, e.g. `BAD_REQUEST`,
    /// `NOT_FOUND`, `INTERNAL`) and whether it was retryable.
    HandlerError {
        /// The handler error type, e.g. `BAD_REQUEST`.
        error_type: String,
        /// Whether the handler marked it retryable (or its type is retryable by default).
        retryable: bool,
    },
    /// The operation failed (the handler's operation error or application failure, which is
    /// the failure's cause).
    Failed,
    /// The operation was cancelled (by this workflow, or by its handler).
    Cancelled,
    /// The operation hit one of its timeouts (schedule-to-close, schedule-to-start or
    /// start-to-close: [`NexusOperationFailed::timeout_type`] says which).
    TimedOut,
    /// The options or the input are unusable. Fails the workflow task.
    InvalidOptions(String),
    /// The result does not decode into the requested type. Fails the workflow task.
    Decode(String),
    /// A workflow outbound interceptor refused or replaced the call. Fails the workflow task.
    Rejected(String),
}

/// A Nexus operation called from a workflow did not produce a result. Returned with `?` from a
/// workflow, a handler error, failed, cancelled or timed-out operation fails the workflow with
/// the operation's failure (a `NexusOperationFailureInfo` failure whose cause is the handler
/// error, the application failure, the cancellation or the timeout).
#[derive(Debug, Clone)]
pub struct NexusOperationFailed {
    /// The endpoint the operation was called through.
    pub endpoint: String,
    /// The Nexus service name.
    pub service: String,
    /// The operation name.
    pub operation: String,
    /// The operation token, when the operation had started asynchronously.
    pub operation_token: Option<String>,
    /// How it ended.
    pub kind: NexusOperationFailedKind,
    /// The failure as the server recorded it (empty for the kinds that fail the task).
    pub failure: Failure,
}

impl NexusOperationFailed {
    /// The handler error's type and retryability, when the handler answered with one.
    pub fn handler_error(&self) -> Option<(crate::nexus::HandlerErrorType, bool)> {
        match &self.kind {
            NexusOperationFailedKind::HandlerError {
                error_type,
                retryable,
            } => {
                crate::nexus::HandlerErrorType::from_wire_name(error_type).map(|t| (t, *retryable))
            }
            _ => None,
        }
    }

    /// The application failure the handler raised (an operation failure's cause), if any.
    pub fn application_failure(&self) -> Option<ApplicationFailure> {
        let converter = FailureConverter::default();
        let mut cur = Some(&self.failure);
        while let Some(f) = cur {
            if matches!(f.failure_info, Some(FailureInfo::ApplicationFailureInfo(_))) {
                return converter.failure_to_application(f);
            }
            cur = f.cause.as_deref();
        }
        None
    }

    /// The message of the failure's first cause (the handler's error message), or of the
    /// failure itself when it has no cause.
    pub fn cause_message(&self) -> String {
        match self.failure.cause.as_deref() {
            Some(c) => c.message.clone(),
            None => self.failure.message.clone(),
        }
    }

    /// Which of the operation's timeouts ended it, for [`NexusOperationFailedKind::TimedOut`];
    /// `None` when the failure names none (e.g. the handler's workflow hit its own execution
    /// timeout).
    pub fn timeout_type(&self) -> Option<TimeoutType> {
        let mut cur = Some(&self.failure);
        while let Some(f) = cur {
            if let Some(FailureInfo::TimeoutFailureInfo(t)) = &f.failure_info {
                return (t.timeout_type() != TimeoutType::Unspecified).then(|| t.timeout_type());
            }
            cur = f.cause.as_deref();
        }
        None
    }
}

impl std::fmt::Display for NexusOperationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Nexus operation {}/{} (endpoint {}) ",
            self.service, self.operation, self.endpoint
        )?;
        match &self.kind {
            NexusOperationFailedKind::HandlerError {
                error_type,
                retryable,
            } => {
                let retry = if *retryable { "" } else { "non-retryable " };
                write!(
                    f,
                    "failed with a {retry}{error_type} handler error: {}",
                    self.cause_message()
                )
            }
            NexusOperationFailedKind::Failed => write!(f, "failed: {}", self.cause_message()),
            NexusOperationFailedKind::Cancelled => f.write_str("was cancelled"),
            NexusOperationFailedKind::TimedOut => {
                write!(f, "timed out: {}", self.cause_message())
            }
            NexusOperationFailedKind::InvalidOptions(m) => write!(f, "cannot be started: {m}"),
            NexusOperationFailedKind::Decode(m) => write!(f, "result: {m}"),
            NexusOperationFailedKind::Rejected(m) => {
                write!(f, "was refused by an interceptor: {m}")
            }
        }
    }
}

impl std::error::Error for NexusOperationFailed {}

/// Signalling or cancelling another workflow failed (e.g. it does not exist). Returned with
/// `?` from a workflow, it fails the workflow.
#[derive(Debug, Clone)]
pub struct ExternalWorkflowFailed {
    /// The target workflow id.
    pub workflow_id: String,
    /// `signal` or `cancel`.
    pub operation: &'static str,
    /// The failure the server reported.
    pub failure: Failure,
}

impl std::fmt::Display for ExternalWorkflowFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of workflow {} failed: {}",
            self.operation, self.workflow_id, self.failure.message
        )
    }
}

impl std::error::Error for ExternalWorkflowFailed {}

/// Why an activity called from a workflow did not produce a result.
#[derive(Debug, Clone)]
pub enum ActivityFailedKind {
    /// The activity failed (after its retries).
    Failed,
    /// The activity was cancelled.
    Cancelled,
    /// The activity could not even be scheduled (e.g. no timeout given). Fails the workflow
    /// task, not the workflow.
    InvalidOptions(String),
    /// The activity completed but its result does not decode into the requested type. Fails
    /// the workflow task, not the workflow.
    Decode(String),
    /// A workflow outbound interceptor refused or replaced the call. Fails the workflow task,
    /// not the workflow.
    Rejected(String),
}

/// An activity called from a workflow failed. Returned with `?` from a workflow, it fails the
/// workflow with the activity's failure (and its cause chain).
#[derive(Debug, Clone)]
pub struct ActivityFailed {
    /// The activity type.
    pub activity_type: String,
    /// The activity id.
    pub activity_id: String,
    /// How it ended.
    pub kind: ActivityFailedKind,
    /// The failure as the server recorded it; its cause is the activity's own error.
    pub failure: Failure,
}

impl ActivityFailed {
    /// The application failure the activity raised, if any.
    pub fn application_failure(&self) -> Option<ApplicationFailure> {
        FailureConverter::default().failure_to_application(&self.failure)
    }

    /// The innermost failure message (the activity's own error).
    pub fn cause_message(&self) -> String {
        let mut f = &self.failure;
        while let Some(c) = f.cause.as_deref() {
            f = c;
        }
        f.message.clone()
    }
}

impl std::fmt::Display for ActivityFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.kind {
            ActivityFailedKind::Failed => "failed",
            ActivityFailedKind::Cancelled => "was cancelled",
            ActivityFailedKind::InvalidOptions(msg) => {
                return write!(
                    f,
                    "activity {} cannot be scheduled: {msg}",
                    self.activity_type
                );
            }
            ActivityFailedKind::Rejected(msg) => {
                return write!(
                    f,
                    "activity {} (id {}) was refused by an interceptor: {msg}",
                    self.activity_type, self.activity_id
                );
            }
            ActivityFailedKind::Decode(msg) => {
                return write!(
                    f,
                    "activity {} (id {}) result: {msg}",
                    self.activity_type, self.activity_id
                );
            }
        };
        write!(
            f,
            "activity {} (id {}) {how}",
            self.activity_type, self.activity_id
        )?;
        let mut cur = Some(&self.failure);
        while let Some(x) = cur {
            let timeout = matches!(x.failure_info, Some(FailureInfo::TimeoutFailureInfo(_)));
            if !x.message.is_empty() && (timeout || x.cause.is_none()) {
                write!(f, ": {}", x.message)?;
            }
            cur = x.cause.as_deref();
        }
        Ok(())
    }
}

impl std::error::Error for ActivityFailed {}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
