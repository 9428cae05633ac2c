//! Benchmark A client (Rust official SDK): warm-up, then N concurrent (start -> result)
//! pairs with at most --conc in flight. Prints one JSON line with the timing.
use futures::{StreamExt, stream};
use peerbench_official::*;
use std::time::Instant;
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};

async fn run_batch(client: &Client, tq: &str, prefix: &str, n: usize, conc: usize) {
    stream::iter(0..n)
        .for_each_concurrent(conc, |i| {
            let client = client.clone();
            let tq = tq.to_string();
            let id = format!("{prefix}-{i}");
            async move {
                let h = client
                    .start_workflow(
                        EchoWorkflow::run,
                        "hello".to_string(),
                        WorkflowStartOptions::new(tq, id).build(),
                    )
                    .await
                    .expect("start");
                let r = h
                    .get_result(WorkflowGetResultOptions::default())
                    .await
                    .expect("result");
                assert_eq!(r, "hello");
            }
        })
        .await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = arg("--addr").unwrap_or_else(|| "127.0.0.1:7255".into());
    let tq = arg("--tq").expect("--tq required");
    let n: usize = arg("-n").map(|s| s.parse().unwrap()).unwrap_or(500);
    let conc: usize = arg("--conc").map(|s| s.parse().unwrap()).unwrap_or(100);
    let warmup: usize = arg("--warmup").map(|s| s.parse().unwrap()).unwrap_or(20);
    let client = connect(&addr).await?;
    if warmup > 0 {
        run_batch(&client, &tq, &format!("{tq}-warm"), warmup, conc).await;
    }
    println!("MEASURE_START");
    let t0 = Instant::now();
    run_batch(&client, &tq, &format!("{tq}-wf"), n, conc).await;
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "{{\"client\": \"rust\", \"n\": {n}, \"wall_s\": {dt}, \"wf_per_s\": {}}}",
        n as f64 / dt
    );
    Ok(())
}
