//! Router tests: requests as the UI and CLI send them, answered in-process.

use http::Request;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use trellis_converter::{AesGcmCodec, ZstdCodec};
use trellis_core_proto::Payload;
use trellis_core_proto::payload::new_payload;

use super::*;

const UI_ORIGIN: &str = "http://127.0.0.1:8233";

fn converter(key_id: &str, key: [u8; 32]) -> DataConverter {
    DataConverter::default()
        .with_codec(ZstdCodec::new())
        .with_codec(AesGcmCodec::new(key_id, key))
}

fn app() -> Router {
    router(converter("k1", [1; 32]), CodecServerOptions::default())
}

fn post(path: &str, namespace: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post(path)
        .header("content-type", "application/json")
        .header("origin", UI_ORIGIN);
    if let Some(ns) = namespace {
        builder = builder.header("x-namespace", ns);
    }
    builder.body(body.into()).unwrap()
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
    };
    (status, headers, json)
}

fn json_payload(text: &str) -> Payload {
    new_payload("json/plain", text.as_bytes().to_vec())
}

fn body_of(payloads: &[Payload]) -> Vec<u8> {
    wire::payloads_to_json(payloads)
}

fn payloads_of(json: &Value) -> Vec<Payload> {
    wire::payloads_from_json(&serde_json::to_vec(json).unwrap()).unwrap()
}

fn metadata_text(json: &Value, index: usize, key: &str) -> String {
    let b64 = json["payloads"][index]["metadata"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no metadata {key} in {json}"));
    String::from_utf8(wire::decode_base64(b64).unwrap()).unwrap()
}

#[tokio::test]
async fn encode_then_decode_round_trips() {
    let app = app();
    let big = json_payload(&format!("\"{}\"", "secret ".repeat(200)));
    let originals = vec![json_payload("\"secret-value\""), big, Payload::default()];
    let (status, headers, encoded) = call(&app, post("/encode", None, body_of(&originals))).await;
    assert_eq!(status, StatusCode::OK, "{encoded}");
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    assert_eq!(headers["access-control-allow-origin"], UI_ORIGIN);
    for i in 0..originals.len() {
        assert_eq!(metadata_text(&encoded, i, "encoding"), "binary/encrypted");
        assert_eq!(metadata_text(&encoded, i, "encryption-key-id"), "k1");
    }
    assert!(
        !encoded.to_string().contains("c2VjcmV0"),
        "plaintext leaked"
    );

    // Decoded by the same server, at any depth, with the UI's query string.
    for path in [
        "/decode",
        "/decode?preserveStorageRefs=true",
        "/codec/decode",
        "/a/b/decode/",
    ] {
        let (status, _, decoded) =
            call(&app, post(path, Some("default"), encoded.to_string())).await;
        assert_eq!(status, StatusCode::OK, "{path}: {decoded}");
        assert_eq!(payloads_of(&decoded), originals, "{path}");
    }
    // And by another server holding the same key: the format is the codec's, not the server's.
    let other = router(converter("k1", [1; 32]), CodecServerOptions::default());
    let (status, _, decoded) = call(&other, post("/decode", None, encoded.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(payloads_of(&decoded), originals);
}

#[tokio::test]
async fn decode_passes_unencoded_payloads_through_and_empty_batches_work() {
    let app = app();
    let plain = vec![json_payload("42")];
    let (status, _, decoded) = call(&app, post("/decode", None, body_of(&plain))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(payloads_of(&decoded), plain);
    let (status, _, out) = call(&app, post("/decode", None, "{}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(out, serde_json::json!({ "payloads": [] }));
}

#[tokio::test]
async fn malformed_bodies_are_400_with_a_message() {
    let app = app();
    for (body, expected) in [
        ("{\"payloads\": [", "body is not JSON"),
        ("not json", "body is not JSON"),
        ("", "body is not JSON"),
        ("[1,2]", "must be a JSON object"),
        (r#"{"payloads":"x"}"#, "payloads: expected an array"),
        (
            r#"{"payloads":[{"data":"%%%"}]}"#,
            "payloads[0].data: invalid base64",
        ),
        (r#"{"payload":[]}"#, r#"unknown field "payload""#),
    ] {
        let (status, headers, json) = call(&app, post("/decode", None, body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        // Errors carry CORS headers too, so the UI can read them.
        assert_eq!(headers["access-control-allow-origin"], UI_ORIGIN);
        let message = json["error"].as_str().unwrap();
        assert!(message.starts_with("malformed request body: "), "{message}");
        assert!(message.contains(expected), "{body}: {message}");
    }
}

#[tokio::test]
async fn unknown_key_is_an_error_naming_the_key_id_and_the_server_keeps_serving() {
    let writer = converter("rotated-away-key", [9; 32]);
    let encrypted = writer
        .encode_payloads(vec![json_payload("\"secret-value\"")])
        .await
        .unwrap();
    let app = app();
    let (status, _, json) = call(&app, post("/decode", None, body_of(&encrypted))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = json["error"].as_str().unwrap();
    assert!(
        message.contains("unknown key id \"rotated-away-key\""),
        "{message}"
    );
    assert!(message.contains("known key ids: k1"), "{message}");
    assert_eq!(json["keyId"], "rotated-away-key");

    // Same key id, wrong key: also names the key id.
    let impostor = converter("k1", [2; 32]);
    let encrypted = impostor
        .encode_payloads(vec![json_payload("1")])
        .await
        .unwrap();
    let (status, _, json) = call(&app, post("/decode", None, body_of(&encrypted))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("key id \"k1\": authentication failed"),
        "{json}"
    );
    assert_eq!(json["keyId"], "k1");

    // Still serving.
    let (status, _, _) = call(&app, post("/encode", None, body_of(&[json_payload("1")]))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn cors_preflight_answers_the_ui_origins_only() {
    let app = app();
    for origin in DEFAULT_CORS_ORIGINS {
        let request = Request::builder()
            .method(Method::OPTIONS)
            .uri("/decode?preserveStorageRefs=true")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-namespace")
            .body(Body::empty())
            .unwrap();
        let (status, headers, _) = call(&app, request).await;
        assert!(status.is_success(), "{status}");
        assert_eq!(headers["access-control-allow-origin"], origin);
        assert_eq!(headers["access-control-allow-credentials"], "true");
        let methods = headers["access-control-allow-methods"].to_str().unwrap();
        assert!(
            methods.contains("POST") && methods.contains("OPTIONS"),
            "{methods}"
        );
        let allowed = headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        for h in ["content-type", "x-namespace", "authorization"] {
            assert!(allowed.contains(h), "{allowed}");
        }
        assert!(headers.contains_key("access-control-max-age"));
    }

    // Another origin gets no CORS grant (the browser then blocks the call).
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri("/decode")
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = call(&app, request).await;
    assert!(!headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn configured_and_any_origins() {
    let options = CodecServerOptions::new()
        .cors_origins(["HTTPS://Temporal.Example.com/"])
        .unwrap();
    assert_eq!(
        options.allowed_origins().unwrap(),
        ["https://temporal.example.com"]
    );
    let app = router(converter("k1", [1; 32]), options);
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/prod/decode")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .unwrap()
    };
    let (_, headers, _) = call(&app, preflight("https://temporal.example.com")).await;
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://temporal.example.com"
    );
    let (_, headers, _) = call(&app, preflight(UI_ORIGIN)).await;
    assert!(!headers.contains_key("access-control-allow-origin"));

    let any = router(
        converter("k1", [1; 32]),
        CodecServerOptions::new().any_cors_origin(),
    );
    let (_, headers, _) = call(&any, preflight("http://anything:1234")).await;
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(!headers.contains_key("access-control-allow-credentials"));

    for bad in ["localhost:8233", "ftp://x", "http://x/path", "http://", ""] {
        let e = CodecServerOptions::new().cors_origins([bad]).unwrap_err();
        assert!(e.to_string().contains("invalid CORS origin"), "{e}");
    }
}

#[tokio::test]
async fn namespaces_pick_their_own_converter() {
    let app = router(
        converter("default-key", [1; 32]),
        CodecServerOptions::new().namespace("prod", converter("prod-key", [3; 32])),
    );
    let body = body_of(&[json_payload("1")]);
    let (_, _, prod) = call(&app, post("/encode", Some("prod"), body.clone())).await;
    assert_eq!(metadata_text(&prod, 0, "encryption-key-id"), "prod-key");
    for ns in [None, Some("default"), Some("unconfigured")] {
        let (_, _, other) = call(&app, post("/encode", ns, body.clone())).await;
        assert_eq!(metadata_text(&other, 0, "encryption-key-id"), "default-key");
    }
    // A prod payload decodes in prod, and not with the default converter.
    let (status, _, _) = call(&app, post("/decode", Some("prod"), prod.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, json) = call(&app, post("/decode", Some("default"), prod.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["keyId"], "prod-key");
}

#[tokio::test]
async fn wrong_paths_methods_and_sizes() {
    let app = app();
    let (status, _, json) = call(&app, post("/decoder", None, "{}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(json["error"].as_str().unwrap().contains("/decoder"));

    let get = Request::get("/decode").body(Body::empty()).unwrap();
    let (status, headers, _) = call(&app, get).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[ALLOW], "POST, OPTIONS");

    let small = router(
        converter("k1", [1; 32]),
        CodecServerOptions::new().max_body_bytes(64),
    );
    let body = body_of(&[json_payload(&"1".repeat(100))]);
    let (status, _, json) = call(&small, post("/encode", None, body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json["error"].as_str().unwrap().contains("64-byte limit"));
}
