//! `trellis-bench`: the measurements behind `cargo xtask bench`, printed as a markdown report.
//!
//! ```text
//! trellis-bench [--address HOST:PORT] [--rounds N] [--only layers]
//! ```
//!
//! `--only layers` runs just the in-process layer measurements (no server needed); it is what
//! `cargo xtask bench` runs as part D of its side-by-side report.
//!
//! - **Replay**: records a short history (one activity) and a long one (100 activities) on the
//!   server, then replays each repeatedly: histories/s (median of rounds, with min–max).
//! - **Converter**: a 1 KiB struct through `DataConverter` encode + decode next to plain
//!   `serde_json` in the same run (ratio), and codec throughput (MB/s) of zstd and AES-256-GCM
//!   for 1 KiB and 1 MiB payloads.
//! - **Layers**: stacked no-op `from_fn` hooks on a boxed service; and a whole activity call
//!   (decode, run, encode) through a worker's activity stack with 0, 1, 4 and 16 plugins each
//!   adding a no-op activity layer, in process, next to the bare call.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use trellis_client::{Client, ClientConfig, WorkflowOptions};
use trellis_converter::{AesGcmCodec, DataConverter, PayloadCodec, ZstdCodec};
use trellis_replayer::{ReplayHistory, Replayer, ReplayerConfig, history};
use trellis_worker::{
    ActivityContext, ActivityError, Worker, WorkerConfig, WorkflowContext, WorkflowError,
};

async fn echo(_ctx: ActivityContext, n: u32) -> Result<u32, ActivityError> {
    Ok(n)
}

async fn loop_activities(ctx: WorkflowContext, n: u32) -> Result<u32, WorkflowError> {
    let mut sum = 0;
    for i in 0..n {
        sum += ctx
            .activity("echo")
            .arg(&i)
            .start_to_close_timeout(Duration::from_secs(10))
            .run::<u32>()
            .await?;
    }
    Ok(sum)
}

fn worker_config(tq: &str) -> WorkerConfig {
    WorkerConfig::new(tq)
        .workflow("Loop", loop_activities)
        .activity("echo", echo)
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(|a, b| a.total_cmp(b));
    Stats {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

#[derive(Serialize, Deserialize)]
struct Doc {
    id: u64,
    name: String,
    tags: Vec<String>,
    body: String,
}

fn one_kib_doc() -> Doc {
    Doc {
        id: 42,
        name: "order-42".into(),
        tags: vec!["a".into(), "b".into(), "c".into()],
        body: "x".repeat(960),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut address = "127.0.0.1:7233".to_owned();
    let mut rounds = 5usize;
    let mut only_layers = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--address" => address = args.next().ok_or("--address needs a value")?,
            "--rounds" => rounds = args.next().ok_or("--rounds needs a value")?.parse()?,
            "--only" => match args.next().as_deref() {
                Some("layers") => only_layers = true,
                other => return Err(format!("--only takes `layers`, not {other:?}").into()),
            },
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if only_layers {
        layers_bench(rounds).await;
        plugin_layers_bench(rounds).await?;
        return Ok(());
    }
    println!("# Trellis benchmarks\n");
    println!("{rounds} rounds; median [min–max].\n");
    replay_bench(&address, rounds).await?;
    converter_bench(rounds).await?;
    Ok(())
}

async fn replay_bench(address: &str, rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::connect(ClientConfig::new(address)).await?;
    let tq = format!("bench-replay-{}", std::process::id());
    let worker = Worker::new(&client, worker_config(&tq)).await?;
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let mut recorded = Vec::new();
    for (label, n) in [("short (1 activity)", 1u32), ("long (100 activities)", 100)] {
        let id = format!("bench-{n}-{}", std::process::id());
        let h = client
            .start_workflow("Loop", &n, WorkflowOptions::new(&id, &tq))
            .await?;
        h.result::<u32>().await?;
        let hist = history::fetch(&client, &id, None).await?;
        recorded.push((label, hist));
    }
    stop.shutdown();
    running.await??;

    println!("## Replay\n");
    println!("| history | events | histories/s |");
    println!("| --- | --- | --- |");
    let replayer = Replayer::new(ReplayerConfig::new(worker_config("bench-replay")))
        .expect("the bench workflows replay");
    for (label, hist) in recorded {
        let batch = 50usize;
        let events = hist.history.events.len();
        let mut per_s = Vec::new();
        for _ in 0..rounds {
            let histories: Vec<ReplayHistory> = (0..batch).map(|_| hist.clone()).collect();
            let t = Instant::now();
            let results = replayer.replay_all(histories).await?;
            let secs = t.elapsed().as_secs_f64();
            assert!(
                results.iter().all(|r| r.is_ok()),
                "benchmark histories replay clean"
            );
            per_s.push(batch as f64 / secs);
        }
        let s = stats(per_s);
        println!(
            "| {label} | {events} | {:.0} [{:.0}–{:.0}] |",
            s.median, s.min, s.max
        );
    }
    println!();
    Ok(())
}

async fn converter_bench(rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    println!("## Data converter (1 KiB struct, encode + decode)\n");
    let doc = one_kib_doc();
    let dc = DataConverter::default();
    let iters = 20_000;
    let mut ours = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iters {
            let p = dc.encode(&doc)?;
            let back: Doc = dc.decode(&p)?;
            std::hint::black_box(back);
        }
        ours.push(t.elapsed().as_secs_f64() * 1e9 / iters as f64);
        let t = Instant::now();
        for _ in 0..iters {
            let bytes = serde_json::to_vec(&doc)?;
            let back: Doc = serde_json::from_slice(&bytes)?;
            std::hint::black_box(back);
        }
        floor.push(t.elapsed().as_secs_f64() * 1e9 / iters as f64);
    }
    let ratios: Vec<f64> = ours.iter().zip(&floor).map(|(a, b)| a / b).collect();
    let (o, f, r) = (stats(ours), stats(floor), stats(ratios));
    println!("| path | ns per round trip |");
    println!("| --- | --- |");
    println!(
        "| DataConverter (json/plain) | {:.0} [{:.0}–{:.0}] |",
        o.median, o.min, o.max
    );
    println!(
        "| serde_json alone | {:.0} [{:.0}–{:.0}] |",
        f.median, f.min, f.max
    );
    println!(
        "| ratio (same round) | {:.2} [{:.2}–{:.2}] |\n",
        r.median, r.min, r.max
    );

    println!("## Converter throughput (a JSON string payload, encode + decode)\n");
    println!("| payload | MB/s |");
    println!("| --- | --- |");
    for size in [1024usize, 1024 * 1024] {
        let text: String = (0..size).map(|i| (b'a' + (i % 23) as u8) as char).collect();
        let iters = (64 * 1024 * 1024 / size).clamp(16, 20_000);
        let mut mbs = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..iters {
                let p = dc.encode(&text)?;
                let back: String = dc.decode(&p)?;
                std::hint::black_box(back);
            }
            mbs.push((size * iters) as f64 / t.elapsed().as_secs_f64() / 1e6);
        }
        let s = stats(mbs);
        let label = if size == 1024 { "1 KiB" } else { "1 MiB" };
        println!("| {label} | {:.0} [{:.0}–{:.0}] |", s.median, s.min, s.max);
    }
    println!();

    println!("## Codecs (encode + decode)\n");
    println!("| codec | payload | MB/s |");
    println!("| --- | --- | --- |");
    let zstd = ZstdCodec::new();
    let aes = AesGcmCodec::new("bench", [9; 32]);
    let codecs: [(&str, &dyn PayloadCodec); 2] = [("zstd", &zstd), ("aes-256-gcm", &aes)];
    for (name, codec) in codecs {
        for size in [1024usize, 1024 * 1024] {
            let text: String = (0..size).map(|i| (b'a' + (i % 23) as u8) as char).collect();
            let payload = dc.encode(&text)?;
            let iters = (64 * 1024 * 1024 / size).clamp(16, 20_000);
            let mut mbs = Vec::new();
            for _ in 0..rounds {
                let t = Instant::now();
                for _ in 0..iters {
                    let enc = codec.encode(vec![payload.clone()]).await?;
                    let dec = codec.decode(enc).await?;
                    std::hint::black_box(dec);
                }
                mbs.push((size * iters) as f64 / t.elapsed().as_secs_f64() / 1e6);
            }
            let s = stats(mbs);
            let label = if size == 1024 { "1 KiB" } else { "1 MiB" };
            println!(
                "| {name} | {label} | {:.0} [{:.0}–{:.0}] |",
                s.median, s.min, s.max
            );
        }
    }
    println!();
    layers_bench(rounds).await;
    plugin_layers_bench(rounds).await?;
    Ok(())
}

/// The cost of stacked `from_fn` hooks on a boxed service (the shape of every `Send`
/// interception point), per call, next to the bare boxed service in the same round.
async fn layers_bench(rounds: usize) {
    use tower::{Layer, ServiceExt};
    use trellis_interceptor::{BoxError, Next, from_fn};
    type Svc = tower::util::BoxCloneSyncService<u64, u64, BoxError>;
    println!("## Stacked no-op layers (in process, per call)\n");
    println!("| layers | ns per call | added over 0 layers |");
    println!("| --- | --- | --- |");
    let iters = 200_000u64;
    let mut base = 0.0;
    for n in [0usize, 1, 4, 16] {
        let mut svc: Svc = Svc::new(tower::service_fn(|x: u64| async move {
            Ok::<_, BoxError>(x + 1)
        }));
        for _ in 0..n {
            svc =
                Svc::new(from_fn(|x: u64, next: Next<u64, u64, BoxError>| next.run(x)).layer(svc));
        }
        let mut per_call = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            for i in 0..iters {
                std::hint::black_box(svc.clone().oneshot(i).await.ok());
            }
            per_call.push(t.elapsed().as_secs_f64() * 1e9 / iters as f64);
        }
        let s = stats(per_call);
        if n == 0 {
            base = s.median;
        }
        println!(
            "| {n} | {:.0} [{:.0}–{:.0}] | {:.0} |",
            s.median,
            s.min,
            s.max,
            s.median - base
        );
    }
    println!();
}

/// A plugin interceptor that adds one no-op activity layer.
struct NoopActivityLayer;

impl trellis_worker::Interceptor for NoopActivityLayer {
    fn intercept_worker(&self, config: WorkerConfig) -> WorkerConfig {
        use trellis_interceptor::{BoxError, Next, from_fn};
        use trellis_worker::interceptors::ActivityRequest;
        config.activity_layer(from_fn(
            |req: ActivityRequest,
             next: Next<ActivityRequest, trellis_core_proto::Payload, BoxError>| {
                next.run(req)
            },
        ))
    }
}

/// One activity call (decode the argument, run, encode the result) through a worker's activity
/// stack built from N plugins, each adding a no-op layer; in process, per call.
async fn plugin_layers_bench(rounds: usize) -> Result<(), Box<dyn std::error::Error>> {
    use tower::ServiceExt;
    use trellis_plugin_simple::SimplePlugin;
    use trellis_worker::interceptors::ActivityRequest;
    use trellis_worker::{ActivityContext, ActivityInfo};
    println!("## Plugins adding a no-op activity layer (in process, per activity call)\n");
    println!("| plugins | ns per call | added over 0 plugins |");
    println!("| --- | --- | --- |");
    let converter = DataConverter::default();
    let context = ActivityContext::detached(
        ActivityInfo {
            activity_type: "echo".into(),
            ..ActivityInfo::default()
        },
        converter.clone(),
    );
    let arg = converter.encode(&7u32)?;
    let iters = 100_000u64;
    let mut base = 0.0;
    for n in [0usize, 1, 4, 16] {
        let mut config = WorkerConfig::new("bench-plugins").activity("echo", echo);
        for i in 0..n {
            config = config
                .plugin(SimplePlugin::new(format!("noop-{i}")).interceptor(NoopActivityLayer));
        }
        let service = config.apply_plugins()?.activity_service()?;
        let mut per_call = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..iters {
                let req = ActivityRequest {
                    context: context.clone(),
                    args: vec![arg.clone()],
                    headers: Default::default(),
                };
                std::hint::black_box(
                    service
                        .clone()
                        .oneshot(req)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            per_call.push(t.elapsed().as_secs_f64() * 1e9 / iters as f64);
        }
        let s = stats(per_call);
        if n == 0 {
            base = s.median;
        }
        println!(
            "| {n} | {:.0} [{:.0}–{:.0}] | {:.0} |",
            s.median,
            s.min,
            s.max,
            s.median - base
        );
    }
    println!();
    Ok(())
}
