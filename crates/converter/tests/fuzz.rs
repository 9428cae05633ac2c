//! Fuzz-style checks: seeded random and mutated bytes fed to every decoder must give errors (or
//! values), never panics.

use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::Deserialize;
use trellis_converter::visit::{VisitOptions, payloads_mut};
use trellis_converter::{
    AesGcmCodec, DataConverter, FailureConverter, Payload, PayloadCodec, Proto, ProtoJson,
    RawValue, ZstdCodec,
};
use trellis_core_proto::Failure;
use trellis_core_proto::api::common::v1::{Payloads, WorkflowExecution};
use trellis_core_proto::coresdk::workflow_activation::WorkflowActivation;
use trellis_core_proto::coresdk::workflow_completion::WorkflowActivationCompletion;
use trellis_core_proto::payload::new_payload;

#[derive(Deserialize, Debug)]
#[allow(dead_code)]
struct Order {
    id: u32,
    item: String,
    tags: Vec<String>,
    note: Option<String>,
}

const ENCODINGS: &[&str] = &[
    "binary/null",
    "binary/plain",
    "json/protobuf",
    "binary/protobuf",
    "json/plain",
    "binary/zstd",
    "binary/encrypted",
    "binary/unknown",
];

fn random_bytes(rng: &mut SmallRng, max: usize) -> Vec<u8> {
    let mut v = vec![0u8; rng.random_range(0..=max)];
    rng.fill_bytes(&mut v);
    v
}

/// Random bytes, or a valid input with a few bytes flipped, cut short or extended.
fn mutated(rng: &mut SmallRng, valid: &[Vec<u8>]) -> Vec<u8> {
    if valid.is_empty() || rng.random_bool(0.3) {
        return random_bytes(rng, 300);
    }
    let mut v = valid[rng.random_range(0..valid.len())].clone();
    match rng.random_range(0..3) {
        0 if !v.is_empty() => {
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => v.truncate(rng.random_range(0..=v.len())),
        _ => v.extend(random_bytes(rng, 16)),
    }
    v
}

fn decode_everything(dc: &DataConverter, p: &Payload) {
    let _ = dc.decode::<Order>(p);
    let _ = dc.decode::<String>(p);
    let _ = dc.decode::<()>(p);
    let _ = dc.decode::<Option<u32>>(p);
    let _ = dc.decode::<serde_json::Value>(p);
    let _ = dc.decode::<serde_bytes::ByteBuf>(p);
    let _ = dc.decode::<Proto<WorkflowExecution>>(p);
    let _ = dc.decode::<ProtoJson<WorkflowExecution>>(p);
    let _ = dc.decode::<ProtoJson<Payloads>>(p);
    let _ = dc.decode::<RawValue>(p);
    let pair = [p.clone(), p.clone()];
    let _ = dc.decode_args::<(String, u32)>(&pair);
    let _ = dc.decode_args::<(RawValue, Proto<WorkflowExecution>)>(&pair);
}

#[test]
fn random_payloads_never_panic_the_payload_converter() {
    let dc = DataConverter::default();
    let valid: Vec<Vec<u8>> = vec![
        br#"{"id":1,"item":"x","tags":["a"],"note":null}"#.to_vec(),
        br#"{"runId":"r","workflowId":"w"}"#.to_vec(),
        br#"{"payloads":[{"data":"MQ==","metadata":{"encoding":"anNvbi9wbGFpbg=="}}]}"#.to_vec(),
        WorkflowExecution {
            workflow_id: "w".into(),
            run_id: "r".into(),
        }
        .encode_to_vec(),
        br#""hello""#.to_vec(),
    ];
    let mut rng = SmallRng::seed_from_u64(0x7e_1115);
    for _ in 0..4000 {
        let enc = ENCODINGS[rng.random_range(0..ENCODINGS.len())];
        let mut p = new_payload(enc, mutated(&mut rng, &valid));
        if rng.random_bool(0.5) {
            p.metadata.insert(
                "messageType".into(),
                if rng.random_bool(0.5) {
                    b"temporal.api.common.v1.WorkflowExecution".to_vec()
                } else {
                    random_bytes(&mut rng, 20)
                },
            );
        }
        decode_everything(&dc, &p);
        // Payloads whose metadata itself is random.
        if let Ok(p) = Payload::decode(random_bytes(&mut rng, 200).as_slice()) {
            decode_everything(&dc, &p);
        }
    }
}

#[tokio::test]
async fn random_ciphertext_and_compressed_data_never_panic_the_codecs() {
    let zstd = ZstdCodec::new().with_max_decoded_size(1 << 20);
    let aes = AesGcmCodec::new("k", [5; 32]);
    let sample = new_payload(
        "json/plain",
        br#""some value, long enough to compress well, well, well""#.repeat(20),
    );
    let valid_zstd = zstd.encode_one(sample.clone()).unwrap().data;
    let valid_aes = aes.encrypt(&sample).unwrap().data;
    let valid = vec![valid_zstd, valid_aes];
    let mut rng = SmallRng::seed_from_u64(42);
    for i in 0..2000 {
        let data = mutated(&mut rng, &valid);
        let zp = new_payload("binary/zstd", data.clone());
        let _ = zstd.decode(vec![zp]).await;
        let mut ap = new_payload("binary/encrypted", data);
        if i % 7 != 0 {
            ap.metadata
                .insert("encryption-key-id".into(), b"k".to_vec());
        }
        let r = aes.decode(vec![ap]).await;
        // Tampered ciphertext never authenticates.
        if let Ok(out) = r {
            assert_eq!(out[0], sample, "a forged ciphertext decrypted");
        }
    }
}

#[test]
fn random_failures_and_worker_messages_never_panic() {
    let fc = FailureConverter::default();
    let valid_failure = fc
        .application_to_failure(
            &trellis_converter::ApplicationFailure::new("T", "m")
                .with_cause(trellis_converter::CancelledFailure::default()),
        )
        .encode_to_vec();
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..2000 {
        let bytes = mutated(&mut rng, std::slice::from_ref(&valid_failure));
        if let Ok(f) = Failure::decode(bytes.as_slice()) {
            let t = fc.from_failure(&f);
            let _ = t.to_string();
            let _ = fc.to_failure(&t);
            let _ = fc.failure_to_application(&f);
        }
        // Random encoded attributes.
        let f = Failure {
            message: "Encoded failure".into(),
            encoded_attributes: Some(new_payload("json/plain", random_bytes(&mut rng, 64))),
            ..Default::default()
        };
        let _ = fc.from_failure(&f);

        let opts = VisitOptions::default().with_headers(true);
        if let Ok(mut a) = WorkflowActivation::decode(random_bytes(&mut rng, 200).as_slice()) {
            let _ = payloads_mut(&mut a, &opts).len();
        }
        if let Ok(mut c) =
            WorkflowActivationCompletion::decode(random_bytes(&mut rng, 200).as_slice())
        {
            let _ = payloads_mut(&mut c, &opts).len();
        }
    }
}
