//! Benchmark A client (Trellis): `--warmup` workflows, then `MEASURE_START`, then `-n`
//! `EchoWorkflow`s (start, then wait for the result) with at most `--conc` in flight; prints one
//! JSON line with the timing.

use std::time::Instant;

use futures::StreamExt;
use trellis_client::{Client, ClientConfig, WorkflowOptions};
use trellis_example_bench::{arg, arg_or};

async fn run_batch(client: &Client, tq: &str, prefix: &str, n: usize, conc: usize) {
    futures::stream::iter(0..n)
        .for_each_concurrent(conc, |i| async move {
            let id = format!("{prefix}-{i}");
            let h = client
                .start_workflow("EchoWorkflow", "hello", WorkflowOptions::new(id, tq))
                .await
                .expect("start");
            let r: String = h.result().await.expect("result");
            assert_eq!(r, "hello");
        })
        .await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = arg("--addr").unwrap_or_else(|| "127.0.0.1:7233".into());
    let tq = arg("--tq").ok_or("--tq required")?;
    let n: usize = arg_or("-n", 500);
    let conc: usize = arg_or("--conc", 100);
    let warmup: usize = arg_or("--warmup", 20);
    let client = Client::connect(ClientConfig::new(addr)).await?;
    if warmup > 0 {
        run_batch(&client, &tq, &format!("{tq}-warm"), warmup, conc).await;
    }
    println!("MEASURE_START");
    let t0 = Instant::now();
    run_batch(&client, &tq, &format!("{tq}-wf"), n, conc).await;
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "{{\"client\": \"trellis\", \"n\": {n}, \"wall_s\": {dt}, \"wf_per_s\": {}}}",
        n as f64 / dt
    );
    Ok(())
}
