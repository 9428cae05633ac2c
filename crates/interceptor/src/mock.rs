//! A strict mock for testing layers (feature `test-util`): a service wrapper that panics when
//! it is called before `poll_ready` said it is ready, whose clones start unready, and that can
//! answer `Pending` on its first readiness check, as `tower-test`'s mock does. A layer that
//! passes its tests with it forwards readiness correctly.
//!
//! ```
//! use std::convert::Infallible;
//! use tower::{Layer, ServiceExt, service_fn};
//! use trellis_interceptor::mock::Strict;
//! use trellis_interceptor::{Next, from_fn};
//!
//! # futures::executor::block_on(async {
//! let inner = Strict::new(service_fn(|x: u32| async move { Ok::<_, Infallible>(x * 2) })).pending_first();
//! let svc = from_fn(|x: u32, next: Next<u32, u32, Infallible>| next.run(x + 1)).layer(inner);
//! assert_eq!(svc.oneshot(1).await.unwrap(), 4);
//! # });
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tower::Service;

/// Wraps a service; panics when called unready. See the [module docs](self).
pub struct Strict<S> {
    inner: S,
    ready: bool,
    pending_first: bool,
    calls: Arc<AtomicUsize>,
}

impl<S> Strict<S> {
    /// Wraps `inner`; the wrapper starts unready.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            ready: false,
            pending_first: false,
            calls: Arc::default(),
        }
    }

    /// Answers `Pending` (and wakes the task at once) on the first readiness check of every
    /// clone, so a layer that assumes readiness is caught.
    pub fn pending_first(mut self) -> Self {
        self.pending_first = true;
        self
    }

    /// A counter of calls, shared by every clone.
    pub fn calls(&self) -> Arc<AtomicUsize> {
        self.calls.clone()
    }
}

impl<S: Clone> Clone for Strict<S> {
    fn clone(&self) -> Self {
        // A clone has taken no readiness: it starts unready (as tower-test's mock).
        Self {
            inner: self.inner.clone(),
            ready: false,
            pending_first: self.pending_first,
            calls: self.calls.clone(),
        }
    }
}

impl<S> fmt::Debug for Strict<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Strict")
            .field("ready", &self.ready)
            .field("calls", &self.calls.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl<S: Service<Req>, Req> Service<Req> for Strict<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if self.pending_first && !self.ready {
            self.pending_first = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let poll = self.inner.poll_ready(cx);
        if let Poll::Ready(Ok(())) = poll {
            self.ready = true;
        }
        poll
    }

    fn call(&mut self, req: Req) -> S::Future {
        assert!(
            self.ready,
            "Strict mock: called before poll_ready returned Ready"
        );
        self.ready = false;
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.call(req)
    }
}
