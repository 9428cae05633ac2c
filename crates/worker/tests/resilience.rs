//! A server that goes away and comes back: client calls made while it is down fail with an
//! error naming the cause, the worker keeps running through the outage, and work resumes on the
//! same worker once the server is back (its state kept in a database file).

use std::time::{Duration, Instant};

use trellis_client::{Client, ClientConfig, ClientError, Code, WorkflowOptions};
use trellis_testing::{DevServer, free_port, unique};
use trellis_worker::{
    ActivityContext, ActivityError, Worker, WorkerConfig, WorkflowContext, WorkflowError,
};

async fn shout(_ctx: ActivityContext, s: String) -> Result<String, ActivityError> {
    Ok(s.to_uppercase())
}

/// Waits for a "go" signal, then runs an activity.
async fn after_go(ctx: WorkflowContext, _: ()) -> Result<String, WorkflowError> {
    let mut go = ctx.signal_channel::<String>("go");
    let word = go.recv().await.unwrap_or_default();
    let out: String = ctx
        .activity("shout")
        .args((word,))
        .start_to_close_timeout(Duration::from_secs(30))
        .run()
        .await?;
    Ok(out)
}

/// Connects, retrying while the server starts.
async fn connect(address: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match Client::connect(ClientConfig::new(address)).await {
            Ok(c) => {
                // The namespace may not be registered yet.
                match c.workflow_handle("probe", None).describe().await {
                    Err(e) if e.to_string().contains("amespace") => {}
                    _ => return c,
                }
            }
            Err(e) if Instant::now() > deadline => panic!("no server at {address}: {e}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_survives_the_server_going_away_and_resumes_when_it_is_back() {
    let dir = std::env::temp_dir().join(unique("trellis-resilience"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("temporal.db");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let server = DevServer::start_persistent(port, &db).expect("the dev server starts");
    let client = connect(&address).await;
    let tq = unique("resilience");
    let worker = Worker::new(
        &client,
        WorkerConfig::new(&tq)
            .workflow("AfterGo", after_go)
            .activity("shout", shout),
    )
    .await
    .expect("the worker starts");
    let shutdown = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    let handle = client
        .start_workflow(
            "AfterGo",
            &(),
            WorkflowOptions::new(unique("after-go"), &tq),
        )
        .await
        .unwrap();

    // The server goes away.
    server.stop();
    let err = tokio::time::timeout(Duration::from_secs(120), handle.signal("go", &"hello"))
        .await
        .expect("a call to a server that is gone returns")
        .expect_err("a signal to a server that is gone fails");
    match &err {
        ClientError::Rpc { operation, status } => {
            assert_eq!(*operation, "signal", "{err}");
            assert!(err.to_string().contains("Connection refused"), "{err}");
            assert_eq!(status.code(), Code::Unavailable, "{err}");
        }
        other => panic!("expected an RPC error naming the unavailable server, got {other:?}"),
    }
    // Outage long enough for several failed polls: the worker is still running.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !run.is_finished(),
        "the worker stopped while the server was away: {:?}",
        run.await
    );

    // The server comes back with its state; the same worker finishes the workflow.
    let _server = DevServer::start_persistent(port, &db).expect("the dev server starts again");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match handle.signal("go", &"hello").await {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => panic!("the server did not come back: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let out: String = tokio::time::timeout(Duration::from_secs(90), handle.result())
        .await
        .expect("the workflow finishes after the server is back")
        .unwrap();
    assert_eq!(out, "HELLO");
    shutdown.shutdown();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the worker stops")
        .unwrap()
        .expect("the worker ran without error through the outage");
    let _ = std::fs::remove_dir_all(&dir);
}
