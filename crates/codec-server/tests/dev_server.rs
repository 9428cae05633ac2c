//! The codec server against real data: a payload from a dev server's history, decoded as the
//! Web UI asks for it; the binary over real HTTP; and the Temporal CLI using the binary as its
//! `--codec-endpoint`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use trellis_client::{ClientConfig, WorkflowOptions};
use trellis_codec_server::wire::{decode_base64, encode_base64};
use trellis_codec_server::{CodecServerOptions, router};
use trellis_converter::{AesGcmCodec, DataConverter, ZstdCodec};
use trellis_core_proto::api::history::v1::history_event::Attributes;
use trellis_testing::{client_with, unique};

const KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

fn encrypting(key_id: &str) -> DataConverter {
    DataConverter::default()
        .with_codec(ZstdCodec::new())
        .with_codec(AesGcmCodec::new(key_id, KEY))
}

fn metadata_json(metadata: &std::collections::HashMap<String, Vec<u8>>) -> String {
    metadata
        .iter()
        .map(|(k, v)| format!("\"{k}\":\"{}\"", encode_base64(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Starts a workflow through an encrypting client and returns the raw (encrypted) input payload
/// of its first history event, as the UI reads it, after terminating the workflow.
async fn encrypted_input_from_history(
    key_id: &str,
    input: &str,
) -> (String, trellis_core_proto::Payload) {
    let client = client_with(ClientConfig::new("unused").data_converter(encrypting(key_id))).await;
    let id = unique("codec-server");
    let handle = client
        .start_workflow("AnyType", input, WorkflowOptions::new(&id, unique("tq")))
        .await
        .unwrap();
    let history = handle.fetch_history().await.unwrap();
    handle.terminate("codec server test done").await.unwrap();
    let first = history.events.first().expect("a started event");
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) = &first.attributes
    else {
        panic!("first event is not WorkflowExecutionStarted: {first:?}")
    };
    let payload = started.input.as_ref().expect("an input").payloads[0].clone();
    (id, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_a_history_payload_as_the_web_ui_asks() {
    let (_, payload) = encrypted_input_from_history("ui-key", "secret-value").await;
    assert_eq!(payload.metadata["encoding"], b"binary/encrypted");
    assert_eq!(payload.metadata["encryption-key-id"], b"ui-key");
    assert!(!payload.data.windows(6).any(|w| w == b"secret"));

    // The request exactly as the UI sends it (see the crate docs): proto3 JSON with standard
    // base64, one payload, X-Namespace, the query string, from the UI's origin.
    let body = format!(
        r#"{{"payloads":[{{"metadata":{{{}}},"data":"{}"}}]}}"#,
        metadata_json(&payload.metadata),
        encode_base64(&payload.data)
    );
    // The server has its own converter built from the same key: nothing is shared with the
    // client but the key.
    let app = router(encrypting("ui-key"), CodecServerOptions::default());
    let request = Request::post("/decode?preserveStorageRefs=true")
        .header("content-type", "application/json")
        .header("x-namespace", "default")
        .header("origin", "http://127.0.0.1:8233")
        .body(Body::from(body.clone()))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "http://127.0.0.1:8233"
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let decoded = &json["payloads"][0];
    let b64 = |v: &serde_json::Value| decode_base64(v.as_str().unwrap()).unwrap();
    assert_eq!(b64(&decoded["metadata"]["encoding"]), b"json/plain");
    assert_eq!(b64(&decoded["data"]), br#""secret-value""#);
    assert_eq!(json["payloads"].as_array().unwrap().len(), 1);

    // A server without that key says which key id it lacks.
    let app = router(encrypting("other-key"), CodecServerOptions::default());
    let request = Request::post("/decode").body(Body::from(body)).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["keyId"], "ui-key");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("unknown key id \"ui-key\""),
        "{json}"
    );
}

/// The binary, running on a free port; killed on drop.
struct Server {
    child: Child,
    addr: String,
    dir: std::path::PathBuf,
}

impl Server {
    fn start(key_id: &str, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(unique("trellis-codec-server"));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("key.bin");
        std::fs::write(&key_file, KEY).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_trellis-codec-server"))
            .args(["--listen", "127.0.0.1:0", "--encryption-key-id", key_id])
            .arg("--encryption-key-file")
            .arg(&key_file)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("trellis-codec-server listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, addr, dir }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One HTTP/1.1 request over a fresh connection; returns the status, the header block and the
/// body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // Chunked responses: this server sends Content-Length for its bodies, so none expected.
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn the_binary_serves_over_http() {
    let server = Server::start(
        "bin-key",
        &["--zstd", "--cors-origin", "http://ui.test:8080"],
    );
    let json = [
        ("content-type", "application/json"),
        ("x-namespace", "default"),
    ];
    let plain = format!(
        r#"{{"payloads":[{{"metadata":{{"encoding":"{}"}},"data":"{}"}}]}}"#,
        encode_base64(b"json/plain"),
        encode_base64(format!("\"{}\"", "big secret ".repeat(100)).as_bytes())
    );
    let (status, _, encoded) = http(&server.addr, "POST", "/encode", &json, &plain);
    assert_eq!(status, 200, "{encoded}");
    let value: serde_json::Value = serde_json::from_str(&encoded).unwrap();
    let key_id = decode_base64(
        value["payloads"][0]["metadata"]["encryption-key-id"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(key_id, b"bin-key");

    let (status, _, decoded) = http(
        &server.addr,
        "POST",
        "/some/prefix/decode?preserveStorageRefs=true",
        &json,
        &encoded,
    );
    assert_eq!(status, 200, "{decoded}");
    assert_eq!(decoded, plain);

    let (status, head, _) = http(
        &server.addr,
        "OPTIONS",
        "/decode",
        &[
            ("origin", "http://ui.test:8080"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type,x-namespace"),
        ],
        "",
    );
    assert_eq!(status, 200);
    assert!(
        head.contains("access-control-allow-origin: http://ui.test:8080"),
        "{head}"
    );
    assert!(head.contains("x-namespace"), "{head}");

    let (status, _, error) = http(&server.addr, "POST", "/decode", &json, "{oops");
    assert_eq!(status, 400);
    assert!(error.contains("malformed request body"), "{error}");
}

#[test]
fn the_binary_refuses_a_bad_key_file() {
    let dir = std::env::temp_dir().join(unique("trellis-codec-bad-key"));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("key.txt");
    std::fs::write(&key_file, "not 32 bytes\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-codec-server"))
        .args(["--listen", "127.0.0.1:0", "--encryption-key-id", "k"])
        .arg("--encryption-key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds 13 bytes"), "{stderr}");
}

/// The Temporal CLI, given the binary as `--codec-endpoint`, shows the decrypted input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_temporal_cli_decodes_through_the_binary() {
    let (id, _) = encrypted_input_from_history("cli-key", "cli-secret-value").await;
    let server = Server::start("cli-key", &["--zstd"]);
    let cli = trellis_testing::temporal_cli().unwrap();
    let endpoint = format!("http://{}", server.addr);
    let run = |codec: bool| {
        let mut cmd = Command::new(&cli);
        cmd.args(["workflow", "show", "--output", "json", "--workflow-id", &id])
            .args(["--address", trellis_testing::server_address()]);
        if codec {
            cmd.args(["--codec-endpoint", &endpoint]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let without = run(false);
    assert!(
        without.contains(&encode_base64(b"binary/encrypted")),
        "{without}"
    );
    assert!(!without.contains(&encode_base64(br#""cli-secret-value""#)));
    // The CLI prints payloads as proto3 JSON, so the decrypted input shows as base64.
    let with = run(true);
    assert!(
        with.contains(&format!(
            r#""data": "{}""#,
            encode_base64(br#""cli-secret-value""#)
        )),
        "{with}"
    );
    assert!(with.contains(&encode_base64(b"json/plain")), "{with}");
    assert!(
        !with.contains(&encode_base64(b"binary/encrypted")),
        "{with}"
    );
}
