//! One workflow run: its future, the jobs core sends it, and the commands it answers with.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use trellis_converter::{ApplicationFailure, FailureConverter};
use trellis_core_proto::Payload;
use trellis_core_proto::api::failure::v1::Failure;
use trellis_core_proto::coresdk::workflow_activation::{
    DoUpdate, WorkflowActivation, workflow_activation_job,
};
use trellis_core_proto::coresdk::workflow_commands::{
    CancelWorkflowExecution, CompleteWorkflowExecution, FailWorkflowExecution, QueryResult,
    QuerySuccess, UpdateResponse, query_result, update_response, workflow_command,
};
use trellis_core_proto::coresdk::workflow_completion::{
    WorkflowActivationCompletion, workflow_activation_completion,
};
use trellis_core_proto::time::from_proto_timestamp;

use futures::FutureExt;
use futures::future::LocalBoxFuture;
use tower::ServiceExt;

use super::context::{RunShared, WorkflowContext};
use super::ops::ContinueAsNew;
use crate::error::{Outcome, WorkflowError, classify, panic_message};
use crate::interceptors::{
    ExecuteWorkflow, QueryInput, SignalInput, UpdateInput, WorkflowInbound,
    WorkflowInboundResponse, WorkflowInboundService, WorkflowOutbound,
};

/// The future of a workflow's main function, result already encoded.
pub(crate) type WorkflowFuture = Pin<Box<dyn Future<Output = Result<Payload, WorkflowError>>>>;

/// How many times one activation may re-poll the workflow when it wakes itself.
const MAX_POLLS_PER_ACTIVATION: usize = 10_000;

struct WakeFlag(AtomicBool);

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

pub(crate) struct WorkflowRun {
    shared: Rc<RunShared>,
    inbound: WorkflowInboundService,
    main: Option<WorkflowFuture>,
    /// Signal deliveries whose interceptors are still waiting on something, running update
    /// handlers, and a continue-as-new on its way out.
    handlers: Vec<LocalBoxFuture<'static, Result<(), WorkflowError>>>,
    woken: Arc<WakeFlag>,
    waker: Waker,
    failures: FailureConverter,
}

impl WorkflowRun {
    pub(crate) fn new(
        ctx: WorkflowContext,
        inbound: WorkflowInboundService,
        execute: ExecuteWorkflow,
    ) -> Self {
        let woken = Arc::new(WakeFlag(AtomicBool::new(true)));
        let main = inbound
            .clone()
            .oneshot(WorkflowInbound::Execute(execute))
            .map(|r| match r {
                Ok(WorkflowInboundResponse::Completed(p)) => Ok(p),
                Ok(other) => Err(WorkflowError::task(format!(
                    "a workflow inbound interceptor answered execute with {other:?}"
                ))),
                Err(e) => Err(e),
            });
        Self {
            shared: ctx.shared.clone(),
            inbound,
            main: Some(Box::pin(main)),
            handlers: Vec::new(),
            waker: Waker::from(woken.clone()),
            woken,
            failures: ctx.shared.converter.failures().clone(),
        }
    }

    /// Applies every job of the activation, then runs workflow code until it is blocked, and
    /// returns what to tell core. A panic anywhere in workflow code fails the activation (the
    /// server retries the workflow task); it never unwinds into the worker.
    pub(crate) fn activate(&mut self, act: WorkflowActivation) -> WorkflowActivationCompletion {
        let run_id = act.run_id.clone();
        match catch_unwind(AssertUnwindSafe(|| self.activate_inner(act))) {
            Ok(Ok(commands)) => WorkflowActivationCompletion {
                run_id,
                status: Some(workflow_activation_completion::Status::Successful(
                    commands.into(),
                )),
                ..Default::default()
            },
            Ok(Err(failure)) => WorkflowActivationCompletion::fail(run_id, failure, None),
            Err(panic) => {
                // The run's state is unknown after a panic: drop the future so nothing runs
                // again until core evicts and rebuilds the run from history.
                self.main = None;
                let msg = format!(
                    "workflow {} panicked: {}",
                    self.shared.info.workflow_type,
                    panic_message(&*panic)
                );
                tracing::warn!(run_id = %run_id, "{msg}");
                WorkflowActivationCompletion::fail(
                    run_id,
                    self.failures
                        .application_to_failure(&ApplicationFailure::new("Panic", msg)),
                    None,
                )
            }
        }
    }

    fn activate_inner(
        &mut self,
        act: WorkflowActivation,
    ) -> Result<Vec<trellis_core_proto::coresdk::workflow_commands::WorkflowCommand>, Failure> {
        use workflow_activation_job::Variant as J;
        self.shared.set_activation_facts(
            act.timestamp.as_ref().map(from_proto_timestamp),
            act.is_replaying,
            act.history_length,
            act.continue_as_new_suggested,
        );
        let mut queries = Vec::new();
        let mut updates = Vec::new();
        let mut needs_poll = false;
        for job in act.jobs {
            let Some(variant) = job.variant else { continue };
            match variant {
                J::InitializeWorkflow(_) => needs_poll = true,
                J::FireTimer(t) => {
                    self.shared.fire_timer(t.seq);
                    needs_poll = true;
                }
                J::ResolveActivity(r) => {
                    self.shared
                        .resolve_activity(r.seq, r.result.unwrap_or_default());
                    needs_poll = true;
                }
                J::UpdateRandomSeed(s) => self.shared.reseed(s.randomness_seed),
                J::SignalWorkflow(s) => {
                    let delivery =
                        self.inbound
                            .clone()
                            .oneshot(WorkflowInbound::Signal(SignalInput {
                                name: s.signal_name,
                                args: s.input,
                                headers: s.headers,
                            }));
                    self.handlers
                        .push(Box::pin(delivery.map(|r| r.map(|_| ()))));
                    needs_poll = true;
                }
                J::CancelWorkflow(c) => {
                    self.shared.request_cancel(c.reason);
                    needs_poll = true;
                }
                J::QueryWorkflow(q) => queries.push(q),
                J::NotifyHasPatch(p) => self.shared.notify_patch(p.patch_id),
                J::DoUpdate(u) => updates.push(u),
                J::ResolveChildWorkflowExecutionStart(r) => {
                    self.shared.resolve_child_start(r.seq, r);
                    needs_poll = true;
                }
                J::ResolveChildWorkflowExecution(r) => {
                    self.shared
                        .resolve_child(r.seq, r.result.unwrap_or_default());
                    needs_poll = true;
                }
                J::ResolveSignalExternalWorkflow(r) => {
                    self.shared.resolve_signal_external(r.seq, r.failure);
                    needs_poll = true;
                }
                J::ResolveRequestCancelExternalWorkflow(r) => {
                    self.shared.resolve_cancel_external(r.seq, r.failure);
                    needs_poll = true;
                }
                J::ResolveNexusOperationStart(r) => {
                    self.shared.resolve_nexus_start(r.seq, r);
                    needs_poll = true;
                }
                J::ResolveNexusOperation(r) => {
                    self.shared
                        .resolve_nexus(r.seq, r.result.unwrap_or_default());
                    needs_poll = true;
                }
                J::RemoveFromCache(_) => {}
            }
        }
        if needs_poll {
            self.poll_main()?;
        }
        // Updates after the first poll: a run's handlers are registered by its own code, so
        // an update that arrives with the start must find the handlers the code sets up
        // before its first wait. The same order on replay keeps commands deterministic.
        if !updates.is_empty() {
            for u in updates {
                self.start_update(u);
            }
            self.poll_main()?;
        }
        if let Some(failure) = self.shared.take_fatal() {
            return Err(failure);
        }
        for q in queries {
            let mut answer = self
                .inbound
                .clone()
                .oneshot(WorkflowInbound::Query(QueryInput {
                    name: q.query_type,
                    args: q.arguments,
                    headers: q.headers,
                }));
            let mut cx = Context::from_waker(Waker::noop());
            let result = match Pin::new(&mut answer).poll(&mut cx) {
                Poll::Ready(Ok(WorkflowInboundResponse::QueryAnswer(p))) => Ok(p),
                Poll::Ready(Ok(other)) => Err(format!(
                    "a workflow inbound interceptor answered a query with {other:?}"
                )),
                Poll::Ready(Err(e)) => Err(e.to_string()),
                Poll::Pending => Err("the query handler (or an interceptor) waited on \
                                      something; queries must answer at once"
                    .to_owned()),
            };
            let variant = match result {
                Ok(response) => query_result::Variant::Succeeded(QuerySuccess {
                    response: Some(response),
                }),
                Err(message) => query_result::Variant::Failed(Failure {
                    message,
                    ..Failure::default()
                }),
            };
            self.shared
                .push_command(workflow_command::Variant::RespondToQuery(QueryResult {
                    query_id: q.query_id,
                    variant: Some(variant),
                }));
        }
        Ok(self.shared.take_commands())
    }

    /// Validates an update (when core asks), accepts or rejects it, and starts its handler.
    fn start_update(&mut self, u: DoUpdate) {
        let input = UpdateInput {
            id: u.id,
            name: u.name,
            args: u.input,
            headers: u.headers,
        };
        let protocol_instance_id = u.protocol_instance_id;
        let respond = |shared: &RunShared, response: update_response::Response| {
            shared.push_command(workflow_command::Variant::UpdateResponse(UpdateResponse {
                protocol_instance_id: protocol_instance_id.clone(),
                response: Some(response),
            }));
        };
        if u.run_validator {
            let mut validation = self
                .inbound
                .clone()
                .oneshot(WorkflowInbound::ValidateUpdate(input.clone()));
            let mut cx = Context::from_waker(Waker::noop());
            let verdict = match Pin::new(&mut validation).poll(&mut cx) {
                Poll::Ready(Ok(WorkflowInboundResponse::UpdateValid)) => Ok(()),
                Poll::Ready(Ok(other)) => Err(WorkflowError::task(format!(
                    "a workflow inbound interceptor answered an update validation with {other:?}"
                ))),
                Poll::Ready(Err(e)) => Err(e),
                Poll::Pending => Err(WorkflowError::task(
                    "the update validator (or an interceptor) waited on something; validators \
                     must answer at once",
                )),
            };
            if let Err(e) = verdict {
                respond(
                    &self.shared,
                    update_response::Response::Rejected(self.failures.error_to_failure(&*e.0)),
                );
                return;
            }
        }
        respond(&self.shared, update_response::Response::Accepted(()));
        self.shared.state.borrow_mut().running_updates += 1;
        let handler = self.inbound.clone().oneshot(WorkflowInbound::Update(input));
        let failures = self.failures.clone();
        let shared = self.shared.clone();
        self.handlers.push(Box::pin(async move {
            let result = handler.await;
            {
                let mut st = shared.state.borrow_mut();
                st.running_updates -= 1;
                for w in st.handlers_finished_wakers.drain(..) {
                    w.wake();
                }
            }
            let response = match result {
                Ok(WorkflowInboundResponse::UpdateCompleted(p)) => {
                    update_response::Response::Completed(p)
                }
                Ok(other) => update_response::Response::Rejected(failures.application_to_failure(
                    &ApplicationFailure::new(
                        "UpdateError",
                        format!("a workflow inbound interceptor answered an update with {other:?}"),
                    ),
                )),
                Err(e) => match classify(&e, &failures) {
                    Outcome::FailWorkflow(f) => update_response::Response::Rejected(f),
                    Outcome::Cancel => update_response::Response::Rejected(
                        failures.application_to_failure(&ApplicationFailure::new(
                            "CancelledError",
                            "the update handler was cancelled",
                        )),
                    ),
                    Outcome::FailTask(_) => return Err(e),
                },
            };
            shared.push_command(workflow_command::Variant::UpdateResponse(UpdateResponse {
                protocol_instance_id,
                response: Some(response),
            }));
            Ok(())
        }));
    }

    /// Polls the main future until it is blocked on something only a later activation can
    /// resolve, or finished; then cancels the run when cancellation was requested and the
    /// workflow does not handle it itself.
    fn poll_main(&mut self) -> Result<(), Failure> {
        self.poll_until_quiet()?;
        if self.main.is_some() && self.shared.cancel_unhandled() {
            // Dropping the main future cancels what it waited on (the drops issue the
            // cancellation commands), then the run closes as cancelled.
            drop(self.main.take());
            self.shared.state.borrow_mut().closing = true;
            self.shared
                .push_command(workflow_command::Variant::CancelWorkflowExecution(
                    CancelWorkflowExecution::default(),
                ));
        }
        Ok(())
    }

    fn poll_until_quiet(&mut self) -> Result<(), Failure> {
        let waker = self.waker.clone();
        let mut cx = Context::from_waker(&waker);
        // Always poll once: new signal deliveries have not been polled yet, whatever the flag.
        self.woken.0.store(true, Ordering::Release);
        // Whether the last round was started only to re-check `wait_condition`s.
        let mut condition_round = false;
        // Whether anything ran since conditions were last re-checked.
        let mut recheck = false;
        for _ in 0..MAX_POLLS_PER_ACTIVATION {
            if !self.woken.0.swap(false, Ordering::AcqRel) {
                // Quiet: code that ran may have changed what a condition reads, so wake the
                // waiting conditions once more; stop when a round of them changes nothing.
                let mut st = self.shared.state.borrow_mut();
                if !recheck || st.condition_waiters.is_empty() {
                    return Ok(());
                }
                recheck = false;
                condition_round = true;
                for w in std::mem::take(&mut st.condition_waiters) {
                    w.wake();
                }
                continue;
            }
            let met_before = self.shared.state.borrow().conditions_met;
            self.poll_round(&mut cx)?;
            let met_after = self.shared.state.borrow().conditions_met;
            if !condition_round || met_after != met_before {
                recheck = true;
            }
            condition_round = false;
            if self.main.is_none() && self.handlers.is_empty() {
                return Ok(());
            }
        }
        Err(self
            .failures
            .application_to_failure(&ApplicationFailure::new(
                "WorkflowBusyLoop",
                format!(
                    "workflow {} woke itself {MAX_POLLS_PER_ACTIVATION} times without waiting on \
                 anything",
                    self.shared.info.workflow_type
                ),
            )))
    }

    /// Polls handlers (signal deliveries, updates) then the main future, once each.
    fn poll_round(&mut self, cx: &mut Context<'_>) -> Result<(), Failure> {
        // Signal deliveries and update handlers first: a signal's interceptors run before the
        // code that waits for it.
        let mut i = 0;
        while i < self.handlers.len() {
            match self.handlers[i].as_mut().poll(cx) {
                Poll::Pending => i += 1,
                Poll::Ready(r) => {
                    drop(self.handlers.remove(i));
                    if let Err(e) = r {
                        return Err(self.failures.error_to_failure(&*e.0));
                    }
                }
            }
        }
        let Some(main) = self.main.as_mut() else {
            return Ok(());
        };
        let Poll::Ready(result) = main.as_mut().poll(cx) else {
            return Ok(());
        };
        // The run's result is decided: futures dropped with the main one send no cancellations.
        self.shared.state.borrow_mut().closing = true;
        let running = self.shared.state.borrow().running_updates;
        if running > 0 {
            tracing::warn!(
                workflow_type = %self.shared.info.workflow_type,
                workflow_id = %self.shared.info.workflow_id,
                "the workflow finished while {running} update handler(s) still ran; their \
                 callers get no result (await ctx.all_handlers_finished() before returning)"
            );
        }
        self.main = None;
        let variant = match result {
            Ok(payload) => {
                workflow_command::Variant::CompleteWorkflowExecution(CompleteWorkflowExecution {
                    result: Some(payload),
                })
            }
            Err(err) if err.0.is::<ContinueAsNew>() => {
                let can = err.0.downcast::<ContinueAsNew>().expect("checked above");
                if let Some(msg) = can.error {
                    return Err(self
                        .failures
                        .application_to_failure(&ApplicationFailure::new(
                            "ContinueAsNewError",
                            format!("the continue-as-new input cannot be encoded: {msg}"),
                        )));
                }
                let ctx = WorkflowContext {
                    shared: self.shared.clone(),
                };
                // The outbound stack issues the command; the run ends with it.
                let out = ctx.outbound(WorkflowOutbound::ContinueAsNew(can.cmd));
                self.handlers.push(Box::pin(out.map(|r| r.map(|_| ()))));
                // Poll it now so the command is issued in this activation.
                let last = self.handlers.len() - 1;
                if let Poll::Ready(Err(e)) = self.handlers[last].as_mut().poll(cx) {
                    return Err(self.failures.error_to_failure(&*e.0));
                }
                return Ok(());
            }
            Err(err) => match classify(&err, &self.failures) {
                Outcome::FailWorkflow(failure) => {
                    workflow_command::Variant::FailWorkflowExecution(FailWorkflowExecution {
                        failure: Some(failure),
                    })
                }
                Outcome::Cancel => workflow_command::Variant::CancelWorkflowExecution(
                    CancelWorkflowExecution::default(),
                ),
                Outcome::FailTask(failure) => {
                    // The task is retried: the run will be rebuilt from history.
                    self.shared.state.borrow_mut().closing = false;
                    return Err(failure);
                }
            },
        };
        self.shared.push_command(variant);
        Ok(())
    }
}
