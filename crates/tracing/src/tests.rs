//! Each layer against a mock inner service that panics when called before it was readied.

#[path = "../tests/common/capture.rs"]
mod capture;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use capture::{Capture, SpanRecord};
use futures::executor::block_on;
use futures::future::BoxFuture;
use std::collections::HashMap;
use tower::{Layer, Service, ServiceExt};
use trellis_client::WorkflowOptions;
use trellis_client::interceptors::{
    AsyncActivityCall, AsyncActivityId, ClientCall, ClientCallResponse, QueryCall, SignalCall,
    SignalWithStartCall, StartWorkflowCall, TargetCall,
};
use trellis_core_proto::coresdk::activity_result::{
    ActivityResolution, Success, activity_resolution,
};
use trellis_core_proto::coresdk::workflow_activation::{
    ResolveNexusOperationStart, resolve_nexus_operation_start,
};
use trellis_core_proto::coresdk::workflow_commands::{ScheduleActivity, ScheduleNexusOperation};
use trellis_core_proto::payload::{encoding, new_payload};
use trellis_interceptor::BoxError;
use trellis_interceptor::LocalBoxService;
use trellis_worker::interceptors::{
    ExecuteWorkflow, Headers, QueryInput, SignalInput, StartTimerInput, WorkflowInbound,
    WorkflowInboundResponse, WorkflowInboundService, WorkflowOutbound, WorkflowOutboundResponse,
    WorkflowOutboundService,
};
use trellis_worker::interceptors::{
    NexusCancelOperation, NexusInbound, NexusInboundResponse, NexusStartOperation,
};
use trellis_worker::{ActivityInfo, WorkflowError};

use crate::ClientTracingLayer;
use crate::context::TraceContext;
use crate::workflow::{self, ReplayFlag, RunFacts, RunTracing};

type Respond<Req, Res, Err> = Arc<dyn Fn(&Req) -> Result<Res, Err> + Send + Sync>;

/// The inner service: answers with `respond`, keeps every request, records
/// [`TraceContext::current`] while its future runs, and panics when called before `poll_ready`
/// said it was ready. `gate` closed keeps it not ready.
struct Mock<Req, Res, Err> {
    requests: Arc<Mutex<Vec<Req>>>,
    current: Arc<Mutex<Vec<Option<TraceContext>>>>,
    respond: Respond<Req, Res, Err>,
    gate: Arc<AtomicBool>,
    ready: bool,
}

impl<Req, Res, Err> Clone for Mock<Req, Res, Err> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
            current: self.current.clone(),
            respond: self.respond.clone(),
            gate: self.gate.clone(),
            ready: false,
        }
    }
}

impl<Req, Res, Err> Mock<Req, Res, Err> {
    fn new(respond: impl Fn(&Req) -> Result<Res, Err> + Send + Sync + 'static) -> Self {
        Self {
            requests: Arc::default(),
            current: Arc::default(),
            respond: Arc::new(respond),
            gate: Arc::new(AtomicBool::new(true)),
            ready: false,
        }
    }

    fn take_requests(&self) -> Vec<Req> {
        std::mem::take(&mut self.requests.lock().unwrap())
    }
}

impl<Req, Res, Err> Service<Req> for Mock<Req, Res, Err>
where
    Res: Send + 'static,
    Err: Send + 'static,
{
    type Response = Res;
    type Error = Err;
    type Future = BoxFuture<'static, Result<Res, Err>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Err>> {
        if self.gate.load(Ordering::SeqCst) {
            self.ready = true;
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        assert!(
            self.ready,
            "the inner service was called before it was ready"
        );
        self.ready = false;
        let result = (self.respond)(&req);
        self.requests.lock().unwrap().push(req);
        let current = self.current.clone();
        Box::pin(async move {
            current.lock().unwrap().push(TraceContext::current());
            result
        })
    }
}

/// Runs `f` with a capturing subscriber as this thread's default; returns its result and the
/// spans.
fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<SpanRecord>) {
    let capture = Capture::default();
    let r = tracing::subscriber::with_default(capture.subscriber(), f);
    (r, capture.spans())
}

fn header_context(headers: &Headers) -> TraceContext {
    TraceContext::from_headers(headers).expect("the request carries a trace context")
}

fn assert_span_is(span: &SpanRecord, ctx: &TraceContext, parent: Option<&TraceContext>) {
    assert_eq!(span.field("trace_id"), ctx.trace_id_hex(), "{span:?}");
    assert_eq!(span.field("span_id"), ctx.span_id_hex(), "{span:?}");
    assert_eq!(
        span.get("parent_span_id"),
        parent.map(|p| p.span_id_hex()).as_deref(),
        "{span:?}"
    );
}

// ---- client ----

type ClientMock = Mock<ClientCall, ClientCallResponse, String>;

fn client_mock() -> ClientMock {
    Mock::new(|call: &ClientCall| match call {
        ClientCall::StartWorkflow(_) | ClientCall::SignalWithStart(_) => {
            Ok(ClientCallResponse::Started {
                run_id: "run-1".into(),
                link: None,
            })
        }
        ClientCall::Query(_) => Ok(ClientCallResponse::QueryAnswer(vec![])),
        ClientCall::Terminate(_) => Err("terminate refused".to_owned()),
        _ => Ok(ClientCallResponse::Accepted),
    })
}

fn start_call() -> ClientCall {
    ClientCall::StartWorkflow(StartWorkflowCall {
        workflow_type: "Greet".into(),
        args: vec![],
        options: WorkflowOptions::new("wf-1", "tq"),
    })
}

fn call_headers(call: &mut ClientCall) -> Headers {
    call.headers_mut().cloned().unwrap_or_default()
}

#[test]
fn client_start_carries_the_context_of_its_span() {
    let mock = client_mock();
    let svc = ClientTracingLayer::new().layer(mock.clone());
    let (result, spans) = capture(|| block_on(svc.oneshot(start_call())));
    assert!(matches!(result, Ok(ClientCallResponse::Started { .. })));

    let mut sent = mock.take_requests();
    assert_eq!(sent.len(), 1);
    let ctx = header_context(&call_headers(&mut sent[0]));
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "temporal.client");
    assert_eq!(span.full_name(), "StartWorkflow:Greet");
    assert_eq!(span.field("otel.kind"), "client");
    assert_eq!(span.field("call"), "start_workflow");
    assert_eq!(span.field("workflow_id"), "wf-1");
    assert_eq!(span.field("run_id"), "run-1", "recorded from the response");
    assert_eq!(span.get("error"), None);
    assert!(span.closed);
    assert_span_is(span, &ctx, None);
}

#[test]
fn signal_with_start_carries_the_context_and_async_activity_calls_are_traced() {
    let mock = client_mock();
    let svc = ClientTracingLayer::new().layer(mock.clone());
    let sws = ClientCall::SignalWithStart(SignalWithStartCall {
        workflow_type: "Cart".into(),
        args: vec![],
        options: WorkflowOptions::new("cart-1", "tq"),
        signal_name: "add".into(),
        signal_args: vec![],
    });
    let complete = ClientCall::CompleteActivity(AsyncActivityCall {
        activity: AsyncActivityId::ids("cart-1", Some("run-1".into()), "7"),
        details: vec![],
    });
    let (_, spans) = capture(|| {
        block_on(async {
            svc.clone().oneshot(sws).await.unwrap();
            svc.clone().oneshot(complete).await.unwrap();
        })
    });
    let mut sent = mock.take_requests();
    assert_eq!(sent.len(), 2);
    let ctx = header_context(&call_headers(&mut sent[0]));
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].full_name(), "SignalWithStartWorkflow:Cart");
    assert_eq!(spans[0].field("call"), "signal_with_start_workflow");
    assert_eq!(
        spans[0].field("run_id"),
        "run-1",
        "recorded from the response"
    );
    assert_span_is(&spans[0], &ctx, None);
    // No headers on async activity completion: traced, nothing injected.
    assert!(sent[1].headers_mut().is_none());
    assert_eq!(spans[1].full_name(), "CompleteActivity");
    assert_eq!(spans[1].field("workflow_id"), "cart-1");
    assert_eq!(spans[1].field("run_id"), "run-1");
}

#[test]
fn client_calls_in_a_scope_are_children_of_it() {
    let mock = client_mock();
    let svc = ClientTracingLayer::new().layer(mock.clone());
    let parent = TraceContext::new_root();
    let signal = ClientCall::Signal(SignalCall {
        workflow_id: "wf-1".into(),
        run_id: Some("run-1".into()),
        name: "go".into(),
        args: vec![],
        headers: Headers::new(),
    });
    let query = ClientCall::Query(QueryCall {
        workflow_id: "wf-1".into(),
        run_id: None,
        name: "state".into(),
        args: vec![],
        headers: Headers::new(),
    });
    let (_, spans) = capture(|| {
        block_on(parent.scope(async {
            svc.clone().oneshot(signal).await.unwrap();
            svc.clone().oneshot(query).await.unwrap();
        }))
    });
    let mut sent = mock.take_requests();
    assert_eq!(spans.len(), 2);
    for (span, (call, full_name)) in spans.iter().zip(
        sent.iter_mut()
            .zip(["SignalWorkflow:go", "QueryWorkflow:state"]),
    ) {
        let ctx = header_context(&call_headers(call));
        assert_eq!(ctx.trace_id(), parent.trace_id());
        assert_span_is(span, &ctx, Some(&parent));
        assert_eq!(span.full_name(), full_name);
    }
    assert_eq!(spans[0].field("run_id"), "run-1");
    assert_ne!(spans[0].field("span_id"), spans[1].field("span_id"));
}

#[test]
fn client_calls_without_headers_are_traced_and_failures_recorded() {
    let mock = client_mock();
    let svc = ClientTracingLayer::new().layer(mock.clone());
    let target = TargetCall {
        workflow_id: "wf-1".into(),
        run_id: None,
        reason: "done".into(),
    };
    let (results, spans) = capture(|| {
        block_on(async {
            (
                svc.clone()
                    .oneshot(ClientCall::Cancel(target.clone()))
                    .await,
                svc.clone()
                    .oneshot(ClientCall::Terminate(target.clone()))
                    .await,
            )
        })
    });
    assert!(results.0.is_ok());
    assert_eq!(results.1.unwrap_err(), "terminate refused");
    let names: Vec<_> = spans.iter().map(|s| s.full_name().to_owned()).collect();
    assert_eq!(names, ["CancelWorkflow", "TerminateWorkflow"]);
    assert_eq!(spans[0].get("error"), None);
    assert_eq!(spans[1].get("error"), Some("terminate refused"));
    // Two independent calls: two traces.
    assert_ne!(spans[0].field("trace_id"), spans[1].field("trace_id"));
}

#[test]
fn client_layer_is_ready_only_when_the_inner_service_is() {
    let mock = client_mock();
    mock.gate.store(false, Ordering::SeqCst);
    let mut svc = ClientTracingLayer::new().layer(mock.clone());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_pending());
    mock.gate.store(true, Ordering::SeqCst);
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    drop(block_on(svc.call(start_call())));
}

// ---- activity ----

fn activity_info() -> ActivityInfo {
    ActivityInfo {
        activity_id: "1".into(),
        activity_type: "compose".into(),
        attempt: 2,
        workflow_namespace: "default".into(),
        workflow_type: "Greet".into(),
        workflow_id: "wf-1".into(),
        workflow_run_id: "run-1".into(),
        task_queue: "tq".into(),
        scheduled_time: None,
        heartbeat_timeout: None,
        start_to_close_timeout: None,
        headers: Headers::new(),
    }
}

type ActivityMock = Mock<(), trellis_core_proto::Payload, String>;

/// What the activity layer does with one attempt, with a mock attempt in place of the
/// activity (an `ActivityRequest` needs an `ActivityContext`, which only a worker can make).
fn run_attempt(mock: &ActivityMock, headers: &Headers) -> Result<(), String> {
    let (span, ctx) = crate::activity::attempt_span(&activity_info(), headers);
    let mut inner = mock.clone();
    block_on(async {
        futures::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
        let fut = span.in_scope(|| ctx.sync_scope(|| inner.call(())));
        crate::activity::traced(span, ctx, fut).await.map(drop)
    })
}

#[test]
fn activity_attempt_is_a_child_of_the_scheduling_span_and_sets_current() {
    let mock = ActivityMock::new(|_| Ok(new_payload(encoding::JSON, b"1".to_vec())));
    let parent = TraceContext::new_root();
    let mut headers = Headers::new();
    parent.inject(&mut headers);
    let (result, spans) = capture(|| run_attempt(&mock, &headers));
    result.unwrap();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "RunActivity");
    assert_eq!(span.full_name(), "RunActivity:compose");
    assert_eq!(span.field("activity_id"), "1");
    assert_eq!(span.field("attempt"), "2");
    assert_eq!(span.field("workflow_id"), "wf-1");
    assert_eq!(span.field("run_id"), "run-1");
    let current = mock.current.lock().unwrap().clone();
    let ctx = current[0].expect("the attempt runs with its span's context as current");
    assert_eq!(ctx.trace_id(), parent.trace_id());
    assert_span_is(span, &ctx, Some(&parent));
    assert_eq!(TraceContext::current(), None, "only inside the attempt");
}

#[test]
fn untraced_activity_starts_a_trace_and_records_failure() {
    let mock = ActivityMock::new(|_| Err("disk on fire".to_owned()));
    let (result, spans) = capture(|| run_attempt(&mock, &Headers::new()));
    assert_eq!(result.unwrap_err(), "disk on fire");
    let span = &spans[0];
    assert_eq!(span.get("parent_span_id"), None);
    assert_eq!(span.field("trace_id").len(), 32);
    assert_eq!(span.get("error"), Some("disk on fire"));
}

// ---- workflow ----

struct TestReplay(Rc<Cell<bool>>);

impl ReplayFlag for TestReplay {
    fn is_replaying(&self) -> bool {
        self.0.get()
    }
}

type InboundMock = Mock<WorkflowInbound, WorkflowInboundResponse, WorkflowError>;
type OutboundMock = Mock<WorkflowOutbound, WorkflowOutboundResponse, WorkflowError>;

/// One run's inbound and outbound stacks around mocks, as the worker builds them.
struct Run {
    replaying: Rc<Cell<bool>>,
    inbound: WorkflowInboundService,
    outbound: WorkflowOutboundService,
    inbound_mock: InboundMock,
    outbound_mock: OutboundMock,
}

const INSTANCE: u64 = 1_000_000;

fn run(run_id: &str, start_headers: &Headers, replaying: bool) -> Run {
    let facts = RunFacts {
        workflow_type: "Greet".into(),
        workflow_id: "wf-1".into(),
        run_id: run_id.into(),
    };
    let flag = Rc::new(Cell::new(replaying));
    let inbound_mock = InboundMock::new(|req: &WorkflowInbound| match req {
        WorkflowInbound::Execute(_) => Ok(WorkflowInboundResponse::Completed(new_payload(
            encoding::JSON,
            b"\"done\"".to_vec(),
        ))),
        WorkflowInbound::Signal(_) => Ok(WorkflowInboundResponse::SignalAccepted),
        WorkflowInbound::Query(q) if q.name == "broken" => Err(WorkflowError::task("no such")),
        WorkflowInbound::Query(_) => Ok(WorkflowInboundResponse::QueryAnswer(new_payload(
            encoding::JSON,
            b"1".to_vec(),
        ))),
        WorkflowInbound::ValidateUpdate(_) => Ok(WorkflowInboundResponse::UpdateValid),
        WorkflowInbound::Update(_) => Ok(WorkflowInboundResponse::UpdateCompleted(new_payload(
            encoding::JSON,
            b"2".to_vec(),
        ))),
    });
    let outbound_mock = OutboundMock::new(|req: &WorkflowOutbound| match req {
        WorkflowOutbound::ScheduleActivity(_) => Ok(WorkflowOutboundResponse::ActivityResolved(
            Box::new(ActivityResolution {
                status: Some(activity_resolution::Status::Completed(Success {
                    result: None,
                })),
            }),
        )),
        WorkflowOutbound::StartTimer(_) => Ok(WorkflowOutboundResponse::TimerFired),
        WorkflowOutbound::StartNexusOperation(cmd) => Ok(WorkflowOutboundResponse::NexusStarted(
            Box::new(ResolveNexusOperationStart {
                seq: cmd.seq,
                status: Some(resolve_nexus_operation_start::Status::OperationToken(
                    "tok".into(),
                )),
            }),
        )),
        other => Err(WorkflowError::task(format!("not mocked: {}", other.name()))),
    });
    // The worker builds the outbound stack first, then the inbound one.
    let outbound = workflow::outbound_with(
        INSTANCE,
        facts.clone(),
        start_headers,
        replaying,
        LocalBoxService::new(outbound_mock.clone()),
    );
    let state = RunTracing::new(
        INSTANCE,
        7,
        facts,
        start_headers,
        Box::new(TestReplay(flag.clone())),
    );
    let inbound = workflow::inbound_with(state, LocalBoxService::new(inbound_mock.clone()));
    Run {
        replaying: flag,
        inbound,
        outbound,
        inbound_mock,
        outbound_mock,
    }
}

impl Run {
    fn execute(&self, headers: &Headers) {
        block_on(
            self.inbound
                .clone()
                .oneshot(WorkflowInbound::Execute(ExecuteWorkflow {
                    args: vec![],
                    headers: headers.clone(),
                })),
        )
        .unwrap();
    }

    fn signal(&self, headers: &Headers) {
        block_on(
            self.inbound
                .clone()
                .oneshot(WorkflowInbound::Signal(SignalInput {
                    name: "go".into(),
                    args: vec![],
                    headers: headers.clone(),
                })),
        )
        .unwrap();
    }

    fn query(&self, name: &str, headers: &Headers) -> Result<(), WorkflowError> {
        block_on(
            self.inbound
                .clone()
                .oneshot(WorkflowInbound::Query(QueryInput {
                    name: name.into(),
                    args: vec![],
                    headers: headers.clone(),
                })),
        )
        .map(drop)
    }

    /// Schedules activity `seq`; returns the headers it went out with.
    fn schedule(&self, seq: u32) -> Headers {
        block_on(
            self.outbound
                .clone()
                .oneshot(WorkflowOutbound::ScheduleActivity(Box::new(
                    ScheduleActivity {
                        seq,
                        activity_id: seq.to_string(),
                        activity_type: "compose".into(),
                        ..Default::default()
                    },
                ))),
        )
        .unwrap();
        match self.outbound_mock.take_requests().pop() {
            Some(WorkflowOutbound::ScheduleActivity(cmd)) => cmd.headers,
            other => panic!("expected the schedule to reach the inner service, got {other:?}"),
        }
    }
}

impl Run {
    /// Starts Nexus operation `seq`; returns the Nexus headers it went out with.
    fn start_nexus(&self, seq: u32) -> HashMap<String, String> {
        block_on(
            self.outbound
                .clone()
                .oneshot(WorkflowOutbound::StartNexusOperation(Box::new(
                    ScheduleNexusOperation {
                        seq,
                        endpoint: "ep".into(),
                        service: "Weather".into(),
                        operation: "get".into(),
                        nexus_header: HashMap::from([("x-mine".into(), "kept".into())]),
                        ..Default::default()
                    },
                ))),
        )
        .unwrap();
        match self.outbound_mock.take_requests().pop() {
            Some(WorkflowOutbound::StartNexusOperation(cmd)) => cmd.nexus_header,
            other => panic!("expected the start to reach the inner service, got {other:?}"),
        }
    }
}

fn traced_headers(ctx: &TraceContext) -> Headers {
    let mut h = Headers::new();
    ctx.inject(&mut h);
    h
}

fn named<'a>(spans: &'a [SpanRecord], name: &str) -> Vec<&'a SpanRecord> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[test]
fn workflow_spans_continue_the_callers_trace() {
    let client = TraceContext::new_root();
    let start = traced_headers(&client);
    let signaller = TraceContext::new_root();
    let (activity_headers, spans) = capture(|| {
        let r = run("run-a", &start, false);
        r.execute(&start);
        r.signal(&traced_headers(&signaller));
        let h = r.schedule(1);
        // Timers pass through untouched.
        block_on(
            r.outbound
                .clone()
                .oneshot(WorkflowOutbound::StartTimer(StartTimerInput {
                    seq: 2,
                    duration: std::time::Duration::from_secs(1),
                })),
        )
        .unwrap();
        assert!(matches!(
            r.outbound_mock.take_requests().as_slice(),
            [WorkflowOutbound::StartTimer(_)]
        ));
        assert_eq!(r.inbound_mock.take_requests().len(), 2);
        h
    });
    let names: Vec<_> = spans.iter().map(|s| s.full_name()).collect();
    assert_eq!(
        names,
        [
            "RunWorkflow:Greet",
            "HandleSignal:go",
            "StartActivity:compose"
        ]
    );

    let run_span = named(&spans, "RunWorkflow")[0];
    assert_eq!(run_span.field("otel.kind"), "server");
    assert_eq!(run_span.field("workflow_type"), "Greet");
    assert_eq!(run_span.field("workflow_id"), "wf-1");
    assert_eq!(run_span.field("run_id"), "run-a");
    let run_ctx = TraceContext::new(
        client.trace_id(),
        u64::from_str_radix(run_span.field("span_id"), 16).unwrap(),
        client.flags(),
    )
    .unwrap();
    assert_span_is(run_span, &run_ctx, Some(&client));

    let signal_span = named(&spans, "HandleSignal")[0];
    assert_eq!(signal_span.field("signal"), "go");
    assert_eq!(signal_span.field("trace_id"), signaller.trace_id_hex());
    assert_eq!(signal_span.field("parent_span_id"), signaller.span_id_hex());

    let activity = header_context(&activity_headers);
    let start_span = named(&spans, "StartActivity")[0];
    assert_eq!(start_span.field("otel.kind"), "client");
    assert_eq!(start_span.field("activity_id"), "1");
    assert_span_is(start_span, &activity, Some(&run_ctx));
    assert!(spans.iter().all(|s| s.closed));
}

#[test]
fn replay_emits_no_workflow_spans_but_the_same_headers() {
    let client = TraceContext::new_root();
    let start = traced_headers(&client);
    let signaller = traced_headers(&TraceContext::new_root());

    // The first execution, then a rebuild of the same run from history (a new worker, or an
    // evicted run): replaying at first, live from the second activity on.
    let (first, original) = capture(|| {
        let r = run("run-b", &start, false);
        r.execute(&start);
        r.signal(&signaller);
        let first = (r.schedule(1), r.schedule(2));
        r.signal(&signaller);
        first
    });
    let (replayed_headers, replayed) = capture(|| {
        let r = run("run-b", &start, true);
        r.execute(&start);
        r.signal(&signaller);
        let one = r.schedule(1);
        r.replaying.set(false);
        let two = r.schedule(2);
        r.signal(&signaller);
        (one, two)
    });

    assert_eq!(
        header_context(&replayed_headers.0),
        header_context(&first.0),
        "a replayed schedule propagates the ids of the original"
    );
    assert_eq!(
        header_context(&replayed_headers.1),
        header_context(&first.1)
    );
    let names = |spans: &[SpanRecord]| -> Vec<String> {
        spans.iter().map(|s| s.full_name().to_owned()).collect()
    };
    assert_eq!(
        names(&original),
        [
            "RunWorkflow:Greet",
            "HandleSignal:go",
            "StartActivity:compose",
            "StartActivity:compose",
            "HandleSignal:go"
        ]
    );
    // Only what ran live after the replay caught up.
    assert_eq!(
        names(&replayed),
        ["StartActivity:compose", "HandleSignal:go"]
    );
    // …with the ids the original execution would have given them, its run span as parent.
    let field = |s: &SpanRecord| (s.fields.clone(), s.name);
    assert_eq!(field(&replayed[0]), field(&original[3]));
    assert_eq!(field(&replayed[1]), field(&original[4]));
    assert_eq!(
        replayed[0].field("parent_span_id"),
        original[0].field("span_id")
    );
}

#[test]
fn untraced_start_roots_a_deterministic_trace_at_the_run() {
    let ids = |run_id: &str| {
        let (_, spans) = capture(|| run(run_id, &Headers::new(), false).execute(&Headers::new()));
        let s = &spans[0];
        assert_eq!(s.get("parent_span_id"), None);
        (
            s.field("trace_id").to_owned(),
            s.field("span_id").to_owned(),
        )
    };
    assert_eq!(ids("run-c"), ids("run-c"));
    assert_ne!(ids("run-c").0, ids("run-d").0);
}

#[test]
fn queries_are_traced_even_while_replaying() {
    let caller = TraceContext::new_root();
    let (results, spans) = capture(|| {
        let r = run("run-e", &Headers::new(), true);
        r.execute(&Headers::new());
        (
            r.query("state", &traced_headers(&caller)),
            r.query("state", &Headers::new()),
            r.query("broken", &Headers::new()),
        )
    });
    assert!(results.0.is_ok() && results.1.is_ok() && results.2.is_err());
    let queries = named(&spans, "HandleQuery");
    assert_eq!(spans.len(), 3, "no RunWorkflow span while replaying");
    assert_eq!(queries[0].full_name(), "HandleQuery:state");
    assert_eq!(queries[0].field("query"), "state");
    assert_eq!(queries[0].field("trace_id"), caller.trace_id_hex());
    assert_eq!(queries[0].field("parent_span_id"), caller.span_id_hex());
    // Untraced queries hang off the run's span.
    let run_span_id = crate::context::derive_id("run-e", "RunWorkflow", 0);
    assert_eq!(
        queries[1].field("parent_span_id"),
        format!("{run_span_id:016x}")
    );
    assert_ne!(queries[1].field("span_id"), queries[2].field("span_id"));
    assert!(queries[2].field("error").contains("no such"));
}

#[test]
fn run_state_is_released_with_the_run() {
    let before = workflow::registered_runs();
    let r = run("run-f", &Headers::new(), true);
    assert_eq!(workflow::registered_runs(), before + 1);
    let Run {
        inbound,
        outbound,
        outbound_mock,
        ..
    } = r;
    drop(inbound);
    assert_eq!(
        workflow::registered_runs(),
        before,
        "evicting the run frees it"
    );
    // The outbound stack alone falls back to the replay flag it was built with.
    let (_, spans) = capture(|| {
        block_on(
            outbound.oneshot(WorkflowOutbound::ScheduleActivity(Box::new(
                ScheduleActivity {
                    seq: 1,
                    activity_type: "compose".into(),
                    ..Default::default()
                },
            ))),
        )
        .unwrap()
    });
    assert!(spans.is_empty());
    assert_eq!(outbound_mock.take_requests().len(), 1);
}

#[test]
fn workflow_layers_are_ready_only_when_the_inner_service_is() {
    let r = run("run-g", &Headers::new(), false);
    let mut cx = Context::from_waker(Waker::noop());
    for gate in [&r.inbound_mock.gate, &r.outbound_mock.gate] {
        gate.store(false, Ordering::SeqCst);
    }
    let (mut inbound, mut outbound) = (r.inbound.clone(), r.outbound.clone());
    assert!(inbound.poll_ready(&mut cx).is_pending());
    assert!(outbound.poll_ready(&mut cx).is_pending());
    for gate in [&r.inbound_mock.gate, &r.outbound_mock.gate] {
        gate.store(true, Ordering::SeqCst);
    }
    assert!(matches!(inbound.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    assert!(matches!(outbound.poll_ready(&mut cx), Poll::Ready(Ok(()))));
}

// ---- Nexus ----

#[test]
fn nexus_start_carries_traceparent_and_replays_silently_with_the_same_ids() {
    let client = TraceContext::new_root();
    let start = traced_headers(&client);
    let (live, spans) = capture(|| {
        let r = run("run-nexus", &start, false);
        r.execute(&start);
        r.start_nexus(1)
    });
    assert_eq!(live["x-mine"], "kept");
    let sent = TraceContext::from_nexus_headers(&live).expect("a traceparent header");
    let run_span = named(&spans, "RunWorkflow")[0];
    let start_span = named(&spans, "StartNexusOperation");
    assert_eq!(start_span.len(), 1, "{spans:#?}");
    assert_eq!(start_span[0].full_name(), "StartNexusOperation:Weather/get");
    assert_eq!(start_span[0].field("nexus_endpoint"), "ep");
    assert_eq!(start_span[0].field("span_id"), sent.span_id_hex());
    assert_eq!(start_span[0].field("trace_id"), client.trace_id_hex());
    assert_eq!(
        start_span[0].field("parent_span_id"),
        run_span.field("span_id")
    );

    // Replaying: the same header, no span.
    let (replayed, spans) = capture(|| {
        let r = run("run-nexus", &start, true);
        r.execute(&start);
        r.start_nexus(1)
    });
    assert_eq!(replayed["traceparent"], live["traceparent"]);
    assert!(spans.is_empty(), "{spans:#?}");
}

type NexusMock = Mock<NexusInbound, NexusInboundResponse, BoxError>;

#[test]
fn nexus_handler_span_is_a_child_of_the_traceparent_header_and_current() {
    let caller = TraceContext::new_root();
    let seen_current = Arc::new(Mutex::new(None));
    let seen = seen_current.clone();
    let mock = NexusMock::new(move |req: &NexusInbound| {
        *seen.lock().unwrap() = TraceContext::current();
        match req {
            NexusInbound::StartOperation(s) if s.operation == "bad" => Err("boom".into()),
            NexusInbound::StartOperation(_) => Ok(NexusInboundResponse::Started {
                operation_token: "tok".into(),
                links: Vec::new(),
            }),
            NexusInbound::CancelOperation(_) => Ok(NexusInboundResponse::CancelAccepted),
        }
    });
    let svc = crate::NexusTracingLayer::new().layer(mock.clone());
    let mut headers = HashMap::new();
    caller.inject_nexus(&mut headers);
    let start = |operation: &str| {
        NexusInbound::StartOperation(NexusStartOperation {
            service: "Weather".into(),
            operation: operation.into(),
            headers: headers.clone(),
            ..Default::default()
        })
    };
    let (_, spans) = capture(|| {
        block_on(svc.clone().oneshot(start("get"))).unwrap();
        block_on(svc.clone().oneshot(start("bad"))).unwrap_err();
        block_on(
            svc.clone()
                .oneshot(NexusInbound::CancelOperation(NexusCancelOperation {
                    service: "Weather".into(),
                    operation: "get".into(),
                    operation_token: "tok".into(),
                    headers: HashMap::new(),
                    ..Default::default()
                })),
        )
        .unwrap();
    });
    let names: Vec<&str> = spans.iter().map(|s| s.full_name()).collect();
    assert_eq!(
        names,
        [
            "RunStartNexusOperationHandler:Weather/get",
            "RunStartNexusOperationHandler:Weather/bad",
            "RunCancelNexusOperationHandler:Weather/get"
        ]
    );
    assert_eq!(spans[0].field("trace_id"), caller.trace_id_hex());
    assert_eq!(spans[0].field("parent_span_id"), caller.span_id_hex());
    assert_eq!(spans[1].field("error"), "boom");
    // The cancel came without a traceparent: a trace of its own.
    assert_eq!(spans[2].get("parent_span_id"), None);
    assert_eq!(spans[2].field("nexus_operation_token"), "tok");
    // The handler ran with the span's context as the current one.
    let current = seen_current.lock().unwrap().expect("a current context");
    assert_eq!(current.span_id_hex(), spans[2].field("span_id"));
}
