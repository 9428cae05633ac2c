//! A Python-made history that uses the newer commands — a local activity, a child workflow
//! (started, signalled, awaited), a timer, an update and a signal — replays against a Trellis
//! workflow of the same shape: Trellis numbers each command kind the way core-based SDKs do.

use std::cell::Cell;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use trellis_replayer::{ReplayHistory, ReplayOutcome, Replayer, ReplayerConfig, history};
use trellis_testing::{server_address, unique};
use trellis_worker::{WorkerConfig, WorkflowContext, WorkflowError};

async fn rich(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    let total = Rc::new(Cell::new(0i64));
    let t = total.clone();
    ctx.set_update_handler("add", move |n: i64| {
        let t = t.clone();
        async move {
            t.set(t.get() + n);
            Ok(t.get())
        }
    });
    let mut finish = ctx.signal_channel::<()>("finish");
    let greeting: String = ctx
        .local_activity("compose_greeting")
        .args(("Hi", &name))
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    let child = ctx
        .child_workflow("RichChild")
        .arg(&name)
        .id(format!("{}-child", ctx.info().workflow_id))
        .start()
        .await?;
    child.signal("go", "x").await?;
    let child_result: String = child.result().await?;
    ctx.timer(Duration::from_millis(50)).await;
    finish.recv().await?;
    Ok(format!("{greeting}|{child_result}|{}", total.get()))
}

/// Changed: the timer comes before the child.
async fn rich_reordered(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    let greeting: String = ctx
        .local_activity("compose_greeting")
        .args(("Hi", &name))
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    ctx.timer(Duration::from_millis(50)).await;
    Ok(greeting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_made_history_with_children_updates_and_local_activities_replays() {
    let python = trellis_testing::python().unwrap();
    let id = unique("py-rich");
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/rich_history.py"
        ))
        .args([server_address(), &unique("py-rich-tq"), &id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let h = history::from_json(&out.stdout).unwrap();
    let text = format!("{h:?}");
    for needed in [
        "MarkerRecorded",
        "StartChildWorkflowExecutionInitiated",
        "SignalExternalWorkflowExecutionInitiated",
        "TimerStarted",
        "WorkflowExecutionUpdateAccepted",
    ] {
        let found = h
            .events
            .iter()
            .any(|e| format!("{:?}", e.event_type()) == needed);
        assert!(found, "the Python history has no {needed}: {text}");
    }
    let good = Replayer::new(ReplayerConfig::new(
        WorkerConfig::new("replay").workflow("Rich", rich),
    ))
    .unwrap()
    .replay(ReplayHistory::new("python", &id, h.clone()))
    .await
    .unwrap();
    assert!(good.is_ok(), "{good}");
    let bad = Replayer::new(ReplayerConfig::new(
        WorkerConfig::new("replay").workflow("Rich", rich_reordered),
    ))
    .unwrap()
    .replay(ReplayHistory::new("python", &id, h))
    .await
    .unwrap();
    assert!(
        matches!(bad.outcome, ReplayOutcome::Nondeterminism { .. }),
        "{bad}"
    );
}
