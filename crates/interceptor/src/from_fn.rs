use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

/// The rest of a service stack, handed to a hook written with [`from_fn`]. Cheap to clone.
pub struct Next<Req, Res, Err> {
    inner: BoxCloneSyncService<Req, Res, Err>,
}

impl<Req, Res, Err> Clone for Next<Req, Res, Err> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<Req, Res, Err> fmt::Debug for Next<Req, Res, Err> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next").finish_non_exhaustive()
    }
}

impl<Req: 'static, Res: 'static, Err: 'static> Next<Req, Res, Err> {
    /// Wraps a service as the continuation of a hook. A service that already is a
    /// `BoxCloneSyncService` of the same types is used as it is, not boxed again (every
    /// interception point's stack is made of those, so a hook costs one box less per call).
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Req, Response = Res, Error = Err> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        Res: 'static,
        Err: 'static,
    {
        let mut slot = Some(service);
        let any: &mut dyn std::any::Any = &mut slot;
        let inner = match any.downcast_mut::<Option<BoxCloneSyncService<Req, Res, Err>>>() {
            Some(boxed) => boxed.take(),
            None => None,
        };
        Self {
            inner: inner.unwrap_or_else(|| {
                BoxCloneSyncService::new(slot.take().expect("the service is still in its slot"))
            }),
        }
    }

    /// Runs the rest of the stack with `request` (waits for readiness, then calls).
    pub async fn run(self, request: Req) -> Result<Res, Err> {
        self.inner.oneshot(request).await
    }
}

/// Turns `f(request, next)` into a [`Layer`]. See [`from_fn`].
#[derive(Clone)]
pub struct FromFnLayer<F> {
    f: F,
}

impl<F> fmt::Debug for FromFnLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFnLayer").finish_non_exhaustive()
    }
}

/// Middleware from an async function of the request and the rest of the stack.
///
/// ```
/// use std::convert::Infallible;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use trellis_interceptor::{Next, from_fn};
///
/// # tokio_test();
/// # fn tokio_test() { tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let svc = ServiceBuilder::new()
///     .layer(from_fn(|req: u32, next: Next<u32, u32, Infallible>| async move {
///         let res = next.run(req + 1).await?; // before and after the inner service
///         Ok(res * 10)
///     }))
///     .service(service_fn(|req: u32| async move { Ok::<_, Infallible>(req) }));
/// assert_eq!(svc.oneshot(1).await.unwrap(), 20);
/// # }) }
/// ```
pub fn from_fn<F>(f: F) -> FromFnLayer<F> {
    FromFnLayer { f }
}

impl<F: Clone, S> Layer<S> for FromFnLayer<F> {
    type Service = FromFn<F, S>;

    fn layer(&self, inner: S) -> Self::Service {
        FromFn {
            f: self.f.clone(),
            inner: Arc::new(inner),
        }
    }
}

/// The service made by [`FromFnLayer`].
///
/// The inner service is shared behind an `Arc`: cloning a `FromFn` (which every call does, to
/// hand the rest of the stack to the hook) copies a pointer, and each call clones only the
/// service directly below, so a stack of `n` hooks costs O(n) per call, not O(n²).
pub struct FromFn<F, S> {
    f: F,
    inner: Arc<S>,
}

impl<F: Clone, S> Clone for FromFn<F, S> {
    fn clone(&self) -> Self {
        Self {
            f: self.f.clone(),
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<F, S> fmt::Debug for FromFn<F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFn").finish_non_exhaustive()
    }
}

impl<F, Fut, S, Req> Service<Req> for FromFn<F, S>
where
    F: Fn(Req, Next<Req, S::Response, S::Error>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<S::Response, S::Error>> + Send + 'static,
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    Req: 'static,
    S::Response: 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner service is readied by `Next::run` (oneshot), so a hook that never calls
        // `next` holds no capacity.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let next = Next::new(S::clone(&self.inner));
        (self.f)(req, next)
    }
}
