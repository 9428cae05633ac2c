//! A plugin that adds encryption to the user's data converter without replacing it: the user
//! keeps their own compression codec, the plugin's AES-GCM codec goes after it (compress, then
//! encrypt), and the workflow's payloads reach the server encrypted.

use std::time::Duration;

use trellis_client::{Client, ClientConfig};
use trellis_converter::{AesGcmCodec, DataConverter, ZstdCodec};
use trellis_core_proto::PayloadExt;
use trellis_core_proto::api::history::v1::history_event::Attributes;
use trellis_plugin_simple::SimplePlugin;
use trellis_worker::{
    ActivityContext, ActivityError, WorkerConfig, WorkflowContext, WorkflowError,
};

use crate::AnyError;

/// What the `acme-vault` crate exports: a key id and key (a real plugin loads the key from a
/// secret store).
pub fn plugin(key_id: &str, key: [u8; 32]) -> SimplePlugin {
    SimplePlugin::new("acme.vault").codec(AesGcmCodec::new(key_id, key))
}

async fn redact(_ctx: ActivityContext, record: String) -> Result<String, ActivityError> {
    Ok(record.replace("4111-1111-1111-1111", "****"))
}

async fn store_record(ctx: WorkflowContext, record: String) -> Result<String, WorkflowError> {
    Ok(ctx
        .activity("redact")
        .arg(&record)
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?)
}

/// Connects with the user's own converter (with a compression codec) and the plugin, runs a
/// workflow, and reports the codecs and how the history stored the input.
pub async fn run(address: String) -> Result<String, AnyError> {
    let users_converter = DataConverter::default().with_codec(ZstdCodec::new());
    let client = Client::connect(
        ClientConfig::new(address)
            .data_converter(users_converter)
            .plugin(plugin("vault-key-1", *b"an-example-key-of-32-bytes-long!")),
    )
    .await?;
    let task_queue = format!("vault-{}", crate::unique());
    let config = WorkerConfig::new(&task_queue)
        .workflow("StoreRecord", store_record)
        .activity("redact", redact);
    let worker = trellis_worker::Worker::new(&client, config).await?;
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let handle = client
        .start_workflow(
            "StoreRecord",
            "card 4111-1111-1111-1111",
            trellis_client::WorkflowOptions::new(format!("vault-{}", crate::unique()), &task_queue),
        )
        .await?;
    let result: String = handle.result().await?;
    let history = handle.fetch_history().await?;
    stop.shutdown();
    running.await??;
    let stored = history
        .events
        .iter()
        .find_map(|e| match &e.attributes {
            Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => {
                a.input.as_ref().and_then(|p| p.payloads.first().cloned())
            }
            _ => None,
        })
        .ok_or("no input in the history")?;
    Ok(format!(
        "{result:?}; codecs on the client: {}; the history stores the input as {} (key {})",
        client.data_converter().codecs().len(),
        stored.encoding().unwrap_or("?"),
        stored.metadata_str("encryption-key-id").unwrap_or("?"),
    ))
}
