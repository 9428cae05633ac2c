//! Optional: record histories with the Rust worker (cross-check set), same layout as
//! python/record.py: <out>/<kind>/NNNN.pb binary History protos.
use futures::{StreamExt, stream};
use peerbench_official::*;
use prost::Message;
use temporalio_client::{WorkflowFetchHistoryOptions, WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_common::protos::temporal::api::history::v1::History;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = arg("--addr").unwrap_or_else(|| "127.0.0.1:7255".into());
    let out = arg("--out").expect("--out required");
    let n_echo: usize = arg("--echo").map(|s| s.parse().unwrap()).unwrap_or(200);
    let n_loops: usize = arg("--loops").map(|s| s.parse().unwrap()).unwrap_or(50);
    let loop_len: i64 = arg("--loop-len").map(|s| s.parse().unwrap()).unwrap_or(100);
    let tq = format!("record-rs-{}", std::process::id());
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let client = connect(&addr).await?;
    let opts = WorkerOptions::new(tq.clone())
        .register_workflow::<EchoWorkflow>()?
        .register_workflow::<LoopActivitiesWorkflow>()?
        .register_workflow::<LoopTimersWorkflow>()?
        .register_activities(EchoActivities)
        .build();
    let mut worker = Worker::new(&runtime, client.clone(), opts)?;
    let shutdown = worker.shutdown_handle();
    let c2 = client.clone();
    let driver = async move {
        for kind in ["echo", "loop_act", "loop_timer"] {
            let count = if kind == "echo" { n_echo } else { n_loops };
            std::fs::create_dir_all(format!("{out}/{kind}")).unwrap();
            let lens: Vec<usize> = stream::iter(0..count)
                .map(|i| {
                    let c = c2.clone();
                    let tq = tq.clone();
                    let out = out.clone();
                    async move {
                        let id = format!("{tq}-{kind}-{i}");
                        let opts = WorkflowStartOptions::new(tq.clone(), id).build();
                        let events = match kind {
                            "echo" => {
                                let h = c.start_workflow(EchoWorkflow::run, "hello".to_string(), opts).await.unwrap();
                                h.get_result(WorkflowGetResultOptions::default()).await.unwrap();
                                h.fetch_history(WorkflowFetchHistoryOptions::default()).into_events().await.unwrap()
                            }
                            "loop_act" => {
                                let h = c.start_workflow(LoopActivitiesWorkflow::run, loop_len, opts).await.unwrap();
                                h.get_result(WorkflowGetResultOptions::default()).await.unwrap();
                                h.fetch_history(WorkflowFetchHistoryOptions::default()).into_events().await.unwrap()
                            }
                            _ => {
                                let h = c.start_workflow(LoopTimersWorkflow::run, loop_len, opts).await.unwrap();
                                h.get_result(WorkflowGetResultOptions::default()).await.unwrap();
                                h.fetch_history(WorkflowFetchHistoryOptions::default()).into_events().await.unwrap()
                            }
                        };
                        let n = events.len();
                        std::fs::write(format!("{out}/{kind}/{i:04}.pb"), History { events }.encode_to_vec()).unwrap();
                        n
                    }
                })
                .buffer_unordered(50)
                .collect()
                .await;
            let mut l = lens.clone();
            l.sort();
            l.dedup();
            println!("{kind} {count} histories; events per history: {l:?}");
        }
        shutdown();
    };
    let (r, _) = tokio::join!(worker.run(), driver);
    r?;
    Ok(())
}
