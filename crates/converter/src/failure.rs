//! Rust errors ↔ Temporal [`Failure`]s.
//!
//! Writing: [`FailureConverter::to_failure`] turns a [`TemporalFailure`] (any kind, with its
//! chain of causes) into a `Failure`; [`FailureConverter::error_to_failure`] does the same for
//! any `std::error::Error`. Reading: [`FailureConverter::from_failure`] turns a `Failure` into a
//! [`TemporalFailure`], an error whose [`source`](std::error::Error::source) follows the causes.
//!
//! With [`FailureConverter::with_encode_common_attributes`], the message and stack trace of every
//! failure in the chain move into `encoded_attributes` — a `json/plain` payload
//! `{"message":…,"stack_trace":…}` — and the message becomes `"Encoded failure"`, as the
//! other SDKs' `EncodeCommonAttributes` / `encode_common_attributes` options do, so a payload
//! codec (encryption) protects them. Reading restores them whenever the payload is readable,
//! whatever the option.

use std::time::Duration;

use trellis_core_proto::api::common::v1::{ActivityType, WorkflowExecution, WorkflowType};
use trellis_core_proto::api::failure::v1::{
    ActivityFailureInfo, ApplicationFailureInfo, CanceledFailureInfo,
    ChildWorkflowExecutionFailureInfo, NexusHandlerFailureInfo, NexusOperationFailureInfo,
    ResetWorkflowFailureInfo, ServerFailureInfo, TerminatedFailureInfo, TimeoutFailureInfo,
    failure::FailureInfo,
};
use trellis_core_proto::payload::{encoding, new_payload};
use trellis_core_proto::{Failure, Payload, PayloadExt, Payloads};

pub use trellis_core_proto::api::enums::v1::{
    ApplicationErrorCategory, NexusHandlerErrorRetryBehavior, RetryState, TimeoutType,
};

/// The message other SDKs put in a failure whose message moved to `encoded_attributes`.
pub const ENCODED_FAILURE_MESSAGE: &str = "Encoded failure";

/// An application error: the failure a workflow or activity raises on purpose. It reaches the
/// caller (in any SDK) with its type, message, retryability and details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplicationFailure {
    /// The error's type name; retry policies can list types that are not retried.
    pub error_type: String,
    /// A human-readable message.
    pub message: String,
    /// When true, the activity or workflow is not retried whatever its retry policy says.
    pub non_retryable: bool,
    /// Extra values, already encoded.
    pub details: Vec<Payload>,
    /// Overrides the retry policy's next delay for this attempt.
    pub next_retry_delay: Option<Duration>,
    /// The stack trace or context text, if any.
    pub stack_trace: String,
    /// The error's category (`Benign` failures are logged and counted less loudly).
    pub category: ApplicationErrorCategory,
    /// The failure that caused this one.
    pub cause: Option<Box<TemporalFailure>>,
}

impl ApplicationFailure {
    /// A retryable application error with a type and message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
            ..Self::default()
        }
    }

    /// The same error, marked non-retryable.
    pub fn non_retryable(mut self) -> Self {
        self.non_retryable = true;
        self
    }

    /// The same error with these (encoded) details.
    pub fn with_details(mut self, details: Vec<Payload>) -> Self {
        self.details = details;
        self
    }

    /// The same error with a next retry delay.
    pub fn with_next_retry_delay(mut self, delay: Duration) -> Self {
        self.next_retry_delay = Some(delay);
        self
    }

    /// The same error with a category.
    pub fn with_category(mut self, category: ApplicationErrorCategory) -> Self {
        self.category = category;
        self
    }

    /// The same error with a cause.
    pub fn with_cause(mut self, cause: impl Into<TemporalFailure>) -> Self {
        self.cause = Some(Box::new(cause.into()));
        self
    }
}

impl std::fmt::Display for ApplicationFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.error_type.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.error_type, self.message)
        }
    }
}

macro_rules! failure_struct {
    ($(#[$doc:meta])* $name:ident, $label:literal { $($(#[$fdoc:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            /// The failure's message.
            pub message: String,
            $($(#[$fdoc])* pub $field: $ty,)*
            /// The stack trace or context text, if any.
            pub stack_trace: String,
            /// The failure that caused this one.
            pub cause: Option<Box<TemporalFailure>>,
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                if self.message.is_empty() {
                    f.write_str($label)
                } else {
                    f.write_str(&self.message)
                }
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.cause.as_deref().map(|c| c as _)
            }
        }
    };
}

impl std::error::Error for ApplicationFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as _)
    }
}

failure_struct! {
    /// A cancellation: of an activity, a child workflow, a workflow, a Nexus operation.
    CancelledFailure, "Cancelled" {
        /// Extra values, already encoded.
        details: Vec<Payload>,
        /// Who requested the cancellation, when known.
        identity: String,
    }
}
failure_struct! {
    /// A timeout, e.g. an activity's start-to-close or heartbeat timeout.
    TimeoutFailure, "Timeout" {
        /// Which timeout fired.
        timeout_type: TimeoutType,
        /// The details of the last heartbeat before a heartbeat timeout, already encoded.
        last_heartbeat_details: Vec<Payload>,
    }
}
failure_struct! {
    /// A workflow terminated by request.
    TerminatedFailure, "Terminated" {
        /// Who terminated it.
        identity: String,
    }
}
failure_struct! {
    /// A failure raised by the Temporal server.
    ServerFailure, "Server error" {
        /// When true, retrying cannot help.
        non_retryable: bool,
    }
}
failure_struct! {
    /// A workflow reset while an activity was running.
    ResetWorkflowFailure, "Reset workflow" {
        /// The details of the last heartbeat, already encoded.
        last_heartbeat_details: Vec<Payload>,
    }
}
failure_struct! {
    /// An activity failed; the cause says why (application error, timeout, cancellation).
    ActivityFailure, "Activity error" {
        /// The event id of the activity's scheduled event.
        scheduled_event_id: i64,
        /// The event id of the activity's started event.
        started_event_id: i64,
        /// The worker that ran the last attempt.
        identity: String,
        /// The activity type.
        activity_type: String,
        /// The activity id.
        activity_id: String,
        /// Why retries stopped.
        retry_state: RetryState,
    }
}
failure_struct! {
    /// A child workflow failed; the cause says why.
    ChildWorkflowFailure, "Child workflow error" {
        /// The child's namespace.
        namespace: String,
        /// The child's workflow id.
        workflow_id: String,
        /// The child's run id.
        run_id: String,
        /// The child's workflow type.
        workflow_type: String,
        /// The event id of the parent's initiated event.
        initiated_event_id: i64,
        /// The event id of the parent's started event.
        started_event_id: i64,
        /// Why retries stopped.
        retry_state: RetryState,
    }
}
failure_struct! {
    /// A Nexus operation failed; the cause says why.
    NexusOperationFailure, "Nexus operation error" {
        /// The event id of the operation's scheduled event.
        scheduled_event_id: i64,
        /// The Nexus endpoint.
        endpoint: String,
        /// The Nexus service.
        service: String,
        /// The operation name.
        operation: String,
        /// The operation token, for asynchronous operations.
        operation_token: String,
    }
}
failure_struct! {
    /// A Nexus handler failed.
    NexusHandlerFailure, "Nexus handler error" {
        /// The Nexus handler error type (e.g. `INTERNAL`, `NOT_FOUND`).
        error_type: String,
        /// Whether the handler asked for retries.
        retry_behavior: NexusHandlerErrorRetryBehavior,
    }
}
failure_struct! {
    /// A failure without a kind (no `failure_info`).
    GenericFailure, "Failure" {}
}

/// A Temporal failure read back into Rust: one variant per kind of `failure_info`. Its
/// [`source`](std::error::Error::source) follows the chain of causes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TemporalFailure {
    /// An application error.
    Application(ApplicationFailure),
    /// A cancellation.
    Cancelled(CancelledFailure),
    /// A timeout.
    Timeout(TimeoutFailure),
    /// A termination.
    Terminated(TerminatedFailure),
    /// A server error.
    Server(ServerFailure),
    /// A workflow reset.
    ResetWorkflow(ResetWorkflowFailure),
    /// An activity failure (wrapping its cause).
    Activity(ActivityFailure),
    /// A child workflow failure (wrapping its cause).
    ChildWorkflow(ChildWorkflowFailure),
    /// A Nexus operation failure (wrapping its cause).
    NexusOperation(NexusOperationFailure),
    /// A Nexus handler failure.
    NexusHandler(NexusHandlerFailure),
    /// A failure without a kind.
    Generic(GenericFailure),
}

macro_rules! each_variant {
    ($self:expr, $f:ident => $body:expr) => {
        match $self {
            TemporalFailure::Application($f) => $body,
            TemporalFailure::Cancelled($f) => $body,
            TemporalFailure::Timeout($f) => $body,
            TemporalFailure::Terminated($f) => $body,
            TemporalFailure::Server($f) => $body,
            TemporalFailure::ResetWorkflow($f) => $body,
            TemporalFailure::Activity($f) => $body,
            TemporalFailure::ChildWorkflow($f) => $body,
            TemporalFailure::NexusOperation($f) => $body,
            TemporalFailure::NexusHandler($f) => $body,
            TemporalFailure::Generic($f) => $body,
        }
    };
}

macro_rules! from_variant {
    ($($v:ident($t:ty)),*) => {$(
        impl From<$t> for TemporalFailure {
            fn from(f: $t) -> Self {
                Self::$v(f)
            }
        }
    )*};
}
from_variant!(
    Application(ApplicationFailure),
    Cancelled(CancelledFailure),
    Timeout(TimeoutFailure),
    Terminated(TerminatedFailure),
    Server(ServerFailure),
    ResetWorkflow(ResetWorkflowFailure),
    Activity(ActivityFailure),
    ChildWorkflow(ChildWorkflowFailure),
    NexusOperation(NexusOperationFailure),
    NexusHandler(NexusHandlerFailure),
    Generic(GenericFailure)
);

impl TemporalFailure {
    /// The failure's own message.
    pub fn message(&self) -> &str {
        each_variant!(self, f => &f.message)
    }

    /// The failure's stack trace (empty when none).
    pub fn stack_trace(&self) -> &str {
        each_variant!(self, f => &f.stack_trace)
    }

    /// The failure that caused this one.
    pub fn cause(&self) -> Option<&TemporalFailure> {
        each_variant!(self, f => f.cause.as_deref())
    }

    fn cause_mut(&mut self) -> &mut Option<Box<TemporalFailure>> {
        each_variant!(self, f => &mut f.cause)
    }

    /// This failure and its causes, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &TemporalFailure> {
        std::iter::successors(Some(self), |f| f.cause())
    }

    /// The first application failure in the chain (this failure or a cause), e.g. the
    /// application error under an [`ActivityFailure`].
    pub fn application(&self) -> Option<&ApplicationFailure> {
        self.chain().find_map(|f| match f {
            Self::Application(a) => Some(a),
            _ => None,
        })
    }

    /// Whether this failure or a cause is a cancellation.
    pub fn is_cancelled(&self) -> bool {
        self.chain().any(|f| matches!(f, Self::Cancelled(_)))
    }
}

impl std::fmt::Display for TemporalFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        each_variant!(self, e => std::fmt::Display::fmt(e, f))
    }
}

impl std::error::Error for TemporalFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause().map(|c| c as _)
    }
}

/// Turns errors into Temporal failures and back. The default writes every failure in the shape
/// the other SDKs write (`source` = "TrellisSDK", one `failure_info` per kind, causes nested) and
/// leaves message and stack trace in the clear; see
/// [`with_encode_common_attributes`](Self::with_encode_common_attributes).
#[derive(Debug, Clone)]
pub struct FailureConverter {
    source: String,
    encode_common_attributes: bool,
}

impl Default for FailureConverter {
    fn default() -> Self {
        Self {
            source: "TrellisSDK".to_owned(),
            encode_common_attributes: false,
        }
    }
}

#[derive(serde::Serialize)]
struct CommonAttributes<'a> {
    message: &'a str,
    stack_trace: &'a str,
}

fn payloads(v: &[Payload]) -> Option<Payloads> {
    (!v.is_empty()).then(|| Payloads {
        payloads: v.to_vec(),
    })
}

fn unpayloads(p: &Option<Payloads>) -> Vec<Payload> {
    p.as_ref().map(|p| p.payloads.clone()).unwrap_or_default()
}

fn enum_or_default<E: TryFrom<i32> + Default>(v: i32) -> E {
    E::try_from(v).unwrap_or_default()
}

impl FailureConverter {
    /// The same converter, moving (when `on`) every failure's message and stack trace into
    /// `encoded_attributes` (see the [module docs](crate::failure)).
    pub fn with_encode_common_attributes(mut self, on: bool) -> Self {
        self.encode_common_attributes = on;
        self
    }

    /// Whether message and stack trace move into `encoded_attributes`.
    pub fn encodes_common_attributes(&self) -> bool {
        self.encode_common_attributes
    }

    /// The same converter, writing `source` as the failures' `source` field.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// An application failure as a Temporal failure.
    pub fn application_to_failure(&self, app: &ApplicationFailure) -> Failure {
        self.finish(self.raw_application(app))
    }

    /// Any [`TemporalFailure`] (with its causes) as a Temporal failure.
    pub fn to_failure(&self, failure: &TemporalFailure) -> Failure {
        self.finish(self.raw(failure))
    }

    /// Any error as a Temporal failure: a [`TemporalFailure`] or one of its kinds (e.g.
    /// [`ApplicationFailure`]) keeps its fields and causes; any other error becomes a retryable
    /// application failure of type `"Error"` whose message is its `Display` chain
    /// (`"outer: inner"`, as Go writes wrapped errors) and whose cause is its
    /// [`source`](std::error::Error::source), converted the same way.
    pub fn error_to_failure(&self, err: &(dyn std::error::Error + 'static)) -> Failure {
        self.finish(self.raw_error(err))
    }

    /// Reads a Temporal failure (and its causes) back, restoring message and stack trace from
    /// `encoded_attributes` where they were moved there.
    pub fn from_failure(&self, failure: &Failure) -> TemporalFailure {
        let (message, stack_trace) = decoded_common_attributes(failure);
        let cause = failure
            .cause
            .as_deref()
            .map(|c| Box::new(self.from_failure(c)));
        macro_rules! common {
            ($t:ident { $($field:ident: $value:expr),* $(,)? }) => {
                $t { message, stack_trace, cause, $($field: $value),* }
            };
        }
        match &failure.failure_info {
            Some(FailureInfo::ApplicationFailureInfo(i)) => {
                TemporalFailure::Application(common!(ApplicationFailure {
                    error_type: i.r#type.clone(),
                    non_retryable: i.non_retryable,
                    details: unpayloads(&i.details),
                    next_retry_delay: i
                        .next_retry_delay
                        .as_ref()
                        .map(trellis_core_proto::time::from_proto_duration),
                    category: enum_or_default(i.category),
                }))
            }
            Some(FailureInfo::TimeoutFailureInfo(i)) => {
                TemporalFailure::Timeout(common!(TimeoutFailure {
                    timeout_type: enum_or_default(i.timeout_type),
                    last_heartbeat_details: unpayloads(&i.last_heartbeat_details),
                }))
            }
            Some(FailureInfo::CanceledFailureInfo(i)) => {
                TemporalFailure::Cancelled(common!(CancelledFailure {
                    details: unpayloads(&i.details),
                    identity: i.identity.clone(),
                }))
            }
            Some(FailureInfo::TerminatedFailureInfo(i)) => {
                TemporalFailure::Terminated(common!(TerminatedFailure {
                    identity: i.identity.clone(),
                }))
            }
            Some(FailureInfo::ServerFailureInfo(i)) => {
                TemporalFailure::Server(common!(ServerFailure {
                    non_retryable: i.non_retryable,
                }))
            }
            Some(FailureInfo::ResetWorkflowFailureInfo(i)) => {
                TemporalFailure::ResetWorkflow(common!(ResetWorkflowFailure {
                    last_heartbeat_details: unpayloads(&i.last_heartbeat_details),
                }))
            }
            Some(FailureInfo::ActivityFailureInfo(i)) => {
                TemporalFailure::Activity(common!(ActivityFailure {
                    scheduled_event_id: i.scheduled_event_id,
                    started_event_id: i.started_event_id,
                    identity: i.identity.clone(),
                    activity_type: i
                        .activity_type
                        .as_ref()
                        .map(|t| t.name.clone())
                        .unwrap_or_default(),
                    activity_id: i.activity_id.clone(),
                    retry_state: enum_or_default(i.retry_state),
                }))
            }
            Some(FailureInfo::ChildWorkflowExecutionFailureInfo(i)) => {
                let we = i.workflow_execution.clone().unwrap_or_default();
                TemporalFailure::ChildWorkflow(common!(ChildWorkflowFailure {
                    namespace: i.namespace.clone(),
                    workflow_id: we.workflow_id,
                    run_id: we.run_id,
                    workflow_type: i
                        .workflow_type
                        .as_ref()
                        .map(|t| t.name.clone())
                        .unwrap_or_default(),
                    initiated_event_id: i.initiated_event_id,
                    started_event_id: i.started_event_id,
                    retry_state: enum_or_default(i.retry_state),
                }))
            }
            Some(FailureInfo::NexusOperationExecutionFailureInfo(i)) => {
                TemporalFailure::NexusOperation(common!(NexusOperationFailure {
                    scheduled_event_id: i.scheduled_event_id,
                    endpoint: i.endpoint.clone(),
                    service: i.service.clone(),
                    operation: i.operation.clone(),
                    operation_token: i.operation_token.clone(),
                }))
            }
            Some(FailureInfo::NexusHandlerFailureInfo(i)) => {
                TemporalFailure::NexusHandler(common!(NexusHandlerFailure {
                    error_type: i.r#type.clone(),
                    retry_behavior: enum_or_default(i.retry_behavior),
                }))
            }
            None => TemporalFailure::Generic(common!(GenericFailure {})),
        }
    }

    /// Reads an application failure back out of a Temporal failure (or its first application
    /// cause). `None` when the failure holds no application failure.
    pub fn failure_to_application(&self, failure: &Failure) -> Option<ApplicationFailure> {
        let mut f = self.from_failure(failure);
        loop {
            match f {
                TemporalFailure::Application(a) => return Some(a),
                mut other => f = *other.cause_mut().take()?,
            }
        }
    }

    fn base(
        &self,
        message: &str,
        stack_trace: &str,
        cause: &Option<Box<TemporalFailure>>,
    ) -> Failure {
        Failure {
            message: message.to_owned(),
            source: self.source.clone(),
            stack_trace: stack_trace.to_owned(),
            cause: cause.as_deref().map(|c| Box::new(self.raw(c))),
            ..Failure::default()
        }
    }

    fn raw_application(&self, app: &ApplicationFailure) -> Failure {
        Failure {
            failure_info: Some(FailureInfo::ApplicationFailureInfo(
                ApplicationFailureInfo {
                    r#type: app.error_type.clone(),
                    non_retryable: app.non_retryable,
                    details: payloads(&app.details),
                    next_retry_delay: app
                        .next_retry_delay
                        .map(trellis_core_proto::time::to_proto_duration),
                    category: app.category as i32,
                },
            )),
            ..self.base(&app.message, &app.stack_trace, &app.cause)
        }
    }

    fn raw(&self, failure: &TemporalFailure) -> Failure {
        let (base, info) = match failure {
            TemporalFailure::Application(a) => return self.raw_application(a),
            TemporalFailure::Cancelled(f) => (
                self.base(&f.message, &f.stack_trace, &f.cause),
                FailureInfo::CanceledFailureInfo(CanceledFailureInfo {
                    details: payloads(&f.details),
                    identity: f.identity.clone(),
                }),
            ),
            TemporalFailure::Timeout(f) => (
                self.base(&f.message, &f.stack_trace, &f.cause),
                FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
                    timeout_type: f.timeout_type as i32,
                    last_heartbeat_details: payloads(&f.last_heartbeat_details),
                }),
            ),
            TemporalFailure::Terminated(f) => (
                self.base(&f.message, &f.stack_trace, &f.cause),
                FailureInfo::TerminatedFailureInfo(TerminatedFailureInfo {
                    identity: f.identity.clone(),
                }),
            ),
            TemporalFailure::Server(f) => (
                self.base(&f.message, &f.stack_trace, &f.cause),
                FailureInfo::ServerFailureInfo(ServerFailureInfo {
                    non_retryable: f.non_retryable,
                }),
            ),
            TemporalFailure::ResetWorkflow(f) => (
                self.base(&f.message, &f.stack_trace, &f.cause),
                FailureInfo::ResetWorkflowFailureInfo(ResetWorkflowFailureInfo {
                    last_heartbeat_details: payloads(&f.last_heartbeat_details),
                }),
            ),
            TemporalFailure::Activity(f) => (
                self.base(&f.message, &f.stack_trace, &f.cause),
                FailureInfo::ActivityFailureInfo(ActivityFailureInfo {
                    scheduled_event_id: f.scheduled_event_id,
                    started_event_id: f.started_event_id,
                    identity: f.identity.clone(),
                    activity_type: Some(ActivityType {
                        name: f.activity_type.clone(),
                    }),
                    activity_id: f.activity_id.clone(),
                    retry_state: f.retry_state as i32,
                }),
            ),
            TemporalFailure::ChildWorkflow(f) => (
                self.base(&f.message, &f.stack_trace, &f.cause),
                FailureInfo::ChildWorkflowExecutionFailureInfo(ChildWorkflowExecutionFailureInfo {
                    namespace: f.namespace.clone(),
                    workflow_execution: Some(WorkflowExecution {
                        workflow_id: f.workflow_id.clone(),
                        run_id: f.run_id.clone(),
                    }),
                    workflow_type: Some(WorkflowType {
                        name: f.workflow_type.clone(),
                    }),
                    initiated_event_id: f.initiated_event_id,
                    started_event_id: f.started_event_id,
                    retry_state: f.retry_state as i32,
                }),
            ),
            TemporalFailure::NexusOperation(f) => (
                self.base(&f.message, &f.stack_trace, &f.cause),
                FailureInfo::NexusOperationExecutionFailureInfo(NexusOperationFailureInfo {
                    scheduled_event_id: f.scheduled_event_id,
                    endpoint: f.endpoint.clone(),
                    service: f.service.clone(),
                    operation: f.operation.clone(),
                    operation_token: f.operation_token.clone(),
                    ..Default::default()
                }),
            ),
            TemporalFailure::NexusHandler(f) => (
                self.base(&f.message, &f.stack_trace, &f.cause),
                FailureInfo::NexusHandlerFailureInfo(NexusHandlerFailureInfo {
                    r#type: f.error_type.clone(),
                    retry_behavior: f.retry_behavior as i32,
                }),
            ),
            TemporalFailure::Generic(f) => {
                return self.base(&f.message, &f.stack_trace, &f.cause);
            }
        };
        Failure {
            failure_info: Some(info),
            ..base
        }
    }

    fn raw_error(&self, err: &(dyn std::error::Error + 'static)) -> Failure {
        if let Some(f) = err.downcast_ref::<TemporalFailure>() {
            return self.raw(f);
        }
        macro_rules! known {
            ($($t:ty),*) => {$(
                if let Some(f) = err.downcast_ref::<$t>() {
                    return self.raw(&TemporalFailure::from(f.clone()));
                }
            )*};
        }
        known!(
            ApplicationFailure,
            CancelledFailure,
            TimeoutFailure,
            TerminatedFailure,
            ServerFailure,
            ResetWorkflowFailure,
            ActivityFailure,
            ChildWorkflowFailure,
            NexusOperationFailure,
            NexusHandlerFailure,
            GenericFailure
        );
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        let mut failure = self.raw_application(&ApplicationFailure::new("Error", message));
        failure.cause = err.source().map(|s| Box::new(self.raw_error(s)));
        failure
    }

    /// Applies the options that concern the whole chain (encoded attributes).
    fn finish(&self, mut failure: Failure) -> Failure {
        if self.encode_common_attributes {
            let mut current = Some(&mut failure);
            while let Some(f) = current {
                encode_common_attributes(f);
                current = f.cause.as_deref_mut();
            }
        }
        failure
    }
}

/// Moves `failure`'s own message and stack trace into its `encoded_attributes` (a `json/plain`
/// payload `{"message":…,"stack_trace":…}`), leaving `"Encoded failure"` as its message, as the
/// other SDKs do. Causes are left alone.
pub fn encode_common_attributes(failure: &mut Failure) {
    let attrs = CommonAttributes {
        message: &failure.message,
        stack_trace: &failure.stack_trace,
    };
    // Serializing two strings cannot fail.
    let data = serde_json::to_vec(&attrs).unwrap_or_default();
    failure.encoded_attributes = Some(new_payload(encoding::JSON, data));
    failure.message = ENCODED_FAILURE_MESSAGE.to_owned();
    failure.stack_trace.clear();
}

/// Restores, in place and down the whole cause chain, the message and stack trace that
/// [`encode_common_attributes`] moved into `encoded_attributes` (once a codec has decoded that
/// payload). Failures without encoded attributes are left as they are.
pub fn decode_common_attributes(failure: &mut Failure) {
    let mut current = Some(failure);
    while let Some(f) = current {
        if f.encoded_attributes.is_some() {
            let (message, stack_trace) = decoded_common_attributes(f);
            f.message = message;
            f.stack_trace = stack_trace;
            f.encoded_attributes = None;
        }
        current = f.cause.as_deref_mut();
    }
}

/// The message and stack trace of `failure`: from its `encoded_attributes` where that is a
/// readable `json/plain` object with those string fields (each field separately), else its own.
fn decoded_common_attributes(failure: &Failure) -> (String, String) {
    let mut message = failure.message.clone();
    let mut stack_trace = failure.stack_trace.clone();
    if let Some(p) = &failure.encoded_attributes
        && p.encoding() == Some(encoding::JSON)
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&p.data)
    {
        if let Some(serde_json::Value::String(m)) = map.get("message") {
            message = m.clone();
        }
        if let Some(serde_json::Value::String(s)) = map.get("stack_trace") {
            stack_trace = s.clone();
        }
    }
    (message, stack_trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn application_failure_round_trip() {
        let fc = FailureConverter::default();
        let app = ApplicationFailure {
            next_retry_delay: Some(Duration::from_secs(3)),
            ..ApplicationFailure::new("PaymentDeclined", "card expired").non_retryable()
        };
        let f = fc.application_to_failure(&app);
        assert_eq!(f.message, "card expired");
        assert_eq!(fc.failure_to_application(&f), Some(app));
    }

    #[test]
    fn plain_errors_keep_their_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let fc = FailureConverter::default();
        let f = fc.error_to_failure(&Outer(std::io::Error::other("disk full")));
        assert_eq!(f.message, "outer: disk full");
        assert_eq!(f.cause.as_ref().unwrap().message, "disk full");
        let app = fc.failure_to_application(&f).unwrap();
        assert!(!app.non_retryable);
        assert_eq!(app.error_type, "Error");
    }

    fn nested() -> TemporalFailure {
        let p = new_payload(encoding::JSON, b"42".to_vec());
        TemporalFailure::ChildWorkflow(ChildWorkflowFailure {
            message: "child failed".into(),
            namespace: "default".into(),
            workflow_id: "child-1".into(),
            run_id: "r1".into(),
            workflow_type: "Child".into(),
            initiated_event_id: 5,
            started_event_id: 6,
            retry_state: RetryState::NonRetryableFailure,
            cause: Some(Box::new(TemporalFailure::Activity(ActivityFailure {
                message: "activity failed".into(),
                scheduled_event_id: 7,
                started_event_id: 8,
                identity: "worker@host".into(),
                activity_type: "Charge".into(),
                activity_id: "1".into(),
                retry_state: RetryState::MaximumAttemptsReached,
                stack_trace: "at charge()".into(),
                cause: Some(Box::new(
                    ApplicationFailure::new("CardDeclined", "card declined")
                        .non_retryable()
                        .with_details(vec![p.clone()])
                        .with_next_retry_delay(Duration::from_millis(1500))
                        .with_category(ApplicationErrorCategory::Benign)
                        .with_cause(TimeoutFailure {
                            message: "heartbeat".into(),
                            timeout_type: TimeoutType::Heartbeat,
                            last_heartbeat_details: vec![p.clone()],
                            cause: Some(Box::new(
                                CancelledFailure {
                                    message: "cancelled".into(),
                                    details: vec![p],
                                    identity: "me".into(),
                                    ..Default::default()
                                }
                                .into(),
                            )),
                            ..Default::default()
                        })
                        .into(),
                )),
            }))),
            ..Default::default()
        })
    }

    #[test]
    fn nested_causes_round_trip_in_both_directions() {
        for fc in [
            FailureConverter::default(),
            FailureConverter::default().with_encode_common_attributes(true),
        ] {
            let tf = nested();
            let f = fc.to_failure(&tf);
            let depth = std::iter::successors(Some(&f), |f| f.cause.as_deref()).count();
            assert_eq!(depth, 5);
            assert_eq!(fc.from_failure(&f), tf);
            assert_eq!(fc.from_failure(&fc.error_to_failure(&tf)), tf);
            // source() follows the causes.
            let mut messages = vec![tf.to_string()];
            let mut s = tf.source();
            while let Some(e) = s {
                messages.push(e.to_string());
                s = e.source();
            }
            assert_eq!(
                messages,
                [
                    "child failed",
                    "activity failed",
                    "CardDeclined: card declined",
                    "heartbeat",
                    "cancelled"
                ]
            );
            assert_eq!(tf.application().unwrap().error_type, "CardDeclined");
            assert!(tf.is_cancelled());
            let app = fc.failure_to_application(&f).unwrap();
            assert_eq!(app.category, ApplicationErrorCategory::Benign);
            assert!(matches!(
                app.cause.as_deref(),
                Some(TemporalFailure::Timeout(t)) if t.timeout_type == TimeoutType::Heartbeat
            ));
        }
    }

    #[test]
    fn server_terminated_reset_nexus_and_generic_kinds() {
        let fc = FailureConverter::default();
        let kinds: Vec<TemporalFailure> = vec![
            ServerFailure {
                message: "s".into(),
                non_retryable: true,
                ..Default::default()
            }
            .into(),
            TerminatedFailure {
                message: "t".into(),
                identity: "admin".into(),
                ..Default::default()
            }
            .into(),
            ResetWorkflowFailure {
                message: "r".into(),
                last_heartbeat_details: vec![new_payload(encoding::NULL, vec![])],
                ..Default::default()
            }
            .into(),
            NexusOperationFailure {
                message: "n".into(),
                scheduled_event_id: 3,
                endpoint: "e".into(),
                service: "svc".into(),
                operation: "op".into(),
                operation_token: "tok".into(),
                ..Default::default()
            }
            .into(),
            NexusHandlerFailure {
                message: "h".into(),
                error_type: "INTERNAL".into(),
                retry_behavior: NexusHandlerErrorRetryBehavior::NonRetryable,
                ..Default::default()
            }
            .into(),
            GenericFailure {
                message: "g".into(),
                stack_trace: "st".into(),
                ..Default::default()
            }
            .into(),
        ];
        for k in kinds {
            assert_eq!(fc.from_failure(&fc.to_failure(&k)), k);
        }
    }

    #[test]
    fn encoded_attributes_are_written_like_other_sdks_and_restored() {
        let fc = FailureConverter::default().with_encode_common_attributes(true);
        let app = ApplicationFailure {
            stack_trace: "line 1\nline 2".into(),
            ..ApplicationFailure::new("Secret", "the password is hunter2")
        };
        let f = fc.application_to_failure(&app);
        assert_eq!(f.message, "Encoded failure");
        assert_eq!(f.stack_trace, "");
        let attrs = f.encoded_attributes.as_ref().unwrap();
        assert_eq!(attrs.encoding(), Some("json/plain"));
        assert_eq!(
            attrs.data,
            br#"{"message":"the password is hunter2","stack_trace":"line 1\nline 2"}"#
        );
        // Any converter reads them back, whatever its own option.
        let back = FailureConverter::default()
            .failure_to_application(&f)
            .unwrap();
        assert_eq!(back, app);
        // Unreadable attributes (e.g. still encrypted) leave the failure as it is.
        let mut enc = f.clone();
        enc.encoded_attributes = Some(new_payload("binary/encrypted", vec![1, 2, 3]));
        assert_eq!(fc.from_failure(&enc).message(), "Encoded failure");
    }
}
