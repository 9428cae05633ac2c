//! A plugin that adds a built-in workflow, run as a child of the user's workflow: the plugin's
//! `fraud.Screen` workflow (and the activity it calls) screens an order; the user's `Checkout`
//! workflow starts it as a child and acts on the verdict.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use trellis_client::{Client, ClientConfig};
use trellis_plugin_simple::SimplePlugin;
use trellis_worker::{
    ActivityContext, ActivityError, WorkerConfig, WorkflowContext, WorkflowError,
};

use crate::AnyError;

/// An order to screen.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    /// The order id.
    pub id: String,
    /// The amount in cents.
    pub cents: u64,
}

/// The screening's verdict.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// Whether the order may proceed.
    pub approved: bool,
    /// The risk score (0–100).
    pub score: u32,
}

async fn score(_ctx: ActivityContext, order: Order) -> Result<u32, ActivityError> {
    // A real plugin calls its risk service here.
    Ok(((order.cents / 1000) as u32).min(100))
}

/// The plugin's built-in workflow.
async fn screen(ctx: WorkflowContext, order: Order) -> Result<Verdict, WorkflowError> {
    let score: u32 = ctx
        .activity("fraud.score")
        .arg(&order)
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    Ok(Verdict {
        approved: score < 50,
        score,
    })
}

/// What the `acme-fraud` crate exports.
pub fn plugin() -> SimplePlugin {
    SimplePlugin::new("acme.fraud")
        .workflow("fraud.Screen", screen)
        .activity("fraud.score", score)
}

/// The user's workflow: screens the order in a child workflow the plugin supplies.
async fn checkout(ctx: WorkflowContext, order: Order) -> Result<String, WorkflowError> {
    let verdict: Verdict = ctx
        .child_workflow("fraud.Screen")
        .arg(&order)
        .id(format!("screen-{}", order.id))
        .run()
        .await?;
    Ok(if verdict.approved {
        format!("order {} approved (score {})", order.id, verdict.score)
    } else {
        format!(
            "order {} held for review (score {})",
            order.id, verdict.score
        )
    })
}

/// Connects with the plugin and checks out one order.
pub async fn run(address: String) -> Result<String, AnyError> {
    let client = Client::connect(ClientConfig::new(address).plugin(plugin())).await?;
    let config =
        WorkerConfig::new(format!("checkout-{}", crate::unique())).workflow("Checkout", checkout);
    let order = Order {
        id: crate::unique(),
        cents: 12_000,
    };
    let out: String = crate::execute(&client, config, "Checkout", &order).await?;
    Ok(out.replace(&order.id, "#1"))
}
