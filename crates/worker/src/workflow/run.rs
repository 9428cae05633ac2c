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
    WorkflowActivation, workflow_activation_job,
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
use crate::error::{Outcome, WorkflowError, classify, panic_message};
use crate::interceptors::{
    ExecuteWorkflow, QueryInput, SignalInput, WorkflowInbound, WorkflowInboundResponse,
    WorkflowInboundService,
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
    /// Signal deliveries whose interceptors are still waiting on something.
    signals: Vec<LocalBoxFuture<'static, Result<WorkflowInboundResponse, WorkflowError>>>,
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
            signals: Vec::new(),
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
                    self.signals.push(Box::pin(delivery));
                    needs_poll = true;
                }
                J::CancelWorkflow(c) => {
                    self.shared.request_cancel(c.reason);
                    needs_poll = true;
                }
                J::QueryWorkflow(q) => queries.push(q),
                J::NotifyHasPatch(p) => self.shared.notify_patch(p.patch_id),
                J::DoUpdate(u) => {
                    let failure = self
                        .failures
                        .application_to_failure(&ApplicationFailure::new(
                            "UnknownUpdate",
                            format!(
                                "workflow type {} has no handler for update {:?}",
                                self.shared.info.workflow_type, u.name
                            ),
                        ));
                    self.shared
                        .push_command(workflow_command::Variant::UpdateResponse(UpdateResponse {
                            protocol_instance_id: u.protocol_instance_id,
                            response: Some(update_response::Response::Rejected(failure)),
                        }));
                }
                J::RemoveFromCache(_) => {}
                other => {
                    return Err(self
                        .failures
                        .application_to_failure(&ApplicationFailure::new(
                            "UnsupportedJob",
                            format!(
                                "this Trellis version cannot apply {} to workflow type {}",
                                job_name(&other),
                                self.shared.info.workflow_type
                            ),
                        )));
                }
            }
        }
        if needs_poll {
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

    /// Polls the main future until it is blocked on something only a later activation can
    /// resolve, or finished.
    fn poll_main(&mut self) -> Result<(), Failure> {
        let mut cx = Context::from_waker(&self.waker);
        // Always poll once: new signal deliveries have not been polled yet, whatever the flag.
        self.woken.0.store(true, Ordering::Release);
        for _ in 0..MAX_POLLS_PER_ACTIVATION {
            if !self.woken.0.swap(false, Ordering::AcqRel) {
                return Ok(());
            }
            // Signal deliveries first: a signal's interceptors run before the code that waits
            // for it.
            let mut i = 0;
            while i < self.signals.len() {
                match self.signals[i].as_mut().poll(&mut cx) {
                    Poll::Pending => i += 1,
                    Poll::Ready(r) => {
                        // `remove`, not `swap_remove`: signals of one activation reach
                        // the code in the order they arrived.
                        drop(self.signals.remove(i));
                        if let Err(e) = r {
                            return Err(self.failures.error_to_failure(&*e.0));
                        }
                    }
                }
            }
            let Some(main) = self.main.as_mut() else {
                return Ok(());
            };
            if let Poll::Ready(result) = main.as_mut().poll(&mut cx) {
                self.main = None;
                let variant = match result {
                    Ok(payload) => workflow_command::Variant::CompleteWorkflowExecution(
                        CompleteWorkflowExecution {
                            result: Some(payload),
                        },
                    ),
                    Err(err) => match classify(&err, &self.failures) {
                        Outcome::FailWorkflow(failure) => {
                            workflow_command::Variant::FailWorkflowExecution(
                                FailWorkflowExecution {
                                    failure: Some(failure),
                                },
                            )
                        }
                        Outcome::Cancel => workflow_command::Variant::CancelWorkflowExecution(
                            CancelWorkflowExecution::default(),
                        ),
                        Outcome::FailTask(failure) => return Err(failure),
                    },
                };
                self.shared.push_command(variant);
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
}

fn job_name(v: &workflow_activation_job::Variant) -> &'static str {
    use workflow_activation_job::Variant as J;
    match v {
        J::InitializeWorkflow(_) => "InitializeWorkflow",
        J::FireTimer(_) => "FireTimer",
        J::UpdateRandomSeed(_) => "UpdateRandomSeed",
        J::QueryWorkflow(_) => "QueryWorkflow",
        J::CancelWorkflow(_) => "CancelWorkflow",
        J::SignalWorkflow(_) => "SignalWorkflow",
        J::ResolveActivity(_) => "ResolveActivity",
        J::NotifyHasPatch(_) => "NotifyHasPatch",
        J::ResolveChildWorkflowExecutionStart(_) => "ResolveChildWorkflowExecutionStart",
        J::ResolveChildWorkflowExecution(_) => "ResolveChildWorkflowExecution",
        J::ResolveSignalExternalWorkflow(_) => "ResolveSignalExternalWorkflow",
        J::ResolveRequestCancelExternalWorkflow(_) => "ResolveRequestCancelExternalWorkflow",
        J::DoUpdate(_) => "DoUpdate",
        J::ResolveNexusOperationStart(_) => "ResolveNexusOperationStart",
        J::ResolveNexusOperation(_) => "ResolveNexusOperation",
        J::RemoveFromCache(_) => "RemoveFromCache",
    }
}
