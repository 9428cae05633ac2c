//! Payload codecs on the real server: with encryption on, the history holds no plaintext and the
//! workflow completes; a worker without the key fails the task with an error naming the key id.

use std::time::Duration;

use trellis_client::converter::{AesGcmCodec, FailureConverter, ZstdCodec};
use trellis_client::{ClientConfig, ClientError, DataConverter, WorkflowOptions};
use trellis_core_proto::encode_message;
use trellis_testing::{client_with, unique, workflow_task_failure};
use trellis_worker::{
    ActivityContext, ActivityError, ApplicationFailure, Worker, WorkerConfig, WorkflowContext,
    WorkflowError,
};

const SECRET_IN: &str = "top-secret-input-7781";

async fn shout(_ctx: ActivityContext, s: String) -> Result<String, ActivityError> {
    if s.contains("fail") {
        return Err(ApplicationFailure::new("Leak", format!("refusing {s}"))
            .non_retryable()
            .into());
    }
    Ok(s.to_uppercase())
}

async fn wf(ctx: WorkflowContext, s: String) -> Result<String, WorkflowError> {
    let r: String = ctx
        .activity("shout")
        .arg(&format!("{s}-{}", "x".repeat(600)))
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    Ok(r)
}

fn converter(key_id: &str, key: [u8; 32]) -> DataConverter {
    DataConverter::default()
        .with_failure_converter(FailureConverter::default().with_encode_common_attributes(true))
        .with_codec(ZstdCodec::new())
        .with_codec(AesGcmCodec::new(key_id, key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_history_holds_no_plaintext_and_completes() {
    let client =
        client_with(ClientConfig::new("unused").data_converter(converter("k1", [7; 32]))).await;
    let tq = unique("codec");
    let worker = Worker::new(
        &client,
        WorkerConfig::new(&tq)
            .workflow("Wf", wf)
            .activity("shout", shout),
    )
    .await
    .unwrap();
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    let h = client
        .start_workflow("Wf", SECRET_IN, WorkflowOptions::new(unique("codec"), &tq))
        .await
        .unwrap();
    let r: String = h.result().await.unwrap();
    assert!(r.starts_with(&SECRET_IN.to_uppercase()), "{r}");

    // A failing activity: its message travels encrypted and arrives intact.
    let h2 = client
        .start_workflow(
            "Wf",
            "please-fail",
            WorkflowOptions::new(unique("codec-fail"), &tq),
        )
        .await
        .unwrap();
    let err = h2.result::<String>().await.unwrap_err();
    let ClientError::Workflow(f) = &err else {
        panic!("{err}")
    };
    assert!(
        f.message().contains("refusing please-fail"),
        "{}",
        f.message()
    );

    for handle in [&h, &h2] {
        let history = handle.fetch_history().await.unwrap();
        let raw = encode_message(&history);
        for needle in [
            SECRET_IN,
            &SECRET_IN.to_uppercase(),
            "please-fail",
            "refusing",
        ] {
            assert!(
                !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} appears in plaintext in the history"
            );
        }
    }
    stop.shutdown();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_without_the_key_fails_the_task_naming_the_key_id() {
    let tq = unique("codec-wrong-key");
    let starter =
        client_with(ClientConfig::new("unused").data_converter(converter("key-2024", [1; 32])))
            .await;
    let wrong =
        client_with(ClientConfig::new("unused").data_converter(converter("key-2025", [2; 32])))
            .await;
    let worker = Worker::new(
        &wrong,
        WorkerConfig::new(&tq)
            .workflow("Wf", wf)
            .activity("shout", shout),
    )
    .await
    .unwrap();
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let h = starter
        .start_workflow(
            "Wf",
            "hello",
            WorkflowOptions::new(unique("wrong-key"), &tq),
        )
        .await
        .unwrap();
    let failure = workflow_task_failure(&h).await;
    // The failure itself is written with the worker's converter: decode it to read it.
    let text = format!("{failure:?}");
    let decoded = {
        let mut f = failure.clone();
        wrong
            .data_converter()
            .decode_message(&mut f, &Default::default())
            .await
            .unwrap();
        FailureConverter::default().from_failure(&f).to_string()
    };
    assert!(
        decoded.contains("key-2024") || text.contains("key-2024"),
        "the failure names the missing key id: {decoded} / {text}"
    );
    h.terminate("test over").await.unwrap();
    stop.shutdown();
    running.await.unwrap().unwrap();
}
