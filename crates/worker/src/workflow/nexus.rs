//! Calling Nexus operations from workflow code: [`NexusClient`], [`NexusOperationCall`] and
//! [`NexusOperationHandle`].
//!
//! A call issues core's `ScheduleNexusOperation` command (through the run's outbound stack, as
//! [`WorkflowOutbound::StartNexusOperation`]) with its own per-kind sequence number, and core
//! answers with `ResolveNexusOperationStart` (started asynchronously with a token, completed
//! synchronously, or failed) and, unless the start failed, `ResolveNexusOperation` (the result).
//! Cancelling sends `RequestCancelNexusOperation`.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_core_proto::api::enums::v1::NexusHandlerErrorRetryBehavior;
use trellis_core_proto::api::failure::v1::Failure;
use trellis_core_proto::api::failure::v1::failure::FailureInfo;
use trellis_core_proto::coresdk::nexus::{
    NexusOperationCancellationType, NexusOperationResult, nexus_operation_result,
};
use trellis_core_proto::coresdk::workflow_activation::resolve_nexus_operation_start;
use trellis_core_proto::coresdk::workflow_commands::{
    RequestCancelNexusOperation, ScheduleNexusOperation, WorkflowCommand, workflow_command,
};
use trellis_core_proto::time::to_proto_duration;

use super::context::WorkflowContext;
use crate::error::{NexusOperationFailed, NexusOperationFailedKind};
use crate::interceptors::{NexusHeaders, WorkflowOutbound, WorkflowOutboundResponse};
use crate::nexus::{HandlerErrorType, Operation, Service};

impl WorkflowContext {
    /// A client for the Nexus service named `service` behind `endpoint` (an endpoint name
    /// registered on the server, e.g. with `trellis_client::nexus::create_endpoint`). Call
    /// operations by name with [`NexusClient::operation_by_name`], or typed with
    /// [`NexusClient::operation`].
    pub fn nexus_client(
        &self,
        endpoint: impl Into<String>,
        service: impl Into<String>,
    ) -> NexusClient {
        NexusClient {
            ctx: self.clone(),
            endpoint: endpoint.into(),
            service: service.into(),
        }
    }

    /// A client for the service of contract `S` (its [`Service::NAME`]) behind `endpoint`:
    /// `ctx.nexus_service_client::<WeatherService>("weather").operation(WeatherService::GET_WEATHER, &city)`.
    pub fn nexus_service_client<S: Service>(&self, endpoint: impl Into<String>) -> NexusClient {
        self.nexus_client(endpoint, S::NAME)
    }
}

/// A Nexus service behind an endpoint, as seen from a workflow. See
/// [`WorkflowContext::nexus_client`].
#[derive(Clone)]
pub struct NexusClient {
    ctx: WorkflowContext,
    endpoint: String,
    service: String,
}

impl std::fmt::Debug for NexusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexusClient")
            .field("endpoint", &self.endpoint)
            .field("service", &self.service)
            .finish()
    }
}

impl NexusClient {
    /// The endpoint name.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Prepares a call of the contract's `operation` with `input`; its output decodes as `O`.
    pub fn operation<I: Serialize, O>(
        &self,
        operation: Operation<I, O>,
        input: &I,
    ) -> NexusOperationCall<O> {
        self.call(operation.name().to_owned(), input)
    }

    /// Prepares a call of the operation named `operation` with `input` (any serializable
    /// value, `&()` for none); the caller chooses the output type `O` (e.g.
    /// [`RawValue`](crate::RawValue) to keep the payload).
    pub fn operation_by_name<O, I: Serialize + ?Sized>(
        &self,
        operation: impl Into<String>,
        input: &I,
    ) -> NexusOperationCall<O> {
        self.call(operation.into(), input)
    }

    fn call<O, I: Serialize + ?Sized>(
        &self,
        operation: String,
        input: &I,
    ) -> NexusOperationCall<O> {
        let (input, error) = match self.ctx.shared.converter.encode(input) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(format!("the input cannot be encoded: {e}"))),
        };
        NexusOperationCall {
            ctx: self.ctx.clone(),
            cmd: ScheduleNexusOperation {
                endpoint: self.endpoint.clone(),
                service: self.service.clone(),
                operation,
                input,
                cancellation_type: NexusOperationCancellationType::WaitCancellationCompleted as i32,
                ..Default::default()
            },
            summary: None,
            error,
            _t: PhantomData,
        }
    }
}

/// A prepared Nexus operation call: set options, then [`start`](Self::start) it (for a handle
/// with the operation token) or [`run`](Self::run) it (for its result).
#[must_use = "a Nexus operation does nothing until started"]
pub struct NexusOperationCall<O> {
    ctx: WorkflowContext,
    cmd: ScheduleNexusOperation,
    summary: Option<String>,
    error: Option<String>,
    _t: PhantomData<fn() -> O>,
}

impl<O> std::fmt::Debug for NexusOperationCall<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexusOperationCall")
            .field("endpoint", &self.cmd.endpoint)
            .field("service", &self.cmd.service)
            .field("operation", &self.cmd.operation)
            .finish_non_exhaustive()
    }
}

impl<O: DeserializeOwned + 'static> NexusOperationCall<O> {
    /// How long the workflow waits for the operation to complete, start and retries of the
    /// start included; then it fails with [`NexusOperationFailedKind::TimedOut`]. Without it
    /// the server's limit applies.
    pub fn schedule_to_close_timeout(mut self, d: Duration) -> Self {
        self.cmd.schedule_to_close_timeout = Some(to_proto_duration(d));
        self
    }

    /// How long the workflow waits for the handler to start the operation (or, for a
    /// synchronous one, to complete it); then it fails with
    /// [`NexusOperationFailedKind::TimedOut`] (a schedule-to-start timeout). Without it there
    /// is no such limit. Needs a server that enforces it (1.32 and later).
    pub fn schedule_to_start_timeout(mut self, d: Duration) -> Self {
        self.cmd.schedule_to_start_timeout = Some(to_proto_duration(d));
        self
    }

    /// How long the workflow waits for an asynchronous operation to complete once the handler
    /// started it; then it fails with [`NexusOperationFailedKind::TimedOut`] (a start-to-close
    /// timeout). Synchronous operations ignore it. Needs a server that enforces it (1.32 and
    /// later).
    pub fn start_to_close_timeout(mut self, d: Duration) -> Self {
        self.cmd.start_to_close_timeout = Some(to_proto_duration(d));
        self
    }

    /// A short human-readable summary shown in the Temporal UI for this operation.
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// Adds a Nexus header (a string; sent to the handler as is and stored in the workflow's
    /// history, so no secrets).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.cmd.nexus_header.insert(name.into(), value.into());
        self
    }

    /// Adds Nexus headers.
    pub fn headers(mut self, headers: NexusHeaders) -> Self {
        self.cmd.nexus_header.extend(headers);
        self
    }

    /// What cancelling the call ([`NexusOperationHandle::cancel`], dropping the handle or the
    /// start) waits for: `WaitCancellationCompleted` (default) resolves once the operation
    /// ended; `WaitCancellationRequested` once the handler accepted the cancel request;
    /// `TryCancel` at once, after sending the request; `Abandon` at once, without telling the
    /// handler.
    pub fn cancellation_type(mut self, cancellation_type: NexusOperationCancellationType) -> Self {
        self.cmd.cancellation_type = cancellation_type as i32;
        self
    }

    /// Starts the operation; completes once the handler has started it (asynchronously, with an
    /// operation token), completed it (synchronously) or refused it. Dropping this future
    /// before then cancels the operation.
    pub fn start(
        mut self,
    ) -> impl Future<Output = Result<NexusOperationHandle<O>, NexusOperationFailed>> + use<O> {
        let ctx = self.ctx.clone();
        let seq = ctx.next_nexus_seq();
        self.cmd.seq = seq;
        let op = Rc::new(OpState {
            ctx: ctx.clone(),
            seq,
            endpoint: self.cmd.endpoint.clone(),
            service: self.cmd.service.clone(),
            operation: self.cmd.operation.clone(),
            cancel_sent: Cell::new(false),
        });
        let summary = self
            .summary
            .as_ref()
            .and_then(|s| ctx.shared.converter.encode(s).ok());
        async move {
            if let Some(msg) = self.error {
                return Err(op.fail(NexusOperationFailedKind::InvalidOptions(msg), None, None));
            }
            if let Some(p) = summary {
                ctx.shared.state.borrow_mut().nexus_summaries.insert(seq, p);
            }
            let mut guard = CancelOnDrop {
                op: op.clone(),
                armed: true,
            };
            let answer = ctx
                .outbound(WorkflowOutbound::StartNexusOperation(Box::new(self.cmd)))
                .await;
            guard.armed = false;
            ctx.shared.state.borrow_mut().nexus_summaries.remove(&seq);
            let start = match answer {
                Ok(WorkflowOutboundResponse::NexusStarted(s)) => *s,
                Ok(other) => {
                    return Err(op.fail(
                        NexusOperationFailedKind::Rejected(format!(
                            "an outbound interceptor answered with {other:?}"
                        )),
                        None,
                        None,
                    ));
                }
                Err(e) => {
                    return Err(match e.0.downcast::<NexusOperationFailed>() {
                        Ok(n) => *n,
                        Err(other) => op.fail(
                            NexusOperationFailedKind::Rejected(other.to_string()),
                            None,
                            None,
                        ),
                    });
                }
            };
            use resolve_nexus_operation_start::Status;
            let token = match start.status {
                Some(Status::OperationToken(t)) => Some(t),
                Some(Status::StartedSync(_)) => None,
                Some(Status::Failed(f)) => {
                    return Err(op.failure(f, NexusOperationFailedKind::Failed, None));
                }
                None => {
                    return Err(op.fail(
                        NexusOperationFailedKind::Decode(
                            "core resolved the start without a status".into(),
                        ),
                        None,
                        None,
                    ));
                }
            };
            Ok(NexusOperationHandle {
                op,
                token,
                done: false,
                _t: PhantomData,
            })
        }
    }

    /// Starts the operation and waits for its result, decoded as `O`. Dropping the future
    /// before it completes cancels the operation.
    pub fn run(self) -> impl Future<Output = Result<O, NexusOperationFailed>> + use<O> {
        let start = self.start();
        async move { start.await?.await }
    }
}

/// What a call's start and its handle share.
struct OpState {
    ctx: WorkflowContext,
    seq: u32,
    endpoint: String,
    service: String,
    operation: String,
    cancel_sent: Cell<bool>,
}

impl OpState {
    fn fail(
        &self,
        kind: NexusOperationFailedKind,
        failure: Option<Failure>,
        operation_token: Option<String>,
    ) -> NexusOperationFailed {
        NexusOperationFailed {
            endpoint: self.endpoint.clone(),
            service: self.service.clone(),
            operation: self.operation.clone(),
            operation_token,
            kind,
            failure: failure.unwrap_or_default(),
        }
    }

    /// A failure from core, classified by its cause (`kind` when the cause says nothing more).
    fn failure(
        &self,
        mut failure: Failure,
        kind: NexusOperationFailedKind,
        token: Option<String>,
    ) -> NexusOperationFailed {
        trellis_converter::decode_common_attributes(&mut failure);
        let mut token = token;
        if let Some(FailureInfo::NexusOperationExecutionFailureInfo(info)) = &failure.failure_info
            && !info.operation_token.is_empty()
        {
            token = Some(info.operation_token.clone());
        }
        // The operation failure wraps what happened; a bare failure is its own cause.
        let cause = match &failure.failure_info {
            Some(FailureInfo::NexusOperationExecutionFailureInfo(_)) => failure.cause.as_deref(),
            _ => Some(&failure),
        };
        let kind = match cause.and_then(|c| c.failure_info.as_ref()) {
            Some(FailureInfo::NexusHandlerFailureInfo(h)) => {
                let retryable = match h.retry_behavior() {
                    NexusHandlerErrorRetryBehavior::Retryable => true,
                    NexusHandlerErrorRetryBehavior::NonRetryable => false,
                    NexusHandlerErrorRetryBehavior::Unspecified => {
                        HandlerErrorType::from_wire_name(&h.r#type)
                            .is_some_and(HandlerErrorType::retryable_by_default)
                    }
                };
                NexusOperationFailedKind::HandlerError {
                    error_type: h.r#type.clone(),
                    retryable,
                }
            }
            Some(FailureInfo::CanceledFailureInfo(_)) => NexusOperationFailedKind::Cancelled,
            Some(FailureInfo::TimeoutFailureInfo(_)) => NexusOperationFailedKind::TimedOut,
            _ => kind,
        };
        self.fail(kind, Some(failure), token)
    }

    /// Sends `RequestCancelNexusOperation` if the operation was issued and has no outcome yet
    /// (once per operation). `forget`: nobody will read the outcome (the future was dropped).
    fn request_cancel(&self, forget: bool) {
        let mut st = self.ctx.shared.state.borrow_mut();
        if forget {
            st.nexus_starts.remove(&self.seq);
        }
        if st.closing || self.cancel_sent.get() {
            if forget {
                st.nexus_results.remove(&self.seq);
            }
            return;
        }
        // The result slot exists from the moment the command is issued until the outcome is
        // read; a start that failed removes it.
        let pending = st
            .nexus_results
            .get(&self.seq)
            .is_some_and(|slot| slot.result.is_none());
        if forget {
            st.nexus_results.remove(&self.seq);
        }
        if !pending {
            return;
        }
        self.cancel_sent.set(true);
        st.commands.push(WorkflowCommand {
            variant: Some(workflow_command::Variant::RequestCancelNexusOperation(
                RequestCancelNexusOperation { seq: self.seq },
            )),
            ..Default::default()
        });
    }

    fn outcome<O: DeserializeOwned + 'static>(
        &self,
        result: NexusOperationResult,
        token: Option<String>,
    ) -> Result<O, NexusOperationFailed> {
        use nexus_operation_result::Status;
        match result.status {
            Some(Status::Completed(p)) => {
                self.ctx.shared.converter.decode_args(&[p]).map_err(|e| {
                    self.fail(NexusOperationFailedKind::Decode(e.to_string()), None, token)
                })
            }
            Some(Status::Failed(f)) => {
                Err(self.failure(f, NexusOperationFailedKind::Failed, token))
            }
            Some(Status::Cancelled(f)) => {
                let mut e = self.failure(f, NexusOperationFailedKind::Cancelled, token);
                e.kind = NexusOperationFailedKind::Cancelled;
                Err(e)
            }
            Some(Status::TimedOut(f)) => {
                let mut e = self.failure(f, NexusOperationFailedKind::TimedOut, token);
                e.kind = NexusOperationFailedKind::TimedOut;
                Err(e)
            }
            None => Err(self.fail(
                NexusOperationFailedKind::Decode("core sent a result without a status".into()),
                None,
                token,
            )),
        }
    }
}

/// Cancels the operation when the start future is dropped while waiting.
struct CancelOnDrop {
    op: Rc<OpState>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.op.request_cancel(true);
        }
    }
}

/// A started Nexus operation: await it for the result, decoded as `O`. See
/// [`NexusOperationCall::start`].
///
/// Dropping it before it resolves cancels the operation (per the call's cancellation type).
#[must_use = "a Nexus operation's result is lost unless awaited"]
pub struct NexusOperationHandle<O> {
    op: Rc<OpState>,
    token: Option<String>,
    done: bool,
    _t: PhantomData<fn() -> O>,
}

impl<O> std::fmt::Debug for NexusOperationHandle<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexusOperationHandle")
            .field("endpoint", &self.op.endpoint)
            .field("service", &self.op.service)
            .field("operation", &self.op.operation)
            .field("operation_token", &self.token)
            .finish()
    }
}

impl<O> Unpin for NexusOperationHandle<O> {}

impl<O> NexusOperationHandle<O> {
    /// The operation token of an operation the handler started asynchronously; `None` when it
    /// completed synchronously.
    pub fn operation_token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The endpoint name.
    pub fn endpoint(&self) -> &str {
        &self.op.endpoint
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.op.service
    }

    /// The operation name.
    pub fn operation(&self) -> &str {
        &self.op.operation
    }

    /// Asks for the operation to be cancelled (a `RequestCancelNexusOperation` command, once);
    /// keep awaiting the handle for the outcome: a [`NexusOperationFailed`] of kind
    /// [`Cancelled`](NexusOperationFailedKind::Cancelled) unless the operation completed
    /// first, at the point the call's cancellation type says. Does nothing once the operation
    /// has an outcome.
    pub fn cancel(&self) {
        if !self.done {
            self.op.request_cancel(false);
        }
    }
}

impl<O> Drop for NexusOperationHandle<O> {
    fn drop(&mut self) {
        if !self.done {
            self.op.request_cancel(true);
        }
    }
}

impl<O: DeserializeOwned + 'static> Future for NexusOperationHandle<O> {
    type Output = Result<O, NexusOperationFailed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.done {
            return Poll::Ready(Err(self.op.fail(
                NexusOperationFailedKind::Decode("the result was already taken".into()),
                None,
                self.token.clone(),
            )));
        }
        let result = {
            let mut st = self.op.ctx.shared.state.borrow_mut();
            match st.nexus_results.get_mut(&self.op.seq) {
                None => None,
                Some(slot) => match slot.result.take() {
                    Some(r) => {
                        st.nexus_results.remove(&self.op.seq);
                        Some(r)
                    }
                    None => {
                        slot.waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                },
            }
        };
        self.done = true;
        let token = self.token.clone();
        Poll::Ready(match result {
            Some(r) => self.op.outcome(r, token),
            None => Err(self.op.fail(
                NexusOperationFailedKind::Decode(
                    "no result will arrive for this operation (an interceptor answered its \
                     start without starting it)"
                        .into(),
                ),
                None,
                token,
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use trellis_converter::DataConverter;
    use trellis_core_proto::api::failure::v1::{
        ApplicationFailureInfo, CanceledFailureInfo, NexusHandlerFailureInfo,
        NexusOperationFailureInfo, TimeoutFailureInfo,
    };

    use super::*;
    use crate::error::{Outcome, classify};
    use crate::workflow::context::WorkflowInfo;

    fn op() -> OpState {
        let info = WorkflowInfo {
            namespace: "default".into(),
            task_queue: "tq".into(),
            workflow_type: "Caller".into(),
            workflow_id: "wf".into(),
            run_id: "run".into(),
            attempt: 1,
            start_time: None,
            headers: Default::default(),
            parent_workflow_id: None,
            parent_run_id: None,
            continued_from_run_id: None,
            first_execution_run_id: "run".into(),
            memo: Default::default(),
            search_attributes: Default::default(),
        };
        OpState {
            ctx: WorkflowContext::new(info, DataConverter::default(), 1),
            seq: 1,
            endpoint: "ep".into(),
            service: "Weather".into(),
            operation: "get".into(),
            cancel_sent: Cell::new(false),
        }
    }

    fn operation_failure(token: &str, cause: Failure) -> Failure {
        Failure {
            message: "nexus operation completed unsuccessfully".into(),
            failure_info: Some(FailureInfo::NexusOperationExecutionFailureInfo(
                NexusOperationFailureInfo {
                    endpoint: "ep".into(),
                    service: "Weather".into(),
                    operation: "get".into(),
                    operation_token: token.into(),
                    ..Default::default()
                },
            )),
            cause: Some(Box::new(cause)),
            ..Default::default()
        }
    }

    fn handler(error_type: &str, behavior: NexusHandlerErrorRetryBehavior) -> Failure {
        Failure {
            message: "the city has no name".into(),
            failure_info: Some(FailureInfo::NexusHandlerFailureInfo(
                NexusHandlerFailureInfo {
                    r#type: error_type.into(),
                    retry_behavior: behavior as i32,
                },
            )),
            ..Default::default()
        }
    }

    fn result(status: nexus_operation_result::Status) -> NexusOperationResult {
        NexusOperationResult {
            status: Some(status),
        }
    }

    #[test]
    fn failures_are_classified_by_their_cause() {
        use nexus_operation_result::Status;
        let op = op();
        let unspecified = NexusHandlerErrorRetryBehavior::Unspecified;

        let e = op
            .outcome::<String>(
                result(Status::Failed(operation_failure(
                    "",
                    handler("BAD_REQUEST", unspecified),
                ))),
                None,
            )
            .unwrap_err();
        assert_eq!(
            e.kind,
            NexusOperationFailedKind::HandlerError {
                error_type: "BAD_REQUEST".into(),
                retryable: false
            }
        );
        assert_eq!(
            e.handler_error(),
            Some((HandlerErrorType::BadRequest, false))
        );
        assert_eq!(
            e.to_string(),
            "Nexus operation Weather/get (endpoint ep) failed with a non-retryable BAD_REQUEST \
             handler error: the city has no name"
        );

        // The type's default, and an explicit override.
        let e = op.failure(
            handler("INTERNAL", unspecified),
            NexusOperationFailedKind::Failed,
            None,
        );
        assert_eq!(e.handler_error(), Some((HandlerErrorType::Internal, true)));
        let e = op.failure(
            handler("INTERNAL", NexusHandlerErrorRetryBehavior::NonRetryable),
            NexusOperationFailedKind::Failed,
            None,
        );
        assert_eq!(e.handler_error(), Some((HandlerErrorType::Internal, false)));

        // An operation failure: its application failure, and the token from the failure.
        let app = Failure {
            message: "Atlantis is under water".into(),
            failure_info: Some(FailureInfo::ApplicationFailureInfo(
                ApplicationFailureInfo {
                    r#type: "OperationError".into(),
                    non_retryable: true,
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        let e = op
            .outcome::<String>(
                result(Status::Failed(operation_failure("tok-1", app))),
                None,
            )
            .unwrap_err();
        assert_eq!(e.kind, NexusOperationFailedKind::Failed);
        assert_eq!(e.operation_token.as_deref(), Some("tok-1"));
        assert_eq!(
            e.application_failure().unwrap().message,
            "Atlantis is under water"
        );
        // `?` fails the workflow with the whole chain.
        let failures = DataConverter::default().failures().clone();
        match classify(&e.clone().into(), &failures) {
            Outcome::FailWorkflow(f) => {
                assert!(matches!(
                    f.failure_info,
                    Some(FailureInfo::NexusOperationExecutionFailureInfo(_))
                ));
                assert_eq!(f.cause.unwrap().message, "Atlantis is under water");
            }
            _ => panic!("expected the workflow to fail"),
        }

        // Cancelled and timed out, by status and by cause.
        let cancelled = Failure {
            message: "operation canceled".into(),
            failure_info: Some(FailureInfo::CanceledFailureInfo(
                CanceledFailureInfo::default(),
            )),
            ..Default::default()
        };
        let e = op
            .outcome::<String>(
                result(Status::Cancelled(operation_failure(
                    "tok",
                    cancelled.clone(),
                ))),
                Some("tok".into()),
            )
            .unwrap_err();
        assert_eq!(e.kind, NexusOperationFailedKind::Cancelled);
        let e = op.failure(
            operation_failure("", cancelled),
            NexusOperationFailedKind::Failed,
            None,
        );
        assert_eq!(e.kind, NexusOperationFailedKind::Cancelled);
        let timeout = Failure {
            message: "operation timed out".into(),
            failure_info: Some(FailureInfo::TimeoutFailureInfo(
                TimeoutFailureInfo::default(),
            )),
            ..Default::default()
        };
        let e = op
            .outcome::<String>(
                result(Status::TimedOut(operation_failure("", timeout))),
                None,
            )
            .unwrap_err();
        assert_eq!(e.kind, NexusOperationFailedKind::TimedOut);
        assert!(
            e.to_string().ends_with("timed out: operation timed out"),
            "{e}"
        );

        // A result that does not decode fails the workflow task, not the workflow.
        let p = DataConverter::default().encode(&42).unwrap();
        let e = op
            .outcome::<Vec<String>>(result(Status::Completed(p)), None)
            .unwrap_err();
        assert!(matches!(e.kind, NexusOperationFailedKind::Decode(_)));
        assert!(matches!(
            classify(&e.into(), &failures),
            Outcome::FailTask(_)
        ));
    }
}
