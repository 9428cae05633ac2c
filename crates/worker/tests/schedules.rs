//! Schedules on the dev server: created with an encrypting client, triggered, run by a worker,
//! paused and unpaused, listed, deleted.

mod common;
use common::{spawn_worker, stop};

use std::time::{Duration, Instant};

use trellis_client::converter::AesGcmCodec;
use trellis_client::schedule::{ScheduleHandle, ScheduleOptions};
use trellis_client::{ClientConfig, ClientError, Code, DataConverter, WorkflowOptions};
use trellis_core_proto::api::history::v1::history_event::Attributes;
use trellis_testing::{client_with, unique};
use trellis_worker::{WorkerConfig, WorkflowContext, WorkflowError};

async fn report(_ctx: WorkflowContext, (kind, n): (String, u32)) -> Result<String, WorkflowError> {
    Ok(format!("{kind} report #{n}"))
}

/// Describes until `done` holds (the schedule's state is updated asynchronously).
async fn wait_for(
    schedule: &ScheduleHandle,
    what: &str,
    done: impl Fn(&trellis_client::schedule::ScheduleDescription) -> bool,
) -> trellis_client::schedule::ScheduleDescription {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = schedule.describe().await.unwrap();
        if done(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "{what} never happened: {d:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_starts_workflows_and_is_managed_from_the_client() {
    let codec = AesGcmCodec::from_slice("schedule-key", &[7u8; 32]).unwrap();
    let client = client_with(
        ClientConfig::new("unused").data_converter(DataConverter::default().with_codec(codec)),
    )
    .await;
    let tq = unique("schedules");
    let worker = spawn_worker(&client, WorkerConfig::new(&tq).workflow("Report", report)).await;
    let id = unique("nightly");

    // Once a day, so nothing fires during the test but what is triggered.
    let schedule = client
        .create_schedule(
            &id,
            ScheduleOptions::every(Duration::from_secs(24 * 3600)).note("nightly reports"),
            "Report",
            ("nightly".to_owned(), 7u32),
            WorkflowOptions::new(format!("{id}-run"), &tq),
        )
        .await
        .unwrap();
    let d = schedule.describe().await.unwrap();
    assert!(!d.paused);
    assert_eq!(d.note, "nightly reports");
    assert_eq!(d.action_count, 0);
    assert!(!d.next_action_times.is_empty(), "{d:#?}");

    // The same id again is refused.
    let again = client
        .create_schedule(
            &id,
            ScheduleOptions::every(Duration::from_secs(3600)),
            "Report",
            ("x".to_owned(), 0u32),
            WorkflowOptions::new("x", &tq),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&again, ClientError::Rpc { operation: "create_schedule", status } if status.code() == Code::AlreadyExists),
        "{again}"
    );

    // Triggered: a run starts, the worker decodes the encrypted arguments.
    schedule.trigger().await.unwrap();
    let d = wait_for(&schedule, "the triggered action", |d| {
        d.action_count >= 1 && !d.recent_runs.is_empty()
    })
    .await;
    let (workflow_id, _) = d.recent_runs.last().cloned().expect("a recent run");
    assert!(
        workflow_id.starts_with(&format!("{id}-run")),
        "{workflow_id}"
    );
    let run = schedule.latest_run().await.unwrap().expect("a run");
    let out: String = run.result().await.unwrap();
    assert_eq!(out, "nightly report #7");
    // Stored encrypted: the history's input is the codec's.
    let history = run.fetch_history().await.unwrap();
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) =
        &history.events[0].attributes
    else {
        panic!("{history:#?}")
    };
    let input = &started.input.as_ref().unwrap().payloads;
    assert_eq!(input.len(), 2);
    for p in input {
        assert_eq!(p.metadata["encoding"], b"binary/encrypted", "{started:#?}");
    }

    // Pause and unpause, with notes; a pause needs one.
    schedule.pause("maintenance window").await.unwrap();
    let d = schedule.describe().await.unwrap();
    assert!(d.paused);
    assert_eq!(d.note, "maintenance window");
    let no_note = schedule.pause("").await.unwrap_err();
    assert!(no_note.to_string().contains("needs a note"), "{no_note}");
    schedule.unpause("back").await.unwrap();
    assert!(!schedule.describe().await.unwrap().paused);

    // Listed (visibility catches up).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .list_schedules("")
        .await
        .unwrap()
        .iter()
        .any(|s| s.schedule_id == id)
    {
        assert!(Instant::now() < deadline, "the schedule is never listed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleted: describing it is NotFound.
    schedule.delete().await.unwrap();
    let gone = schedule.describe().await.unwrap_err();
    assert!(
        matches!(&gone, ClientError::Rpc { status, .. } if status.code() == Code::NotFound),
        "{gone}"
    );

    stop(worker).await;
}
