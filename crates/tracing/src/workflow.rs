//! The workflow side, per run: `RunWorkflow`, `HandleSignal` and `HandleQuery` spans on the
//! inbound service, `StartActivity` and `StartNexusOperation` spans and trace headers on the
//! outbound service.
//!
//! Everything here runs in the workflow's deterministic executor, so the ids are derived from
//! the run id and a number that replays identically (the run itself, the activity's sequence
//! number, the signal's position among the run's signals); nothing reads a clock, the OS
//! random source, or the workflow's own random generator (drawing from it would change the
//! values workflow code gets). While the run replays, spans are disabled ([`Span::none`]) —
//! the original execution already recorded them — but headers are written all the same, with
//! the same ids as the first time.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::future::LocalBoxFuture;
use tower::Service;
use tracing::field::{Empty, display};
use tracing::{Instrument, Span};
use trellis_core_proto::coresdk::activity_result::activity_resolution;
use trellis_core_proto::coresdk::workflow_activation::resolve_nexus_operation_start;
use trellis_interceptor::LocalBoxService;
use trellis_worker::interceptors::{
    Headers, WorkflowInbound, WorkflowInboundResponse, WorkflowInboundService, WorkflowOutbound,
    WorkflowOutboundResponse, WorkflowOutboundService,
};
use trellis_worker::{WorkflowContext, WorkflowError};

use crate::context::{FLAG_SAMPLED, TraceContext, derive_id, derive_trace_id};

/// Where a run's replay flag comes from: the run's [`WorkflowContext`], or a stand-in in tests.
pub(crate) trait ReplayFlag {
    fn is_replaying(&self) -> bool;
}

impl ReplayFlag for WorkflowContext {
    fn is_replaying(&self) -> bool {
        WorkflowContext::is_replaying(self)
    }
}

/// The facts of a run the spans record.
#[derive(Clone, Debug)]
pub(crate) struct RunFacts {
    pub(crate) workflow_type: String,
    pub(crate) workflow_id: String,
    pub(crate) run_id: String,
}

impl RunFacts {
    fn of(ctx: &WorkflowContext) -> Self {
        let info = ctx.info();
        Self {
            workflow_type: info.workflow_type.clone(),
            workflow_id: info.workflow_id.clone(),
            run_id: info.run_id.clone(),
        }
    }

    /// The caller's context (from the start headers) and the run span's: a child of the
    /// caller's, or the root of a trace of its own when the start was not traced. Both layers
    /// compute it from the same inputs, so they agree without sharing state.
    fn contexts(&self, start_headers: &Headers) -> (Option<TraceContext>, TraceContext) {
        let parent = TraceContext::from_headers(start_headers);
        let span_id = derive_id(&self.run_id, "RunWorkflow", 0);
        let run = match &parent {
            Some(p) => p.child_with_id(span_id),
            None => TraceContext::new(derive_trace_id(&self.run_id), span_id, FLAG_SAMPLED)
                .expect("derived ids are never zero"),
        };
        (parent, run)
    }
}

/// Identifies a run's state in [`RUNS`]: the interceptor's instance and the run id.
type RunKey = (u64, String);

thread_local! {
    /// The runs on this workflow thread, so the outbound service of a run can ask its inbound
    /// service's state whether the run is replaying. Weak: the inbound service owns the state,
    /// and the outbound service must not keep the run alive (the run owns its outbound stack,
    /// so a strong reference from there would be a cycle that outlives eviction).
    static RUNS: RefCell<HashMap<RunKey, Weak<RunTracing>>> = RefCell::new(HashMap::new());
}

/// Per-process numbering of queries: queries are not in history, so their ids need not (and
/// cannot) replay; a counter and the interceptor's seed keep them unique without randomness in
/// workflow code.
static QUERIES: AtomicU64 = AtomicU64::new(0);

/// The tracing state of one run, owned by its inbound service.
pub(crate) struct RunTracing {
    key: RunKey,
    facts: RunFacts,
    parent: Option<TraceContext>,
    run: TraceContext,
    replay: Box<dyn ReplayFlag>,
    /// How many signals the run has received: the n-th signal gets the same span id on every
    /// replay.
    signals: Cell<u64>,
    query_seed: u64,
}

impl RunTracing {
    pub(crate) fn new(
        instance: u64,
        query_seed: u64,
        facts: RunFacts,
        start_headers: &Headers,
        replay: Box<dyn ReplayFlag>,
    ) -> Rc<Self> {
        let (parent, run) = facts.contexts(start_headers);
        let key = (instance, facts.run_id.clone());
        let state = Rc::new(Self {
            key: key.clone(),
            facts,
            parent,
            run,
            replay,
            signals: Cell::new(0),
            query_seed,
        });
        RUNS.with(|runs| runs.borrow_mut().insert(key, Rc::downgrade(&state)));
        state
    }

    fn replaying(&self) -> bool {
        self.replay.is_replaying()
    }
}

impl Drop for RunTracing {
    fn drop(&mut self) {
        let me: *const Self = self;
        let _ = RUNS.try_with(|runs| {
            if let Ok(mut runs) = runs.try_borrow_mut()
                && runs
                    .get(&self.key)
                    .is_some_and(|w| std::ptr::eq(w.as_ptr(), me))
            {
                runs.remove(&self.key);
            }
        });
    }
}

/// How many runs are registered on this thread (tests check that eviction cleans up).
#[cfg(test)]
pub(crate) fn registered_runs() -> usize {
    RUNS.with(|runs| runs.borrow().len())
}

/// Wraps a run's inbound service.
pub(crate) fn inbound(
    instance: u64,
    query_seed: u64,
    ctx: &WorkflowContext,
    inner: WorkflowInboundService,
) -> WorkflowInboundService {
    let state = RunTracing::new(
        instance,
        query_seed,
        RunFacts::of(ctx),
        &ctx.info().headers,
        Box::new(ctx.clone()),
    );
    inbound_with(state, inner)
}

pub(crate) fn inbound_with(
    state: Rc<RunTracing>,
    inner: WorkflowInboundService,
) -> WorkflowInboundService {
    LocalBoxService::new(InboundTracing { inner, state })
}

/// Wraps a run's outbound service.
pub(crate) fn outbound(
    instance: u64,
    ctx: &WorkflowContext,
    inner: WorkflowOutboundService,
) -> WorkflowOutboundService {
    outbound_with(
        instance,
        RunFacts::of(ctx),
        &ctx.info().headers,
        ctx.is_replaying(),
        inner,
    )
}

pub(crate) fn outbound_with(
    instance: u64,
    facts: RunFacts,
    start_headers: &Headers,
    replaying_at_start: bool,
    inner: WorkflowOutboundService,
) -> WorkflowOutboundService {
    let (_, run) = facts.contexts(start_headers);
    LocalBoxService::new(OutboundTracing {
        inner,
        key: (instance, facts.run_id.clone()),
        facts: Rc::new(facts),
        run,
        replaying_at_start,
    })
}

#[derive(Clone)]
struct InboundTracing {
    inner: WorkflowInboundService,
    state: Rc<RunTracing>,
}

impl fmt::Debug for InboundTracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundTracing")
            .field("run_id", &self.state.facts.run_id)
            .finish_non_exhaustive()
    }
}

type InboundFuture = LocalBoxFuture<'static, Result<WorkflowInboundResponse, WorkflowError>>;

impl Service<WorkflowInbound> for InboundTracing {
    type Response = WorkflowInboundResponse;
    type Error = WorkflowError;
    type Future = InboundFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WorkflowError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: WorkflowInbound) -> Self::Future {
        let st = &self.state;
        let facts = &st.facts;
        let replaying = st.replaying();
        let (span, parent) = match &request {
            WorkflowInbound::Execute(_) => {
                let span = if replaying {
                    Span::none()
                } else {
                    tracing::info_span!(
                        target: "trellis_tracing",
                        "RunWorkflow",
                        otel.name = %format_args!("RunWorkflow:{}", facts.workflow_type),
                        otel.kind = "server",
                        workflow_type = %facts.workflow_type,
                        workflow_id = %facts.workflow_id,
                        run_id = %facts.run_id,
                        trace_id = %st.run.trace_id_hex(),
                        span_id = %st.run.span_id_hex(),
                        parent_span_id = Empty,
                        error = Empty,
                    )
                };
                (span, st.parent)
            }
            WorkflowInbound::Signal(signal) => {
                let n = st.signals.get();
                st.signals.set(n + 1);
                let parent = TraceContext::from_headers(&signal.headers).unwrap_or(st.run);
                let ctx = parent.child_with_id(derive_id(&facts.run_id, "HandleSignal", n));
                let span = if replaying {
                    Span::none()
                } else {
                    tracing::info_span!(
                        target: "trellis_tracing",
                        "HandleSignal",
                        otel.name = %format_args!("HandleSignal:{}", signal.name),
                        otel.kind = "server",
                        signal = %signal.name,
                        workflow_id = %facts.workflow_id,
                        run_id = %facts.run_id,
                        trace_id = %ctx.trace_id_hex(),
                        span_id = %ctx.span_id_hex(),
                        parent_span_id = Empty,
                        error = Empty,
                    )
                };
                (span, Some(parent))
            }
            WorkflowInbound::Query(query) => {
                // Queries are never replayed from history: each one is new, so its span is
                // recorded whatever the replay flag says.
                let n = QUERIES.fetch_add(1, Ordering::Relaxed);
                let parent = TraceContext::from_headers(&query.headers).unwrap_or(st.run);
                let ctx = parent.child_with_id(derive_id(
                    &facts.run_id,
                    "HandleQuery",
                    st.query_seed ^ n,
                ));
                let span = tracing::info_span!(
                    target: "trellis_tracing",
                    "HandleQuery",
                    otel.name = %format_args!("HandleQuery:{}", query.name),
                    otel.kind = "server",
                    query = %query.name,
                    workflow_id = %facts.workflow_id,
                    run_id = %facts.run_id,
                    trace_id = %ctx.trace_id_hex(),
                    span_id = %ctx.span_id_hex(),
                    parent_span_id = Empty,
                    error = Empty,
                );
                (span, Some(parent))
            }
            WorkflowInbound::ValidateUpdate(update) | WorkflowInbound::Update(update) => {
                let handle = matches!(request, WorkflowInbound::Update(_));
                let name = if handle {
                    "HandleUpdate"
                } else {
                    "ValidateUpdate"
                };
                // Handling is replayed (accepted updates are in the history), so it counts
                // with the signals; validation never runs on replay.
                let n = if handle {
                    let n = st.signals.get();
                    st.signals.set(n + 1);
                    n
                } else {
                    st.query_seed ^ QUERIES.fetch_add(1, Ordering::Relaxed)
                };
                let parent = TraceContext::from_headers(&update.headers).unwrap_or(st.run);
                let ctx = parent.child_with_id(derive_id(&facts.run_id, name, n));
                let span = if replaying && handle {
                    Span::none()
                } else {
                    tracing::info_span!(
                        target: "trellis_tracing",
                        "HandleUpdate",
                        otel.name = %format_args!("{name}:{}", update.name),
                        otel.kind = "server",
                        update = %update.name,
                        workflow_id = %facts.workflow_id,
                        run_id = %facts.run_id,
                        trace_id = %ctx.trace_id_hex(),
                        span_id = %ctx.span_id_hex(),
                        parent_span_id = Empty,
                        error = Empty,
                    )
                };
                (span, Some(parent))
            }
        };
        if let Some(parent) = parent {
            span.record("parent_span_id", display(parent.span_id_hex()));
        }
        let fut = span.in_scope(|| self.inner.call(request));
        let record = span.clone();
        Box::pin(
            async move {
                let result = fut.await;
                if let Err(e) = &result {
                    record.record("error", display(e));
                }
                result
            }
            .instrument(span),
        )
    }
}

#[derive(Clone)]
struct OutboundTracing {
    inner: WorkflowOutboundService,
    key: RunKey,
    facts: Rc<RunFacts>,
    run: TraceContext,
    /// The replay flag when the run was built, for the (unexpected) case that the run's inbound
    /// state cannot be found.
    replaying_at_start: bool,
}

impl fmt::Debug for OutboundTracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundTracing")
            .field("run_id", &self.facts.run_id)
            .finish_non_exhaustive()
    }
}

impl OutboundTracing {
    /// A `StartNexusOperation` span from the command until the operation started (or failed
    /// to), and its context in the `traceparent` Nexus header, so the handler's span joins the
    /// trace. Its id comes from the operation's sequence number, so replays write the same
    /// header.
    fn start_nexus(&mut self, seq: u32, mut request: WorkflowOutbound) -> OutboundFuture {
        let WorkflowOutbound::StartNexusOperation(cmd) = &mut request else {
            unreachable!("checked by the caller");
        };
        let facts = &self.facts;
        let ctx = self.run.child_with_id(derive_id(
            &facts.run_id,
            "StartNexusOperation",
            u64::from(seq),
        ));
        ctx.inject_nexus(&mut cmd.nexus_header);
        let span = if self.replaying() {
            Span::none()
        } else {
            tracing::info_span!(
                target: "trellis_tracing",
                "StartNexusOperation",
                otel.name = %format_args!("StartNexusOperation:{}/{}", cmd.service, cmd.operation),
                otel.kind = "client",
                nexus_endpoint = %cmd.endpoint,
                nexus_service = %cmd.service,
                nexus_operation = %cmd.operation,
                workflow_id = %facts.workflow_id,
                run_id = %facts.run_id,
                trace_id = %ctx.trace_id_hex(),
                span_id = %ctx.span_id_hex(),
                parent_span_id = %self.run.span_id_hex(),
                error = Empty,
            )
        };
        let fut = span.in_scope(|| self.inner.call(request));
        let record = span.clone();
        Box::pin(
            async move {
                let result = fut.await;
                match &result {
                    Ok(WorkflowOutboundResponse::NexusStarted(r)) => {
                        if let Some(resolve_nexus_operation_start::Status::Failed(f)) = &r.status {
                            record.record("error", f.message.as_str());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        record.record("error", display(e));
                    }
                }
                result
            }
            .instrument(span),
        )
    }

    fn replaying(&self) -> bool {
        // Take the state out of the map before using it, so no borrow of the map is held if
        // this happens to be the last strong reference.
        let state = RUNS.with(|runs| runs.borrow().get(&self.key).and_then(Weak::upgrade));
        state.map_or(self.replaying_at_start, |s| s.replaying())
    }
}

type OutboundFuture = LocalBoxFuture<'static, Result<WorkflowOutboundResponse, WorkflowError>>;

impl Service<WorkflowOutbound> for OutboundTracing {
    type Response = WorkflowOutboundResponse;
    type Error = WorkflowError;
    type Future = OutboundFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WorkflowError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: WorkflowOutbound) -> Self::Future {
        if let WorkflowOutbound::StartNexusOperation(cmd) = &mut request {
            return self.start_nexus(cmd.seq, request);
        }
        let WorkflowOutbound::ScheduleActivity(cmd) = &mut request else {
            return Box::pin(self.inner.call(request));
        };
        let facts = &self.facts;
        let ctx = self.run.child_with_id(derive_id(
            &facts.run_id,
            "StartActivity",
            u64::from(cmd.seq),
        ));
        ctx.inject(&mut cmd.headers);
        let span = if self.replaying() {
            Span::none()
        } else {
            tracing::info_span!(
                target: "trellis_tracing",
                "StartActivity",
                otel.name = %format_args!("StartActivity:{}", cmd.activity_type),
                otel.kind = "client",
                activity_type = %cmd.activity_type,
                activity_id = %cmd.activity_id,
                workflow_id = %facts.workflow_id,
                run_id = %facts.run_id,
                trace_id = %ctx.trace_id_hex(),
                span_id = %ctx.span_id_hex(),
                parent_span_id = %self.run.span_id_hex(),
                error = Empty,
            )
        };
        let fut = span.in_scope(|| self.inner.call(request));
        let record = span.clone();
        Box::pin(
            async move {
                let result = fut.await;
                match &result {
                    Ok(WorkflowOutboundResponse::ActivityResolved(r)) => match &r.status {
                        Some(activity_resolution::Status::Failed(f)) => {
                            let msg = f.failure.as_ref().map_or("", |f| f.message.as_str());
                            record.record("error", msg);
                        }
                        Some(activity_resolution::Status::Cancelled(_)) => {
                            record.record("error", "cancelled");
                        }
                        _ => {}
                    },
                    Ok(_) => {}
                    Err(e) => {
                        record.record("error", display(e));
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}
