//! Benchmark C (Trellis): a 1 KiB struct (the same `Order` as the other peers, field order =
//! sorted keys so the JSON bytes match) through `DataConverter` encode + decode, next to plain
//! `serde_json::to_vec` + `from_slice` in the same process. Prints one JSON line with ns per
//! round trip (`--erased`: through the type-erased path only, as before the typed fast path)
//! for each of `--reps` passes of `--iters` iterations (converter and serde_json
//! passes alternate), and the ratio of each converter pass to the serde_json pass after it.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use trellis_converter::{
    CompositePayloadConverter, ConversionError, DataConverter, Payload, PayloadConverter,
};
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

/// The standard converter behind a converter that only forwards the type-erased methods: what
/// every conversion cost before the typed fast path (`--erased`).
#[derive(Debug)]
struct Erased(CompositePayloadConverter);

impl PayloadConverter for Erased {
    fn encode_erased(
        &self,
        value: &dyn erased_serde::Serialize,
    ) -> Result<Payload, ConversionError> {
        self.0.encode_erased(value)
    }

    fn decode_erased<'p>(
        &self,
        payload: &'p Payload,
        visit: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'p>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), ConversionError> {
        self.0.decode_erased(payload, visit)
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
    let dc = if std::env::args().any(|a| a == "--erased") {
        DataConverter::new(Erased(CompositePayloadConverter::standard()))
    } else {
        DataConverter::default()
    };
    let v = make_order();
    let p = dc.encode(&v)?;
    let size = p.data.len();
    let back: Order = dc.decode(&p)?;
    assert_eq!(back, v);
    let mut dc_round = || {
        let p = dc.encode(black_box(&v)).expect("encode");
        let o: Order = dc.decode(&p).expect("decode");
        black_box(o);
    };
    let mut raw_round = || {
        let b = serde_json::to_vec(black_box(&v)).expect("to_vec");
        let o: Order = serde_json::from_slice(&b).expect("from_slice");
        black_box(o);
    };
    // The two alternate pass by pass, so drifting machine load hits both alike.
    let (mut dc_ns, mut raw_ns) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        dc_ns.extend(time_it(iters, 1, warmup, &mut dc_round));
        raw_ns.extend(time_it(iters, 1, warmup, &mut raw_round));
    }
    let ratios: Vec<f64> = dc_ns.iter().zip(&raw_ns).map(|(d, r)| d / r).collect();
    println!(
        "{{\"peer\": \"trellis\", \"payload_bytes\": {size}, \"dc_iters\": {iters}, \"dc_ns\": {dc_ns:?}, \"dc_ns_median\": {}, \"raw_iters\": {iters}, \"raw_ns\": {raw_ns:?}, \"raw_ns_median\": {}, \"ratio_per_pass\": {ratios:?}, \"ratio_median\": {}}}",
        median(&dc_ns),
        median(&raw_ns),
        median(&ratios)
    );
    Ok(())
}
