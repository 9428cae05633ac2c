//! A plugin that adds a built-in activity: the `currency.convert` activity, which users'
//! workflows call by name.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use trellis_client::{Client, ClientConfig};
use trellis_plugin_simple::SimplePlugin;
use trellis_worker::{
    ActivityContext, ActivityError, WorkerConfig, WorkflowContext, WorkflowError,
};

use crate::AnyError;

/// An amount of money in a currency.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Money {
    /// Minor units (cents).
    pub cents: i64,
    /// ISO currency code.
    pub currency: String,
}

/// The plugin's activity: converts with a fixed rate table (a real plugin calls a rate API).
async fn convert(
    _ctx: ActivityContext,
    (from, to): (Money, String),
) -> Result<Money, ActivityError> {
    let rate = match (from.currency.as_str(), to.as_str()) {
        (a, b) if a == b => 1.0,
        ("EUR", "USD") => 1.08,
        ("USD", "EUR") => 0.93,
        (a, b) => {
            return Err(ActivityError::from(
                trellis_converter::ApplicationFailure::new(
                    "UnknownRate",
                    format!("no rate {a}->{b}"),
                )
                .non_retryable(),
            ));
        }
    };
    Ok(Money {
        cents: (from.cents as f64 * rate).round() as i64,
        currency: to,
    })
}

/// What the `acme-currency` crate exports.
pub fn plugin() -> SimplePlugin {
    SimplePlugin::new("acme.currency").activity("currency.convert", convert)
}

/// The user's workflow: prices an order in the customer's currency with the built-in activity.
async fn price_order(ctx: WorkflowContext, euros: i64) -> Result<Money, WorkflowError> {
    let eur = Money {
        cents: euros * 100,
        currency: "EUR".into(),
    };
    Ok(ctx
        .activity("currency.convert")
        .args((eur, "USD"))
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?)
}

/// Connects with the plugin and prices a 25-euro order in dollars.
pub async fn run(address: String) -> Result<String, AnyError> {
    let client = Client::connect(ClientConfig::new(address).plugin(plugin())).await?;
    let config = WorkerConfig::new(format!("currency-{}", crate::unique()))
        .workflow("PriceOrder", price_order);
    let usd: Money = crate::execute(&client, config, "PriceOrder", &25).await?;
    Ok(format!("{} {}", usd.cents, usd.currency))
}
