//! Every helper layer against the strict mock: it panics when called before `poll_ready`, its
//! clones start unready, and its first readiness check answers `Pending`.

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

use crate::mock::Strict;
use crate::{LocalBoxService, LocalNext, Next, from_fn, local_from_fn};

fn doubler() -> Strict<impl Service<u32, Response = u32, Error = Infallible, Future: Send> + Clone>
{
    Strict::new(service_fn(
        |x: u32| async move { Ok::<_, Infallible>(x * 2) },
    ))
    .pending_first()
}

#[test]
#[should_panic(expected = "called before poll_ready")]
fn the_mock_panics_when_called_unready() {
    let mut svc = doubler();
    drop(svc.call(1));
}

#[test]
fn from_fn_stacks_run_in_order_over_an_unready_inner() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let hook = |name: &'static str| {
        let log = log.clone();
        from_fn(move |x: u32, next: Next<u32, u32, Infallible>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(format!("{name} before {x}"));
                let r = next.run(x + 1).await?;
                log.lock().unwrap().push(format!("{name} after {r}"));
                Ok(r)
            }
        })
    };
    let inner = doubler();
    let calls = inner.calls();
    let svc = ServiceBuilder::new()
        .layer(hook("outer"))
        .layer(hook("inner"))
        .service(inner);
    let out = futures::executor::block_on(svc.clone().oneshot(1)).unwrap();
    assert_eq!(out, 6);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "outer before 1",
            "inner before 2",
            "inner after 6",
            "outer after 6"
        ]
    );
    // A second call through a clone readies its own inner.
    assert_eq!(futures::executor::block_on(svc.oneshot(10)).unwrap(), 24);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn from_fn_can_short_circuit_and_retry() {
    let inner = doubler();
    let calls = inner.calls();
    // Short-circuit: never calls the inner service (which holds no readiness either).
    let svc = from_fn(|x: u32, _next: Next<u32, u32, Infallible>| async move { Ok(x) })
        .layer(inner.clone());
    assert_eq!(futures::executor::block_on(svc.oneshot(7)).unwrap(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Retry: calls a clone of `next` twice.
    let svc = from_fn(|x: u32, next: Next<u32, u32, Infallible>| async move {
        let first = next.clone().run(x).await?;
        next.run(first).await
    })
    .layer(inner);
    assert_eq!(futures::executor::block_on(svc.oneshot(3)).unwrap(), 12);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn tower_layers_fit_over_from_fn_and_the_mock() {
    let svc = ServiceBuilder::new()
        .timeout(std::time::Duration::from_secs(5))
        .concurrency_limit(1)
        .layer(from_fn(|x: u32, next: Next<u32, u32, Infallible>| {
            next.run(x)
        }))
        .service(doubler());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(svc.oneshot(21)).unwrap(), 42);
}

#[test]
fn local_from_fn_stacks_run_in_order_over_an_unready_inner() {
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let inner_log = log.clone();
    let inner = Strict::new(service_fn(move |x: u32| {
        let log = inner_log.clone();
        async move {
            log.borrow_mut().push(format!("base {x}"));
            Ok::<_, ()>(x * 2)
        }
    }))
    .pending_first();
    let calls = inner.calls();
    let mut svc = LocalBoxService::new(inner);
    for name in ["inner", "outer"] {
        let log = log.clone();
        svc = local_from_fn(move |x: u32, next: LocalNext<u32, u32, ()>| {
            let log = log.clone();
            async move {
                log.borrow_mut().push(format!("{name} before"));
                let r = next.run(x + 1).await;
                log.borrow_mut().push(format!("{name} after"));
                r
            }
        })
        .layer(svc);
    }
    assert_eq!(
        futures::executor::block_on(svc.clone().oneshot(1)).unwrap(),
        6
    );
    assert_eq!(futures::executor::block_on(svc.oneshot(1)).unwrap(), 6);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        log.borrow()[..5],
        [
            "outer before",
            "inner before",
            "base 3",
            "inner after",
            "outer after"
        ]
    );
}
