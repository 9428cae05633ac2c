//! Benchmark C (Trellis): a 1 KiB struct (the same `Order` as the other peers, field order =
//! sorted keys so the JSON bytes match) through `DataConverter` encode + decode, next to plain
//! `serde_json::to_vec` + `from_slice` in the same process. Prints one JSON line with ns per
//! round trip for each of `--reps` passes of `--iters` iterations.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use trellis_converter::DataConverter;
use trellis_example_bench::{arg_or, median};

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Item {
    price: f64,
    qty: i64,
    sku: String,
}

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
        attrs: (0..8)
            .map(|i| (format!("key{i}"), format!("value-{i}")))
            .collect(),
        items: (0..8)
            .map(|i| Item {
                sku: format!("SKU-{i:05}"),
                qty: i + 1,
                price: 9.75 + i as f64,
            })
            .collect(),
        notes: "n".repeat(286),
    }
}

fn time_it(iters: usize, reps: usize, warmup: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..iters {
                f();
            }
            t0.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iters: usize = arg_or("--iters", 100_000);
    let reps: usize = arg_or("--reps", 3);
    let warmup: usize = arg_or("--warmup", 2_000);
    let dc = DataConverter::default();
    let v = make_order();
    let p = dc.encode(&v)?;
    let size = p.data.len();
    let back: Order = dc.decode(&p)?;
    assert_eq!(back, v);
    let dc_ns = time_it(iters, reps, warmup, || {
        let p = dc.encode(black_box(&v)).expect("encode");
        let o: Order = dc.decode(&p).expect("decode");
        black_box(o);
    });
    let raw_ns = time_it(iters, reps, warmup, || {
        let b = serde_json::to_vec(black_box(&v)).expect("to_vec");
        let o: Order = serde_json::from_slice(&b).expect("from_slice");
        black_box(o);
    });
    println!(
        "{{\"peer\": \"trellis\", \"payload_bytes\": {size}, \"dc_iters\": {iters}, \"dc_ns\": {dc_ns:?}, \"dc_ns_median\": {}, \"raw_iters\": {iters}, \"raw_ns\": {raw_ns:?}, \"raw_ns_median\": {}}}",
        median(&dc_ns),
        median(&raw_ns)
    );
    Ok(())
}
