//! Benchmark C: default DataConverter round trip of a ~1 KiB JSON-ish struct.
//! Levels (ns per encode+decode round trip):
//!   dc      = DataConverter::default().to_payload(&ctx, &order).await + from_payload::<Order>(..).await (primary)
//!   pc      = DataConverter::default().payload_converter() sync to_payload/from_payload::<Order>
//!   pc_dict = same with serde_json::Value (untyped) instead of the struct
//!   raw     = serde_json::to_vec + serde_json::from_slice::<Order>, no SDK (reference floor)
use peerbench_official::*;
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, hint::black_box, time::Instant};
use temporalio_common::data_converters::{
    DataConverter, GenericPayloadConverter, SerializationContext, SerializationContextData,
};

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Item {
    price: f64,
    qty: i64,
    sku: String,
}

// Field order = sorted keys, so the JSON bytes equal the Python peer's (sort_keys=True) output.
#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Order {
    active: bool,
    amount: f64,
    attrs: BTreeMap<String, String>,
    customer: String,
    email: String,
    items: Vec<Item>,
    notes: String,
    order_id: String,
    quantity: i64,
    tags: Vec<String>,
}

fn make_order() -> Order {
    Order {
        order_id: "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b".into(),
        customer: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        amount: 1234.5,
        quantity: 42,
        active: true,
        tags: (0..10).map(|i| format!("tag-{i}")).collect(),
        attrs: (0..8).map(|i| (format!("key{i}"), format!("value-{i}"))).collect(),
        items: (0..8)
            .map(|i| Item { sku: format!("SKU-{i:05}"), qty: i + 1, price: 9.75 + i as f64 })
            .collect(),
        notes: "n".repeat(286),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let iters: usize = arg("--iters").map(|s| s.parse().unwrap()).unwrap_or(100_000);
    let iters2: usize = arg("--iters-secondary").map(|s| s.parse().unwrap()).unwrap_or(100_000);
    let reps: usize = arg("--reps").map(|s| s.parse().unwrap()).unwrap_or(5);
    let warmup: usize = arg("--warmup").map(|s| s.parse().unwrap()).unwrap_or(2_000);
    let dc = DataConverter::default();
    let ctx = SerializationContextData::None;
    let v = make_order();
    let p = dc.to_payload(&ctx, &v).await?;
    let size = p.data.len();
    let back: Order = dc.from_payload(&ctx, p.clone()).await?;
    assert_eq!(back, v);
    let vd: serde_json::Value = serde_json::from_slice(&p.data)?;
    let pc = dc.payload_converter();
    let sctx = SerializationContext::new(&ctx, pc);

    let mut out = format!("{{\"peer\": \"rust-official\", \"payload_bytes\": {size}");
    // dc
    let run_dc = |n: usize| {
        let dc = &dc;
        let ctx = &ctx;
        let v = &v;
        async move {
            for _ in 0..n {
                let p = dc.to_payload(ctx, black_box(v)).await.unwrap();
                let o: Order = dc.from_payload(ctx, p).await.unwrap();
                black_box(o);
            }
        }
    };
    run_dc(warmup).await;
    let mut ts = vec![];
    for _ in 0..reps {
        let t0 = Instant::now();
        run_dc(iters).await;
        ts.push(t0.elapsed().as_nanos() as f64 / iters as f64);
    }
    out += &format!(", \"dc_iters\": {iters}, \"dc_ns\": {ts:?}, \"dc_ns_median\": {}", median(&ts));
    // pc (typed)
    let run_pc = |n: usize| {
        for _ in 0..n {
            let p = pc.to_payload(&sctx, black_box(&v)).unwrap();
            let o: Order = pc.from_payload(&sctx, p).unwrap();
            black_box(o);
        }
    };
    run_pc(warmup);
    let mut ts = vec![];
    for _ in 0..reps {
        let t0 = Instant::now();
        run_pc(iters2);
        ts.push(t0.elapsed().as_nanos() as f64 / iters2 as f64);
    }
    out += &format!(", \"pc_iters\": {iters2}, \"pc_ns\": {ts:?}, \"pc_ns_median\": {}", median(&ts));
    // pc_dict (untyped serde_json::Value)
    let run_pcd = |n: usize| {
        for _ in 0..n {
            let p = pc.to_payload(&sctx, black_box(&vd)).unwrap();
            let o: serde_json::Value = pc.from_payload(&sctx, p).unwrap();
            black_box(o);
        }
    };
    run_pcd(warmup);
    let mut ts = vec![];
    for _ in 0..reps {
        let t0 = Instant::now();
        run_pcd(iters2);
        ts.push(t0.elapsed().as_nanos() as f64 / iters2 as f64);
    }
    out += &format!(", \"pc_dict_iters\": {iters2}, \"pc_dict_ns\": {ts:?}, \"pc_dict_ns_median\": {}}}", median(&ts));
    // raw: plain serde_json::to_vec + from_slice::<Order> (no SDK) -- reference floor
    let run_raw = |n: usize| {
        for _ in 0..n {
            let b = serde_json::to_vec(black_box(&v)).unwrap();
            let o: Order = serde_json::from_slice(&b).unwrap();
            black_box(o);
        }
    };
    run_raw(warmup);
    let mut ts = vec![];
    for _ in 0..reps {
        let t0 = Instant::now();
        run_raw(iters2);
        ts.push(t0.elapsed().as_nanos() as f64 / iters2 as f64);
    }
    out.pop();
    out += &format!(", \"raw_iters\": {iters2}, \"raw_ns\": {ts:?}, \"raw_ns_median\": {}}}", median(&ts));
    println!("{out}");
    if flag("--dump") {
        eprintln!("{}", String::from_utf8_lossy(&p.data));
    }
    Ok(())
}
