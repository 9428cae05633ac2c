//! The thread that owns every cached workflow run of a worker.
//!
//! Workflow futures are `!Send` and must only advance when an activation says so, so they live on
//! one OS thread with no async runtime: the poll loop hands it an activation, it applies the jobs,
//! polls the run's future until it is blocked, and hands back the completion.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;
use trellis_converter::{ApplicationFailure, DataConverter};
use trellis_core_proto::coresdk::workflow_activation::{
    InitializeWorkflow, WorkflowActivation, workflow_activation_job,
};
use trellis_core_proto::coresdk::workflow_completion::WorkflowActivationCompletion;
use trellis_core_proto::time::from_proto_timestamp;

use futures::FutureExt;
use futures::future::LocalBoxFuture;
use trellis_interceptor::LocalBoxService;

use super::context::{WorkflowContext, WorkflowInfo, base_outbound};
use super::messages::{find_update, unknown_update};
use super::run::WorkflowRun;
use crate::error::WorkflowError;
use crate::interceptors::{
    ExecuteWorkflow, WorkflowInbound, WorkflowInboundResponse, WorkflowInboundService,
    WorkflowLayers,
};
use crate::registry::{WorkflowFactory, WorkflowRegistry};

type Reply = oneshot::Sender<WorkflowActivationCompletion>;

/// A handle to the workflow thread; dropping every handle stops the thread.
#[derive(Clone)]
pub(crate) struct WorkflowThread {
    tx: mpsc::Sender<(WorkflowActivation, Reply)>,
}

pub(crate) struct ThreadSetup {
    pub(crate) registry: Arc<WorkflowRegistry>,
    pub(crate) converter: DataConverter,
    pub(crate) namespace: String,
    pub(crate) task_queue: String,
    pub(crate) layers: WorkflowLayers,
}

impl WorkflowThread {
    pub(crate) fn spawn(setup: ThreadSetup) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<(WorkflowActivation, Reply)>();
        std::thread::Builder::new()
            .name(format!("trellis-workflows-{}", setup.task_queue))
            .spawn(move || {
                let mut runs = WorkflowRuns::new(setup);
                while let Ok((act, reply)) = rx.recv() {
                    let completion = runs.activate(act);
                    let _ = reply.send(completion);
                }
            })?;
        Ok(Self { tx })
    }

    /// Runs one activation on the thread and waits for its completion.
    pub(crate) async fn activate(
        &self,
        act: WorkflowActivation,
    ) -> Option<WorkflowActivationCompletion> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((act, reply)).ok()?;
        rx.await.ok()
    }
}

/// The cached workflow runs of one thread, activated in place: what the workflow thread runs,
/// and what a replay lane runs directly on its own thread.
pub(crate) struct WorkflowRuns {
    setup: ThreadSetup,
    runs: HashMap<String, WorkflowRun>,
}

impl WorkflowRuns {
    pub(crate) fn new(setup: ThreadSetup) -> Self {
        Self {
            setup,
            runs: HashMap::new(),
        }
    }

    /// Applies one activation and returns its completion.
    pub(crate) fn activate(&mut self, act: WorkflowActivation) -> WorkflowActivationCompletion {
        handle(&self.setup, &mut self.runs, act)
    }
}

fn handle(
    setup: &ThreadSetup,
    runs: &mut HashMap<String, WorkflowRun>,
    mut act: WorkflowActivation,
) -> WorkflowActivationCompletion {
    use workflow_activation_job::Variant as J;
    let run_id = act.run_id.clone();
    // An eviction is always alone: drop the run (and its future) and acknowledge.
    if act
        .jobs
        .iter()
        .any(|j| matches!(j.variant, Some(J::RemoveFromCache(_))))
    {
        runs.remove(&run_id);
        return WorkflowActivationCompletion::empty(run_id);
    }
    let init = act.jobs.iter_mut().find_map(|j| match &mut j.variant {
        Some(J::InitializeWorkflow(init)) => Some(std::mem::take(init)),
        _ => None,
    });
    if let Some(init) = init {
        match start_run(setup, &run_id, init, &act) {
            Ok(run) => {
                runs.insert(run_id.clone(), run);
            }
            Err(failure) => return WorkflowActivationCompletion::fail(run_id, failure, None),
        }
    }
    match runs.get_mut(&run_id) {
        Some(run) => run.activate(act),
        None => WorkflowActivationCompletion::fail(
            run_id,
            setup.converter.failures().application_to_failure(&ApplicationFailure::new(
                "RunNotCached",
                "the workflow run is not in this worker's cache; it will be rebuilt from history",
            )),
            None,
        ),
    }
}

fn start_run(
    setup: &ThreadSetup,
    run_id: &str,
    init: InitializeWorkflow,
    act: &WorkflowActivation,
) -> Result<WorkflowRun, trellis_core_proto::Failure> {
    let Some(factory) = setup.registry.get(&init.workflow_type) else {
        let msg = format!(
            "workflow type {:?} is not registered on this worker (task queue {:?}); \
             registered types: [{}]",
            init.workflow_type,
            setup.task_queue,
            setup.registry.names().join(", ")
        );
        tracing::warn!(run_id, "{msg}");
        return Err(setup
            .converter
            .failures()
            .application_to_failure(&ApplicationFailure::new("NotFoundError", msg)));
    };
    let info = WorkflowInfo {
        namespace: setup.namespace.clone(),
        task_queue: setup.task_queue.clone(),
        workflow_type: init.workflow_type.clone(),
        workflow_id: init.workflow_id.clone(),
        run_id: run_id.to_owned(),
        attempt: init.attempt,
        start_time: init
            .start_time
            .as_ref()
            .map(from_proto_timestamp)
            .or_else(|| act.timestamp.as_ref().map(from_proto_timestamp)),
        headers: init.headers.clone(),
        parent_workflow_id: init
            .parent_workflow_info
            .as_ref()
            .map(|p| p.workflow_id.clone()),
        parent_run_id: init.parent_workflow_info.as_ref().map(|p| p.run_id.clone()),
        continued_from_run_id: Some(init.continued_from_execution_run_id.clone())
            .filter(|r| !r.is_empty()),
        first_execution_run_id: init.first_execution_run_id.clone(),
        memo: init.memo.clone().map(|m| m.fields).unwrap_or_default(),
        search_attributes: init
            .search_attributes
            .clone()
            .map(|s| s.indexed_fields)
            .unwrap_or_default(),
    };
    let ctx = WorkflowContext::new(info, setup.converter.clone(), init.randomness_seed);
    *ctx.shared.outbound.borrow_mut() =
        Some(setup.layers.wrap_outbound(&ctx, base_outbound(&ctx.shared)));
    let inbound = setup
        .layers
        .wrap_inbound(&ctx, base_inbound(&ctx, factory.clone()));
    Ok(WorkflowRun::new(
        ctx,
        inbound,
        ExecuteWorkflow {
            args: init.arguments,
            headers: init.headers,
        },
    ))
}

/// The innermost inbound service of a run: the workflow function, the signal queues and the
/// query handlers.
fn base_inbound(ctx: &WorkflowContext, factory: WorkflowFactory) -> WorkflowInboundService {
    let ctx = ctx.clone();
    LocalBoxService::from_fn(move |req: WorkflowInbound| {
        let ctx = ctx.clone();
        let factory = factory.clone();
        let fut: LocalBoxFuture<'static, Result<WorkflowInboundResponse, WorkflowError>> = match req
        {
            WorkflowInbound::Execute(e) => {
                Box::pin(factory(ctx, e.args).map(|r| r.map(WorkflowInboundResponse::Completed)))
            }
            WorkflowInbound::Signal(s) => {
                ctx.shared.signal(&s.name, s.args);
                Box::pin(std::future::ready(Ok(
                    WorkflowInboundResponse::SignalAccepted,
                )))
            }
            WorkflowInbound::Query(q) => {
                let answer = match ctx.shared.query_handler(&q.name) {
                    Some(handler) => handler(&q.args).map_err(WorkflowError::task),
                    None if q.name != "__stack_trace"
                        && ctx.shared.dynamic_query_handler().is_some() =>
                    {
                        let handler = ctx.shared.dynamic_query_handler().expect("checked");
                        handler(&q.name, &q.args).map_err(WorkflowError::task)
                    }
                    None if q.name == "__stack_trace" => ctx
                        .data_converter()
                        .encode("stack traces are not available for Trellis workflows")
                        .map_err(WorkflowError::task),
                    None => Err(WorkflowError::task(format!(
                        "workflow type {} has no handler for query {:?}; known queries: [{}]",
                        ctx.info().workflow_type,
                        q.name,
                        ctx.shared.query_names().join(", ")
                    ))),
                };
                Box::pin(std::future::ready(
                    answer.map(WorkflowInboundResponse::QueryAnswer),
                ))
            }
            WorkflowInbound::ValidateUpdate(u) => {
                let verdict = match find_update(&ctx, &u.name) {
                    None => Err(unknown_update(&ctx, &u.name)),
                    Some((Some(validator), _)) => validator(&u.args),
                    Some((None, _)) => Ok(()),
                };
                Box::pin(std::future::ready(
                    verdict.map(|()| WorkflowInboundResponse::UpdateValid),
                ))
            }
            WorkflowInbound::Update(u) => match find_update(&ctx, &u.name) {
                None => Box::pin(std::future::ready(Err(unknown_update(&ctx, &u.name)))),
                Some((_, handler)) => Box::pin(
                    handler(u.args).map(|r| r.map(WorkflowInboundResponse::UpdateCompleted)),
                ),
            },
        };
        fut
    })
}
