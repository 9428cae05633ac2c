//! Trellis on both ends of Nexus, through a real endpoint on the dev server: a Trellis workflow
//! calls a synchronous operation and a workflow-run operation served by another Trellis worker
//! and gets typed results; cancelling the workflow-run operation cancels its handler workflow;
//! a handler error arrives as a typed failure.

mod common;
use common::{spawn_worker, stop};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use trellis_client::{Client, WorkflowExecutionStatus, WorkflowOptions, nexus};
use trellis_testing::{client, unique};
use trellis_worker::nexus::{
    HandlerErrorType, NexusError, NexusServiceHandler, Operation, Service, WorkflowRunToken,
};
use trellis_worker::{
    NexusOperationFailedKind, WorkerConfig, WorkflowContext, WorkflowError, WorkflowRef,
};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Item {
    sku: String,
    quantity: u32,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Price {
    cents: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Shipment {
    sku: String,
    tracking: String,
}

/// The contract both workers share.
struct Shop;
impl Service for Shop {
    const NAME: &'static str = "Shop";
}
impl Shop {
    const QUOTE: Operation<Item, Price> = Operation::new("quote");
    const SHIP: Operation<Item, Shipment> = Operation::new("ship");
}

const SHIP_WORKFLOW: WorkflowRef<(Item,), Shipment> = WorkflowRef::new("Ship");

/// The handler workflow behind `ship`: waits for the "delivered" signal (or its cancellation).
async fn ship(ctx: WorkflowContext, item: Item) -> Result<Shipment, WorkflowError> {
    let mut delivered = ctx.signal_channel::<String>("delivered");
    let cancelled = ctx.cancelled();
    let next = delivered.recv();
    futures::pin_mut!(next, cancelled);
    match futures::future::select(next, cancelled).await {
        futures::future::Either::Left((tracking, _)) => Ok(Shipment {
            sku: item.sku,
            tracking: tracking?,
        }),
        futures::future::Either::Right(_) => Err(WorkflowError::cancelled()),
    }
}

fn shop_service() -> NexusServiceHandler {
    NexusServiceHandler::for_service::<Shop>()
        .sync(Shop::QUOTE, |_ctx, item: Item| async move {
            if item.quantity == 0 {
                return Err(NexusError::bad_request("nothing to quote: quantity is 0"));
            }
            Ok(Price {
                cents: 250 * u64::from(item.quantity),
            })
        })
        .workflow_run(Shop::SHIP, |ctx, item: Item| async move {
            let options = WorkflowOptions {
                id: format!("ship-{}", item.sku),
                // A shipment of 99 must be delivered within 2 s (to test a timed-out run).
                execution_timeout: (item.quantity == 99).then_some(Duration::from_secs(2)),
                ..Default::default()
            };
            ctx.start_workflow(SHIP_WORKFLOW, (item,), options).await
        })
}

#[derive(Debug, Serialize, Deserialize)]
struct BuyInput {
    endpoint: String,
    item: Item,
    /// "deliver": wait for the shipment; "cancel": cancel it once started; "report": wait,
    /// and report how the operation failed.
    mode: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct BuyOutcome {
    price: Option<Price>,
    quote_error: Option<(String, bool, String)>,
    token: Option<String>,
    shipment: Option<Shipment>,
    ship_cancelled: bool,
    /// With "report": the failure's kind, timeout type and chain of messages.
    ship_error: Option<String>,
}

/// The caller: quotes, then ships (and maybe cancels the shipment).
async fn buy(ctx: WorkflowContext, input: BuyInput) -> Result<BuyOutcome, WorkflowError> {
    let shop = ctx.nexus_service_client::<Shop>(&input.endpoint);
    let mut out = BuyOutcome {
        price: None,
        quote_error: None,
        token: None,
        shipment: None,
        ship_cancelled: false,
        ship_error: None,
    };
    match shop
        .operation(Shop::QUOTE, &input.item)
        .schedule_to_close_timeout(Duration::from_secs(30))
        .run()
        .await
    {
        Ok(price) => out.price = Some(price),
        Err(e) => {
            let (error_type, retryable) = e.handler_error().expect("a handler error");
            out.quote_error = Some((error_type.to_string(), retryable, e.cause_message()));
            return Ok(out);
        }
    }
    let handle = shop
        .operation(Shop::SHIP, &input.item)
        .schedule_to_close_timeout(Duration::from_secs(60))
        .start()
        .await?;
    out.token = handle.operation_token().map(str::to_owned);
    if input.mode == "cancel" {
        handle.cancel();
        match handle.await {
            Err(e) if matches!(e.kind, NexusOperationFailedKind::Cancelled) => {
                out.ship_cancelled = true
            }
            other => panic!("expected a cancelled operation, got {other:?}"),
        }
    } else if input.mode == "report" {
        match handle.await {
            Ok(s) => out.shipment = Some(s),
            Err(e) => {
                let mut chain = Vec::new();
                let mut cur = Some(&e.failure);
                while let Some(f) = cur {
                    chain.push(f.message.clone());
                    cur = f.cause.as_deref();
                }
                out.ship_error = Some(format!(
                    "{:?} {:?}: {}",
                    e.kind,
                    e.timeout_type(),
                    chain.join(" <- ")
                ));
            }
        }
    } else {
        out.shipment = Some(handle.await?);
    }
    Ok(out)
}

struct Env {
    client: Client,
    endpoint: nexus::Endpoint,
    endpoint_name: String,
    caller_tq: String,
    workers: Vec<trellis_worker::RunningWorker>,
}

async fn env() -> Env {
    env_with(client().await).await
}

async fn env_with(client: Client) -> Env {
    let handler_tq = unique("shop");
    let caller_tq = unique("buyer");
    let endpoint_name = unique("shop-ep");
    let endpoint = nexus::create_endpoint(&client, &endpoint_name, &handler_tq)
        .await
        .unwrap();
    let handler = spawn_worker(
        &client,
        WorkerConfig::new(&handler_tq)
            .workflow(SHIP_WORKFLOW.name(), ship)
            .nexus_service(shop_service()),
    )
    .await;
    let mut caller_config = WorkerConfig::new(&caller_tq).workflow("Buy", buy);
    // Every workflow task replays from the start: the caller's Nexus commands must replay.
    caller_config.max_cached_workflows = 0;
    let caller = spawn_worker(&client, caller_config).await;
    Env {
        client,
        endpoint,
        endpoint_name,
        caller_tq,
        workers: vec![handler, caller],
    }
}

impl Env {
    async fn buy(&self, item: &Item, mode: &str) -> trellis_client::WorkflowHandle {
        self.client
            .start_workflow(
                "Buy",
                &BuyInput {
                    endpoint: self.endpoint_name.clone(),
                    item: item.clone(),
                    mode: mode.into(),
                },
                WorkflowOptions::new(unique("buy"), &self.caller_tq),
            )
            .await
            .unwrap()
    }

    async fn close(self) {
        for w in self.workers {
            stop(w).await;
        }
        nexus::delete_endpoint(&self.client, &self.endpoint)
            .await
            .unwrap();
    }
}

/// The caller's outcome (within a minute).
async fn outcome(buy: &trellis_client::WorkflowHandle) -> BuyOutcome {
    tokio::time::timeout(Duration::from_secs(60), buy.result())
        .await
        .expect("the caller finishes")
        .unwrap()
}

/// Waits until the handler workflow exists (the operation started it).
async fn wait_started(client: &Client, id: &str) {
    for _ in 0..200 {
        if client.workflow_handle(id, None).describe().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the handler workflow {id} never started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trellis_workflow_gets_typed_results_from_sync_and_workflow_run_operations() {
    let env = env().await;
    let item = Item {
        sku: unique("lamp"),
        quantity: 3,
    };
    let buy = env.buy(&item, "deliver").await;
    let ship_id = format!("ship-{}", item.sku);
    wait_started(&env.client, &ship_id).await;
    env.client
        .workflow_handle(&ship_id, None)
        .signal("delivered", &"TRK-1")
        .await
        .unwrap();
    let out = outcome(&buy).await;
    assert_eq!(out.price, Some(Price { cents: 750 }));
    assert_eq!(
        out.shipment,
        Some(Shipment {
            sku: item.sku.clone(),
            tracking: "TRK-1".into()
        })
    );
    let token = WorkflowRunToken::decode(out.token.as_deref().expect("an async token")).unwrap();
    assert_eq!(token.workflow_id, ship_id);
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_workflow_run_operation_cancels_its_workflow() {
    let env = env().await;
    let item = Item {
        sku: unique("chair"),
        quantity: 1,
    };
    let out = outcome(&env.buy(&item, "cancel").await).await;
    assert!(out.ship_cancelled, "{out:?}");
    assert!(out.token.is_some(), "{out:?}");
    let described = env
        .client
        .workflow_handle(format!("ship-{}", item.sku), None)
        .describe()
        .await
        .unwrap();
    assert_eq!(described.status, WorkflowExecutionStatus::Canceled);
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_or_timed_out_handler_workflow_fails_the_callers_operation() {
    let env = env().await;
    // Terminated by an operator while the caller waits.
    let item = Item {
        sku: unique("desk"),
        quantity: 1,
    };
    let buy = env.buy(&item, "report").await;
    let ship_id = format!("ship-{}", item.sku);
    wait_started(&env.client, &ship_id).await;
    env.client
        .workflow_handle(&ship_id, None)
        .terminate("out of stock")
        .await
        .unwrap();
    let out = outcome(&buy).await;
    assert_eq!(
        out.ship_error.as_deref(),
        Some("Failed None: nexus operation completed unsuccessfully <- operation terminated"),
        "{out:?}"
    );
    // Timed out: the handler workflow's execution timeout passes.
    let item = Item {
        sku: unique("sofa"),
        quantity: 99,
    };
    let out2 = outcome(&env.buy(&item, "report").await).await;
    assert_eq!(
        out2.ship_error.as_deref(),
        Some(
            "TimedOut None: nexus operation completed unsuccessfully <- operation exceeded \
             internal timeout"
        ),
        "{out2:?}"
    );
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_error_reaches_the_trellis_caller_typed() {
    let env = env().await;
    let item = Item {
        sku: unique("nothing"),
        quantity: 0,
    };
    let out: BuyOutcome = env.buy(&item, "deliver").await.result().await.unwrap();
    assert_eq!(
        out.quote_error,
        Some((
            HandlerErrorType::BadRequest.to_string(),
            false,
            "nothing to quote: quantity is 0".into()
        ))
    );
    assert_eq!(out.shipment, None);
    env.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexus_payloads_are_encrypted_in_both_histories_and_decode_on_both_ends() {
    use trellis_client::converter::AesGcmCodec;
    use trellis_client::{ClientConfig, DataConverter};
    use trellis_core_proto::api::history::v1::history_event::Attributes;

    let converter = DataConverter::default().with_codec(AesGcmCodec::new("nexus-key", [9; 32]));
    let client =
        trellis_testing::client_with(ClientConfig::new("unused").data_converter(converter)).await;
    let env = env_with(client).await;
    let item = Item {
        sku: unique("secret-sku"),
        quantity: 2,
    };
    let buy = env.buy(&item, "deliver").await;
    let ship_id = format!("ship-{}", item.sku);
    wait_started(&env.client, &ship_id).await;
    let ship = env.client.workflow_handle(&ship_id, None);
    ship.signal("delivered", &"TRK-SECRET").await.unwrap();
    let out = outcome(&buy).await;
    assert_eq!(out.price, Some(Price { cents: 500 }));
    assert_eq!(out.shipment.unwrap().tracking, "TRK-SECRET");
    // Neither history holds the tracking number or the item's JSON in plaintext (the SKU is
    // in the handler workflow's id, which is not a payload).
    for handle in [&buy, &ship] {
        let bytes = prost::Message::encode_to_vec(&handle.fetch_history().await.unwrap());
        for plain in [&b"TRK-SECRET"[..], &b"\"quantity\""[..]] {
            assert!(
                !bytes.windows(plain.len()).any(|w| w == plain),
                "plaintext {:?} in the history of {}",
                String::from_utf8_lossy(plain),
                handle.id()
            );
        }
    }
    // The caller's two scheduled operations carry encrypted inputs.
    let history = buy.fetch_history().await.unwrap();
    let inputs: Vec<_> = history
        .events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::NexusOperationScheduledEventAttributes(a)) => a.input.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(inputs.len(), 2);
    for input in inputs {
        assert_eq!(input.metadata["encoding"], b"binary/encrypted");
        assert_eq!(input.metadata["encryption-key-id"], b"nexus-key");
    }
    env.close().await;
}
