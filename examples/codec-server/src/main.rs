//! Encrypted workflows you can still read in the Temporal Web UI.
//!
//! Starts, on loopback: a dev server **with its Web UI**, pointed at a codec server; the codec
//! server (`trellis-codec-server`'s router, holding the key); a worker whose client encrypts
//! every payload with AES-256-GCM; and one workflow. The server stores only ciphertext, the UI
//! shows plaintext through the codec server. Prints the URLs, then waits for Ctrl-C.
//!
//! `cargo run -p trellis-example-codec-server` (add `-- --once` to check the round trip and
//! exit instead of waiting).

use std::process::{Command, Stdio};
use std::time::Duration;

use trellis_client::converter::AesGcmCodec;
use trellis_client::{Client, ClientConfig, DataConverter, WorkflowOptions};
use trellis_codec_server::{CodecServerOptions, router};
use trellis_core_proto::api::history::v1::history_event::Attributes;
use trellis_worker::{Worker, WorkerConfig, WorkflowContext, WorkflowError};

async fn greet(_ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
    Ok(format!("Hello, {name}! (this text is encrypted at rest)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let key_id = "demo-key";
    let key: [u8; 32] = *b"trellis-demo-key-32-bytes-long!!";
    let converter = DataConverter::default().with_codec(AesGcmCodec::new(key_id, key));

    // 1. The codec server, on a free port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let codec_url = format!("http://{}", listener.local_addr()?);
    let ui_port = trellis_testing::free_port();
    let options = CodecServerOptions::new().cors_origins([
        format!("http://localhost:{ui_port}"),
        format!("http://127.0.0.1:{ui_port}"),
    ])?;
    let app = router(converter.clone(), options);
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("codec server: {codec_url}");

    // 2. The dev server with its UI, decoding through the codec server.
    let cli = trellis_testing::temporal_cli()?;
    let port = trellis_testing::free_port();
    let mut server = Command::new(cli)
        .args([
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--log-level",
            "error",
        ])
        .args([
            "--port",
            &port.to_string(),
            "--ui-port",
            &ui_port.to_string(),
        ])
        .args(["--ui-codec-endpoint", &codec_url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let address = format!("127.0.0.1:{port}");
    let result = run(&address, ui_port, converter, &codec_url, once).await;
    let _ = server.kill();
    let _ = server.wait();
    result
}

async fn run(
    address: &str,
    ui_port: u16,
    converter: DataConverter,
    codec_url: &str,
    once: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = None;
    for _ in 0..100 {
        match Client::connect(ClientConfig::new(address).data_converter(converter.clone())).await {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let client = client.ok_or("the dev server did not start")?;

    // 3. An encrypting worker and one workflow.
    let worker = loop {
        match Worker::new(
            &client,
            WorkerConfig::new("codec-demo").workflow("Greet", greet),
        )
        .await
        {
            Ok(w) => break w,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let handle = client
        .start_workflow(
            "Greet",
            "secret agent",
            WorkflowOptions::new("codec-demo-greet", "codec-demo"),
        )
        .await?;
    let result: String = handle.result().await?;
    println!("workflow result (decrypted by the client): {result:?}");

    let history = handle.fetch_history().await?;
    let stored = history
        .events
        .iter()
        .find_map(|e| match &e.attributes {
            Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => {
                a.input.as_ref().and_then(|i| i.payloads.first()).cloned()
            }
            _ => None,
        })
        .ok_or("no input in the history")?;
    println!(
        "the server stores the input as {:?} ({} bytes of ciphertext)",
        String::from_utf8_lossy(
            stored
                .metadata
                .get("encoding")
                .map(Vec::as_slice)
                .unwrap_or_default()
        ),
        stored.data.len()
    );
    println!("Web UI: http://127.0.0.1:{ui_port}/namespaces/default/workflows/codec-demo-greet");
    println!("(the UI decodes payloads through {codec_url}/decode)");

    if !once {
        println!("Ctrl-C stops everything.");
        tokio::signal::ctrl_c().await?;
    }
    stop.shutdown();
    running.await??;
    Ok(())
}
