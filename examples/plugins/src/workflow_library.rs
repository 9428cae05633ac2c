//! A plugin that ships a workflow library: `notify::send` is a typed function users call from
//! their own workflow code; it schedules the plugin's `notify.send` activity with the
//! library's timeouts and retry policy. Library code is workflow code: deterministic, replayed
//! many times.

use serde::{Deserialize, Serialize};
use trellis_client::{Client, ClientConfig};
use trellis_plugin_simple::SimplePlugin;
use trellis_worker::{
    ActivityContext, ActivityError, WorkerConfig, WorkflowContext, WorkflowError,
};

use crate::AnyError;

/// The receipt of a sent notification.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Receipt {
    /// The channel it went out on.
    pub channel: String,
    /// The delivery id.
    pub id: String,
}

/// The library users call from workflow code.
pub mod notify {
    use std::time::Duration;

    use trellis_client::RetryPolicy;
    use trellis_core_proto::time::to_proto_duration;
    use trellis_worker::{WorkflowContext, WorkflowError};

    use super::Receipt;

    /// Sends `message` on `channel` (e.g. `"email"`), at least once, and returns the receipt.
    pub async fn send(
        ctx: &WorkflowContext,
        channel: &str,
        message: &str,
    ) -> Result<Receipt, WorkflowError> {
        Ok(ctx
            .activity("notify.send")
            .args((channel, message))
            .start_to_close_timeout(Duration::from_secs(30))
            .retry_policy(RetryPolicy {
                initial_interval: Some(to_proto_duration(Duration::from_millis(200))),
                backoff_coefficient: 2.0,
                maximum_attempts: 5,
                ..RetryPolicy::default()
            })
            .run()
            .await?)
    }
}

/// The activity behind the library (a real plugin calls its messaging service here).
async fn send(
    ctx: ActivityContext,
    (channel, message): (String, String),
) -> Result<Receipt, ActivityError> {
    println!("  notify.send on {channel}: {message:?}");
    Ok(Receipt {
        channel,
        id: format!("{}-{}", ctx.info().workflow_id, ctx.info().activity_id),
    })
}

/// What the `acme-notify` crate exports.
pub fn plugin() -> SimplePlugin {
    SimplePlugin::new("acme.notify").activity("notify.send", send)
}

/// The user's workflow, written with the library.
async fn onboard(ctx: WorkflowContext, user: String) -> Result<Vec<Receipt>, WorkflowError> {
    let welcome = notify::send(&ctx, "email", &format!("Welcome, {user}!")).await?;
    let sms = notify::send(&ctx, "sms", "Your account is ready").await?;
    Ok(vec![welcome, sms])
}

/// Connects with the plugin and onboards a user.
pub async fn run(address: String) -> Result<String, AnyError> {
    let client = Client::connect(ClientConfig::new(address).plugin(plugin())).await?;
    let config =
        WorkerConfig::new(format!("notify-{}", crate::unique())).workflow("Onboard", onboard);
    let receipts: Vec<Receipt> = crate::execute(&client, config, "Onboard", "ada").await?;
    let channels: Vec<&str> = receipts.iter().map(|r| r.channel.as_str()).collect();
    Ok(format!("sent on {}", channels.join(", ")))
}
