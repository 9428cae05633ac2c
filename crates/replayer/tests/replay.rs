//! Replaying real histories: Trellis-made, CLI-exported and Python-made histories replay clean;
//! changed code reports non-determinism; patches keep old histories replaying; bad files give
//! invalid-history results without stopping the others.

use std::process::Command;
use std::time::Duration;

use trellis_client::WorkflowOptions;
use trellis_replayer::{ReplayHistory, ReplayOutcome, Replayer, ReplayerConfig, history};
use trellis_testing::{client, server_address, temporal_cli, unique};
use trellis_worker::{
    ActivityContext, ActivityError, Worker, WorkerConfig, WorkflowContext, WorkflowError,
};

type GreetFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, WorkflowError>>>>;
type GreetFn = fn(WorkflowContext, String) -> GreetFuture;

async fn compose_greeting(
    _ctx: ActivityContext,
    (greeting, name): (String, String),
) -> Result<String, ActivityError> {
    Ok(format!("{greeting}, {name}!"))
}

async fn greet(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    let greeting: String = ctx
        .activity("compose_greeting")
        .args(("Hello", &name))
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    ctx.timer(Duration::from_millis(50)).await;
    Ok(greeting)
}

/// Deliberately changed: waits on the timer before calling the activity.
async fn greet_reordered(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    ctx.timer(Duration::from_millis(50)).await;
    let greeting: String = ctx
        .activity("compose_greeting")
        .args(("Hello", &name))
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    Ok(greeting)
}

/// The same change, behind a patch: old histories keep the old order.
async fn greet_patched(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    if ctx.patched("timer-first") {
        return greet_reordered(ctx, name).await;
    }
    greet(ctx, name).await
}

fn replayer(f: GreetFn) -> Replayer {
    Replayer::new(ReplayerConfig::new(
        WorkerConfig::new("replay").workflow("Greet", f),
    ))
    .unwrap()
}

fn boxed_greet(ctx: WorkflowContext, n: String) -> GreetFuture {
    Box::pin(greet(ctx, n))
}
fn boxed_reordered(ctx: WorkflowContext, n: String) -> GreetFuture {
    Box::pin(greet_reordered(ctx, n))
}
fn boxed_patched(ctx: WorkflowContext, n: String) -> GreetFuture {
    Box::pin(greet_patched(ctx, n))
}

/// Runs `Greet` with `f` on the dev server and returns the workflow id.
async fn run_greet(f: GreetFn) -> (trellis_client::Client, String) {
    let client = client().await;
    let tq = unique("replay");
    let worker = Worker::new(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Greet", f)
            .activity("compose_greeting", compose_greeting),
    )
    .await
    .unwrap();
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let id = unique("greet");
    let h = client
        .start_workflow("Greet", "world", WorkflowOptions::new(&id, &tq))
        .await
        .unwrap();
    assert_eq!(h.result::<String>().await.unwrap(), "Hello, world!");
    stop.shutdown();
    running.await.unwrap().unwrap();
    (client, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_history_replays_clean_and_changed_code_is_caught() {
    let (client, id) = run_greet(boxed_greet).await;
    let h = history::fetch(&client, &id, None).await.unwrap();

    let ok = replayer(boxed_greet).replay(h.clone()).await.unwrap();
    assert_eq!(ok.outcome, ReplayOutcome::Ok, "{ok}");
    assert_eq!(ok.workflow_type, "Greet");

    let bad = replayer(boxed_reordered).replay(h.clone()).await.unwrap();
    let ReplayOutcome::Nondeterminism { event_id, message } = &bad.outcome else {
        panic!("expected non-determinism, got {bad}");
    };
    assert_eq!(bad.workflow_id, id);
    assert_eq!(bad.workflow_type, "Greet");
    assert!(message.contains("TMPRL1100"), "{message}");
    assert!(
        message.contains("ScheduleActivityTask") || message.contains("Timer"),
        "{message}"
    );
    assert!(event_id.is_some(), "the event is named: {message}");

    // The same history, found by a visibility query.
    let mut matching = Vec::new();
    for _ in 0..50 {
        matching = history::fetch_matching(&client, &format!("WorkflowId = '{id}'"))
            .await
            .unwrap();
        if !matching.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(matching.len(), 1);
    let listed = replayer(boxed_greet).replay_all(matching).await.unwrap();
    assert!(listed[0].is_ok(), "{}", listed[0]);

    // The same change behind a patch replays the old history on the old path.
    let patched = replayer(boxed_patched).replay(h).await.unwrap();
    assert_eq!(patched.outcome, ReplayOutcome::Ok, "{patched}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patched_code_records_its_marker_and_replays() {
    // New runs of the patched code take the new path and record the patch marker...
    let (client, id) = run_greet(boxed_patched).await;
    let h = history::fetch(&client, &id, None).await.unwrap();
    let has_marker =
        h.history.events.iter().any(|e| {
            e.event_type() == trellis_core_proto::api::enums::v1::EventType::MarkerRecorded
        });
    assert!(has_marker, "the patch marker is in the history");
    // ...and replay clean with it, while the unpatched old code cannot replay them.
    assert!(
        replayer(boxed_patched)
            .replay(h.clone())
            .await
            .unwrap()
            .is_ok()
    );
    assert!(!replayer(boxed_greet).replay(h).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_exported_json_replays_and_export_round_trips() {
    let (_client, id) = run_greet(boxed_greet).await;
    let cli = temporal_cli().unwrap();
    let out = Command::new(cli)
        .args([
            "workflow",
            "show",
            "--output",
            "json",
            "--address",
            server_address(),
            "-w",
            &id,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = history::from_json(&out.stdout).unwrap();
    let r = replayer(boxed_greet)
        .replay(ReplayHistory::new("cli", &id, parsed.clone()))
        .await
        .unwrap();
    assert!(r.is_ok(), "{r}");
    // Our export reads back to the same history.
    assert_eq!(
        history::from_json(history::to_json(&parsed).as_bytes()).unwrap(),
        parsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_made_history_replays_in_trellis() {
    let python = trellis_testing::python().unwrap();
    let id = unique("py-greet");
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/greet_history.py"
        ))
        .args([server_address(), &unique("py-replay"), &id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = history::from_json(&out.stdout).unwrap();
    let r = replayer(boxed_greet)
        .replay(ReplayHistory::new("python", &id, h.clone()))
        .await
        .unwrap();
    assert!(r.is_ok(), "{r}");
    let bad = replayer(boxed_reordered)
        .replay(ReplayHistory::new("python", &id, h))
        .await
        .unwrap();
    assert!(
        matches!(bad.outcome, ReplayOutcome::Nondeterminism { .. }),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_with_bad_files_reports_them_and_replays_the_rest() {
    let (client, id) = run_greet(boxed_greet).await;
    let handle = client.workflow_handle(&id, None);
    let dir = std::env::temp_dir().join(unique("histories"));
    let good = history::record(&handle, &dir).await.unwrap();
    let text = std::fs::read_to_string(&good).unwrap();
    for i in 0..98 {
        std::fs::write(dir.join(format!("copy-{i:02}.json")), &text).unwrap();
    }
    std::fs::write(dir.join("truncated.json"), &text[..text.len() / 2]).unwrap();
    std::fs::write(dir.join("garbage.pb"), b"\xff\xfe not a protobuf").unwrap();

    let results = replayer(boxed_greet)
        .concurrency(4)
        .replay_dir(&dir)
        .await
        .unwrap();
    assert_eq!(results.len(), 101);
    let invalid: Vec<_> = results.iter().filter(|r| !r.is_ok()).collect();
    assert_eq!(invalid.len(), 2, "{invalid:?}");
    for r in &invalid {
        assert!(
            matches!(r.outcome, ReplayOutcome::InvalidHistory { .. }),
            "{r}"
        );
        assert!(
            r.source.ends_with("truncated.json") || r.source.ends_with("garbage.pb"),
            "{r}"
        );
    }
    let err = replayer(boxed_greet)
        .assert_replays_dir(&dir)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("2 of 101 histories did not replay clean"),
        "{err}"
    );
    assert!(err.to_string().contains("truncated.json"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

trait Concurrency {
    fn concurrency(self, n: usize) -> Self;
}

impl Concurrency for Replayer {
    fn concurrency(self, n: usize) -> Self {
        Replayer::new(self.config().clone().concurrency(n)).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_replaying_is_a_workflow_task_failure_and_fail_fast_stops() {
    fn boxed_panics(_ctx: WorkflowContext, _n: String) -> GreetFuture {
        Box::pin(async { panic!("replay panic for the test") })
    }
    let (client, id) = run_greet(boxed_greet).await;
    let h = history::fetch(&client, &id, None).await.unwrap();
    let r = replayer(boxed_panics).replay(h.clone()).await.unwrap();
    let ReplayOutcome::WorkflowTaskFailed { message } = &r.outcome else {
        panic!("expected a workflow task failure, got {r}");
    };
    assert!(message.contains("replay panic for the test"), "{message}");

    let fast = Replayer::new(
        ReplayerConfig::new(WorkerConfig::new("replay").workflow("Greet", boxed_panics))
            .fail_fast(true),
    )
    .unwrap();
    let results = fast
        .replay_all(vec![h.clone(), h.clone(), h])
        .await
        .unwrap();
    assert_eq!(results.len(), 1, "replay stopped after the first failure");
}

/// How many histories the test's lazy source has produced, and how many runs the replay has
/// started, for `a_lazy_source_is_read_one_history_at_a_time`.
static PRODUCED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// (produced, started) seen by each run when it starts.
static SEEN: std::sync::Mutex<Vec<(usize, usize)>> = std::sync::Mutex::new(Vec::new());

fn boxed_counting(ctx: WorkflowContext, n: String) -> GreetFuture {
    use std::sync::atomic::Ordering::SeqCst;
    let started = STARTED.fetch_add(1, SeqCst) + 1;
    SEEN.lock().unwrap().push((PRODUCED.load(SeqCst), started));
    Box::pin(greet(ctx, n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_source_is_read_one_history_at_a_time() {
    use std::sync::atomic::Ordering::SeqCst;
    let (client, id) = run_greet(boxed_greet).await;
    let handle = client.workflow_handle(&id, None);
    let dir = std::env::temp_dir().join(unique("lazy-histories"));
    let recorded = history::record(&handle, &dir).await.unwrap();
    let text = std::fs::read_to_string(&recorded).unwrap();
    // Binary and JSON copies of one real history; the folder is read one file at a time.
    let proto = history::from_json(text.as_bytes()).unwrap();
    for i in 0..6 {
        std::fs::write(
            dir.join(format!("copy-{i}.pb")),
            prost::Message::encode_to_vec(&proto),
        )
        .unwrap();
    }
    std::fs::write(dir.join("zz-truncated.json"), &text[..text.len() / 3]).unwrap();
    let files = history::history_files(&dir).unwrap();
    assert_eq!(files.len(), 8);

    // A source that counts what it has produced: the replay must take a history only when it
    // is ready for it, never the whole source up front.
    let replayer = replayer(boxed_counting);
    let source = files.clone().into_iter().map(|path| {
        PRODUCED.fetch_add(1, SeqCst);
        history::read_file(&path)
    });
    let results = replayer
        .replay_all(trellis_replayer::ReplayHistories::lazy(source))
        .await
        .unwrap();
    assert_eq!(results.len(), 8);
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(seen.len(), 7, "one run per valid history: {seen:?}");
    for (produced, started) in &seen {
        // The truncated file sorts last, so when run k starts, at most k + 1 histories have
        // been produced (the engine may take the next as the current one finishes).
        assert!(
            *produced <= *started + 1,
            "the source ran ahead of the replay: {seen:?}"
        );
    }
    // Results in source order, the bad file in its place.
    for (r, path) in results.iter().zip(&files) {
        assert_eq!(r.source, path.display().to_string());
    }
    assert!(results[..7].iter().all(|r| r.is_ok()), "{results:?}");
    assert!(matches!(
        results[7].outcome,
        ReplayOutcome::InvalidHistory { .. }
    ));

    // The same folder through the streaming helpers, concurrently.
    let by_dir = replayer.replay_dir(&dir).await.unwrap();
    let by_files = Replayer::new(replayer.config().clone().concurrency(3))
        .unwrap()
        .replay_files(files.clone())
        .await
        .unwrap();
    for rs in [&by_dir, &by_files] {
        assert_eq!(rs.len(), 8);
        assert_eq!(rs.iter().filter(|r| r.is_ok()).count(), 7, "{rs:?}");
        for (r, path) in rs.iter().zip(&files) {
            assert_eq!(r.source, path.display().to_string());
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_history_gets_a_result_when_many_lanes_end_at_once() {
    // Each lane's engine shuts down when its source runs dry; the last run of every lane must
    // still be reported. Many short lanes ending together make that moment happen often.
    let (client, id) = run_greet(boxed_greet).await;
    let h = history::fetch(&client, &id, None).await.unwrap();
    for round in 0..40 {
        let results = replayer(boxed_greet)
            .concurrency(12)
            .replay_all(vec![h.clone(); 24])
            .await
            .unwrap();
        assert_eq!(results.len(), 24, "round {round}: {results:?}");
        assert!(
            results.iter().all(|r| r.is_ok()),
            "round {round}: {results:?}"
        );
    }
}
