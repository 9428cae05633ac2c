//! Services for the workflow side, where everything is `!Send`: a cloneable boxed service whose
//! futures need not be `Send`, its `Next`, and `local_from_fn`.

use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};

use futures::future::LocalBoxFuture;
use tower::{Layer, Service, ServiceExt};

trait CloneService<Req, Res, Err> {
    fn clone_box(&self) -> Box<dyn CloneService<Req, Res, Err>>;
    fn poll_ready_dyn(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Err>>;
    fn call_dyn(&mut self, req: Req) -> LocalBoxFuture<'static, Result<Res, Err>>;
}

impl<S, Req> CloneService<Req, S::Response, S::Error> for S
where
    S: Service<Req> + Clone + 'static,
    S::Future: 'static,
{
    fn clone_box(&self) -> Box<dyn CloneService<Req, S::Response, S::Error>> {
        Box::new(self.clone())
    }
    fn poll_ready_dyn(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.poll_ready(cx)
    }
    fn call_dyn(&mut self, req: Req) -> LocalBoxFuture<'static, Result<S::Response, S::Error>> {
        Box::pin(self.call(req))
    }
}

/// A cloneable, type-erased service whose futures need not be `Send`: the shape of every
/// workflow-side interception point (workflow code runs on one thread, deterministically).
pub struct LocalBoxService<Req, Res, Err> {
    inner: Box<dyn CloneService<Req, Res, Err>>,
}

impl<Req: 'static, Res: 'static, Err: 'static> LocalBoxService<Req, Res, Err> {
    /// Erases `service`'s type.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Req, Response = Res, Error = Err> + Clone + 'static,
        S::Future: 'static,
    {
        Self {
            inner: Box::new(service),
        }
    }

    /// A service from a closure returning a future.
    pub fn from_fn<F, Fut>(f: F) -> Self
    where
        F: Fn(Req) -> Fut + Clone + 'static,
        Fut: Future<Output = Result<Res, Err>> + 'static,
    {
        Self::new(tower::service_fn(f))
    }
}

impl<Req, Res, Err> Clone for LocalBoxService<Req, Res, Err> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone_box(),
        }
    }
}

impl<Req, Res, Err> fmt::Debug for LocalBoxService<Req, Res, Err> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBoxService").finish_non_exhaustive()
    }
}

impl<Req, Res, Err> Service<Req> for LocalBoxService<Req, Res, Err> {
    type Response = Res;
    type Error = Err;
    type Future = LocalBoxFuture<'static, Result<Res, Err>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Err>> {
        self.inner.poll_ready_dyn(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.inner.call_dyn(req)
    }
}

/// The rest of a workflow-side stack, handed to a hook written with [`local_from_fn`].
pub struct LocalNext<Req, Res, Err> {
    inner: LocalBoxService<Req, Res, Err>,
}

impl<Req, Res, Err> Clone for LocalNext<Req, Res, Err> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<Req, Res, Err> fmt::Debug for LocalNext<Req, Res, Err> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalNext").finish_non_exhaustive()
    }
}

impl<Req: 'static, Res: 'static, Err: 'static> LocalNext<Req, Res, Err> {
    /// Runs the rest of the stack with `request`.
    pub async fn run(self, request: Req) -> Result<Res, Err> {
        self.inner.oneshot(request).await
    }
}

/// Turns `f(request, next)` into a [`Layer`] of workflow-side services. See [`local_from_fn`].
#[derive(Clone)]
pub struct LocalFromFnLayer<F> {
    f: F,
}

impl<F> fmt::Debug for LocalFromFnLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalFromFnLayer").finish_non_exhaustive()
    }
}

/// Workflow-side middleware from an async function of the request and the rest of the stack.
/// Like [`from_fn`](crate::from_fn), without the `Send` bounds.
pub fn local_from_fn<F>(f: F) -> LocalFromFnLayer<F> {
    LocalFromFnLayer { f }
}

impl<F, Req, Res, Err, Fut> Layer<LocalBoxService<Req, Res, Err>> for LocalFromFnLayer<F>
where
    F: Fn(Req, LocalNext<Req, Res, Err>) -> Fut + Clone + 'static,
    Fut: Future<Output = Result<Res, Err>> + 'static,
    Req: 'static,
    Res: 'static,
    Err: 'static,
{
    type Service = LocalBoxService<Req, Res, Err>;

    fn layer(&self, inner: LocalBoxService<Req, Res, Err>) -> Self::Service {
        let f = self.f.clone();
        LocalBoxService::new(LocalFromFn {
            f,
            inner: std::rc::Rc::new(inner),
        })
    }
}

/// Shares the inner stack behind an `Rc`, so a call clones only the service directly below
/// (O(n) per call for `n` hooks, not O(n²)).
struct LocalFromFn<F, S> {
    f: F,
    inner: std::rc::Rc<S>,
}

impl<F: Clone, S> Clone for LocalFromFn<F, S> {
    fn clone(&self) -> Self {
        Self {
            f: self.f.clone(),
            inner: std::rc::Rc::clone(&self.inner),
        }
    }
}

impl<F, Fut, Req, Res, Err> Service<Req> for LocalFromFn<F, LocalBoxService<Req, Res, Err>>
where
    F: Fn(Req, LocalNext<Req, Res, Err>) -> Fut + Clone + 'static,
    Fut: Future<Output = Result<Res, Err>> + 'static,
    Req: 'static,
    Res: 'static,
    Err: 'static,
{
    type Response = Res;
    type Error = Err;
    type Future = LocalBoxFuture<'static, Result<Res, Err>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Err>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let next = LocalNext {
            inner: LocalBoxService::clone(&self.inner),
        };
        Box::pin((self.f)(req, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn local_layers_run_in_order_without_send() {
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let inner_log = log.clone();
        let base: LocalBoxService<u32, u32, ()> = LocalBoxService::from_fn(move |x: u32| {
            let log = inner_log.clone();
            async move {
                log.borrow_mut().push(format!("base {x}"));
                Ok(x * 2)
            }
        });
        let mut svc = base;
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
        let out = futures::executor::block_on(svc.oneshot(1)).unwrap();
        assert_eq!(out, 6);
        assert_eq!(
            *log.borrow(),
            [
                "outer before",
                "inner before",
                "base 3",
                "inner after",
                "outer after"
            ]
        );
    }
}
