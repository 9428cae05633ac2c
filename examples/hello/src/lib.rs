//! The demo's workflow and activity, in a library so its replay test can use them.

use std::time::Duration;

use trellis_worker::{ActivityContext, ActivityError, WorkflowContext, WorkflowError};

/// Composes a greeting: `("Hello", "world")` → `"Hello, world!"`.
pub async fn compose_greeting(
    ctx: ActivityContext,
    (greeting, name): (String, String),
) -> Result<String, ActivityError> {
    println!(
        "  activity {} (attempt {}) composing a greeting for {name:?}",
        ctx.info().activity_type,
        ctx.info().attempt
    );
    Ok(format!("{greeting}, {name}!"))
}

/// Calls `compose_greeting`, then waits half a second on a durable timer.
pub async fn greet(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    let greeting: String = ctx
        .activity("compose_greeting")
        .args(("Hello", &name))
        .start_to_close_timeout(Duration::from_secs(10))
        .run()
        .await?;
    ctx.timer(Duration::from_millis(500)).await;
    Ok(greeting)
}
