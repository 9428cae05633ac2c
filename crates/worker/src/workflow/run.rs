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

use super::context::{RunShared, WorkflowContext};
use crate::error::{Outcome, WorkflowError, classify, panic_message};

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
    main: Option<WorkflowFuture>,
    woken: Arc<WakeFlag>,
    waker: Waker,
    failures: FailureConverter,
}

impl WorkflowRun {
    pub(crate) fn new(ctx: WorkflowContext, main: WorkflowFuture) -> Self {
        let woken = Arc::new(WakeFlag(AtomicBool::new(true)));
        Self {
            shared: ctx.shared.clone(),
            main: Some(main),
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
                    self.shared.signal(&s.signal_name, s.input);
                    needs_poll = true;
                }
                J::CancelWorkflow(c) => {
                    self.shared.request_cancel(c.reason);
                    needs_poll = true;
                }
                J::QueryWorkflow(q) => queries.push(q),
                J::NotifyHasPatch(_) => {}
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
        for q in queries {
            let result = match self.shared.query_handler(&q.query_type) {
                Some(handler) => handler(&q.arguments),
                None if q.query_type == "__stack_trace" => {
                    Ok(trellis_converter::DataConverter::default()
                        .encode("stack traces are not available for Trellis workflows")
                        .map_err(|e| e.to_string())?)
                }
                None => Err(format!(
                    "workflow type {} has no handler for query {:?}; known queries: [{}]",
                    self.shared.info.workflow_type,
                    q.query_type,
                    self.shared.query_names().join(", ")
                )),
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
        for _ in 0..MAX_POLLS_PER_ACTIVATION {
            if !self.woken.0.swap(false, Ordering::AcqRel) {
                return Ok(());
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
