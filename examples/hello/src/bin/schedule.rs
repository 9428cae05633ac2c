//! A schedule that greets every hour: created with the demo plugin's client (so its arguments
//! are encrypted), triggered once at creation, then paused and deleted. Prints what the server
//! says at each step.
//!
//! Run it against a server: `TEMPORAL_ADDRESS=127.0.0.1:7233 cargo run -p trellis-example-hello
//! --bin schedule` (`cargo xtask dev-server` starts one).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use trellis_client::schedule::ScheduleOptions;
use trellis_client::{Client, ClientConfig, WorkflowOptions};
use trellis_example_hello::{HookLog, greetings_plugin};
use trellis_worker::{Worker, WorkerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::var("TEMPORAL_ADDRESS").unwrap_or_else(|_| "127.0.0.1:7233".into());
    let client =
        Client::connect(ClientConfig::new(&address).plugin(greetings_plugin(HookLog::default())))
            .await?;
    let suffix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let task_queue = format!("hello-schedule-{suffix}");
    let worker = Worker::new(&client, WorkerConfig::new(&task_queue))
        .await?
        .spawn();

    let schedule = client
        .create_schedule(
            &format!("hourly-greeting-{suffix}"),
            ScheduleOptions::every(Duration::from_secs(3600))
                .note("greets the world every hour")
                .trigger_immediately(),
            "Greet",
            ("world",),
            WorkflowOptions::new(format!("greet-{suffix}"), &task_queue),
        )
        .await?;
    println!("Created schedule {}", schedule.id());

    // The first action runs at once (trigger_immediately); wait for it and its result.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let run = loop {
        if let Some(run) = schedule.latest_run().await? {
            break run;
        }
        if std::time::Instant::now() > deadline {
            return Err("the schedule took no action within a minute".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let greeting: String = run.result().await?;
    println!("Run {} greeted: {greeting:?}", run.id());

    schedule.pause("done for today").await?;
    let described = schedule.describe().await?;
    println!(
        "Paused: {} ({:?}); actions taken: {}; next action due: {:?}",
        described.paused,
        described.note,
        described.action_count,
        described.next_action_times.first()
    );
    schedule.delete().await?;
    println!("Deleted schedule {}", schedule.id());
    worker.stop().await?;
    Ok(())
}
