//! Benchmark A worker (Trellis): serves the bench workloads on `--tq` at `--addr`, prints
//! `READY` once polling, stops on SIGTERM / Ctrl-C.

use trellis_client::{Client, ClientConfig};
use trellis_example_bench::{arg, vm_hwm_kb, worker_config};
use trellis_worker::Worker;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = arg("--addr").unwrap_or_else(|| "127.0.0.1:7233".into());
    let tq = arg("--tq").ok_or("--tq required")?;
    let client = Client::connect(ClientConfig::new(addr)).await?;
    let worker = Worker::new(&client, worker_config(&tq)).await?;
    println!("READY");
    worker
        .run_until(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    println!("MAXRSS_KB {}", vm_hwm_kb());
    Ok(())
}
