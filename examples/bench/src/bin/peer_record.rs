//! Benchmark B, recording (Trellis worker): runs `--echo` `EchoWorkflow`s and `--loops`
//! `LoopActivitiesWorkflow(--loop-len)` / `LoopTimersWorkflow(--loop-len)` and writes each
//! finished history as a binary `History` protobuf to `<out>/<kind>/NNNN.pb`
//! (kinds `echo`, `loop_act`, `loop_timer`), the layout every peer's replay program reads.

use futures::StreamExt;
use prost::Message;
use trellis_client::{Client, ClientConfig, WorkflowOptions};
use trellis_example_bench::{arg, arg_or, worker_config};
use trellis_worker::Worker;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = arg("--addr").unwrap_or_else(|| "127.0.0.1:7233".into());
    let out = arg("--out").ok_or("--out required")?;
    let n_echo: usize = arg_or("--echo", 200);
    let n_loops: usize = arg_or("--loops", 50);
    let loop_len: i64 = arg_or("--loop-len", 100);
    let tq = format!("record-trellis-{}", std::process::id());
    let client = Client::connect(ClientConfig::new(addr)).await?;
    let worker = Worker::new(&client, worker_config(&tq)).await?;
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    for (kind, wf, count) in [
        ("echo", "EchoWorkflow", n_echo),
        ("loop_act", "LoopActivitiesWorkflow", n_loops),
        ("loop_timer", "LoopTimersWorkflow", n_loops),
    ] {
        let dir = format!("{out}/{kind}");
        std::fs::create_dir_all(&dir)?;
        let mut lens: Vec<usize> = futures::stream::iter(0..count)
            .map(|i| {
                let (client, tq, dir) = (&client, &tq, &dir);
                async move {
                    let id = format!("{tq}-{kind}-{i}");
                    let opts = WorkflowOptions::new(&id, tq);
                    let h = if kind == "echo" {
                        client.start_workflow(wf, "hello", opts).await
                    } else {
                        client.start_workflow(wf, &loop_len, opts).await
                    }
                    .expect("start");
                    h.result::<serde_json::Value>().await.expect("result");
                    let history = h.fetch_history().await.expect("history");
                    std::fs::write(format!("{dir}/{i:04}.pb"), history.encode_to_vec())
                        .expect("write history");
                    history.events.len()
                }
            })
            .buffer_unordered(50)
            .collect()
            .await;
        lens.sort();
        lens.dedup();
        println!("{kind} {count} histories; events per history: {lens:?}");
    }
    stop.shutdown();
    running.await??;
    Ok(())
}
