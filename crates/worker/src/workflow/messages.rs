//! Update handlers, `wait_condition` and "all handlers finished".

use std::future::Future;
use std::rc::Rc;
use std::task::Poll;

use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_converter::ApplicationFailure;
use trellis_core_proto::Payload;

use super::context::WorkflowContext;
use crate::error::WorkflowError;

type Validator = Rc<dyn Fn(&[Payload]) -> Result<(), WorkflowError>>;
type Handler = Rc<dyn Fn(Vec<Payload>) -> LocalBoxFuture<'static, Result<Payload, WorkflowError>>>;
type DynamicValidator = Rc<dyn Fn(&str, &[Payload]) -> Result<(), WorkflowError>>;
type DynamicHandler =
    Rc<dyn Fn(String, Vec<Payload>) -> LocalBoxFuture<'static, Result<Payload, WorkflowError>>>;

/// A registered update: its handler and optional validator.
#[derive(Clone)]
pub(crate) struct UpdateHandler {
    pub(crate) validator: Option<Validator>,
    pub(crate) handler: Handler,
}

/// The catch-all update handler.
#[derive(Clone)]
pub(crate) struct DynamicUpdateHandler {
    pub(crate) validator: Option<DynamicValidator>,
    pub(crate) handler: DynamicHandler,
}

fn decode_failure(what: &str, name: &str, e: impl std::fmt::Display) -> WorkflowError {
    WorkflowError::from(ApplicationFailure::new(
        "DecodeError",
        format!("the arguments of {what} {name:?} do not decode: {e}"),
    ))
}

impl WorkflowContext {
    /// Handles the update `name` with `handler(input)`. The handler may wait (on activities,
    /// timers, conditions); its result goes back to the caller. An [`ApplicationFailure`]
    /// (or a failed activity/child) it returns fails the update, not the workflow; any other
    /// error fails the workflow task, like the workflow's own errors.
    ///
    /// An update with no handler when it arrives is rejected with a message naming it.
    /// Register handlers before the first `await` of the workflow so updates sent together
    /// with the start find them.
    pub fn set_update_handler<A, R, F, Fut>(&self, name: &str, handler: F)
    where
        A: DeserializeOwned + 'static,
        R: Serialize + 'static,
        F: Fn(A) -> Fut + 'static,
        Fut: Future<Output = Result<R, WorkflowError>> + 'static,
    {
        let converter = self.shared.converter.clone();
        let owned = name.to_owned();
        let handler: Handler = Rc::new(move |args: Vec<Payload>| {
            let converter = converter.clone();
            match converter.decode_args::<A>(&args) {
                Ok(a) => {
                    let fut = handler(a);
                    Box::pin(async move {
                        let r = fut.await?;
                        converter.encode(&r).map_err(WorkflowError::task)
                    })
                }
                Err(e) => {
                    let err = decode_failure("update", &owned, e);
                    Box::pin(std::future::ready(Err(err)))
                }
            }
        });
        let mut st = self.shared.state.borrow_mut();
        let validator = st.updates.get(name).and_then(|u| u.validator.clone());
        st.updates
            .insert(name.to_owned(), UpdateHandler { validator, handler });
    }

    /// Validates the update `name` before it is accepted: an `Err` rejects it, and a rejected
    /// update never reaches the history. Validators must not change workflow state or wait
    /// (they do not run on replay). Set it after [`set_update_handler`](Self::set_update_handler).
    pub fn set_update_validator<A, F>(&self, name: &str, validator: F)
    where
        A: DeserializeOwned + 'static,
        F: Fn(&A) -> Result<(), WorkflowError> + 'static,
    {
        let converter = self.shared.converter.clone();
        let owned = name.to_owned();
        let v: Validator = Rc::new(move |args: &[Payload]| {
            let a: A = converter
                .decode_args(args)
                .map_err(|e| decode_failure("update", &owned, e))?;
            validator(&a)
        });
        let mut st = self.shared.state.borrow_mut();
        match st.updates.get_mut(name) {
            Some(u) => u.validator = Some(v),
            None => {
                // A validator without a handler still needs one to run: keep it and reject
                // at execution with a clear message if no handler is ever set.
                let missing = name.to_owned();
                st.updates.insert(
                    name.to_owned(),
                    UpdateHandler {
                        validator: Some(v),
                        handler: Rc::new(move |_| {
                            let msg = format!("update {missing:?} has a validator but no handler");
                            Box::pin(std::future::ready(Err(WorkflowError::from(
                                ApplicationFailure::new("UnknownUpdate", msg),
                            ))))
                        }),
                    },
                );
            }
        }
    }

    /// Handles every update that has no handler of its own: `handler(name, encoded args)`
    /// returns the encoded result. `validator`, if given, runs first as for
    /// [`set_update_validator`](Self::set_update_validator).
    pub fn set_dynamic_update_handler<F, Fut, V>(&self, validator: Option<V>, handler: F)
    where
        F: Fn(String, Vec<Payload>) -> Fut + 'static,
        Fut: Future<Output = Result<Payload, WorkflowError>> + 'static,
        V: Fn(&str, &[Payload]) -> Result<(), WorkflowError> + 'static,
    {
        let handler: DynamicHandler = Rc::new(move |name, args| Box::pin(handler(name, args)));
        self.shared.state.borrow_mut().dynamic_update = Some(DynamicUpdateHandler {
            validator: validator.map(|v| Rc::new(v) as DynamicValidator),
            handler,
        });
    }

    /// Completes once `condition()` is true. The condition is checked now and again after
    /// every change the workflow sees (a job applied, other code run), so it must only read
    /// workflow state. Race it against [`timer`](Self::timer) for a timeout, or use
    /// [`wait_condition_timeout`](Self::wait_condition_timeout).
    pub fn wait_condition<F>(&self, mut condition: F) -> impl Future<Output = ()> + use<F>
    where
        F: FnMut() -> bool,
    {
        let ctx = self.clone();
        std::future::poll_fn(move |cx| {
            if condition() {
                ctx.shared.state.borrow_mut().conditions_met += 1;
                Poll::Ready(())
            } else {
                ctx.shared
                    .state
                    .borrow_mut()
                    .condition_waiters
                    .push(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    /// Like [`wait_condition`](Self::wait_condition), giving up after `timeout` of workflow
    /// time: `true` if the condition became true, `false` on timeout. The timer is cancelled
    /// when the condition wins.
    pub async fn wait_condition_timeout<F>(
        &self,
        condition: F,
        timeout: std::time::Duration,
    ) -> bool
    where
        F: FnMut() -> bool,
    {
        let cond = std::pin::pin!(self.wait_condition(condition));
        let timer = self.timer(timeout);
        match futures::future::select(cond, timer).await {
            futures::future::Either::Left(_) => true,
            futures::future::Either::Right(_) => false,
        }
    }

    /// Completes when no update handler is running. Await it before returning from the
    /// workflow so accepted updates get their results (a workflow that completes first leaves
    /// them without an answer).
    pub fn all_handlers_finished(&self) -> impl Future<Output = ()> + use<> {
        let ctx = self.clone();
        std::future::poll_fn(move |cx| {
            let mut st = ctx.shared.state.borrow_mut();
            if st.running_updates == 0 {
                Poll::Ready(())
            } else {
                st.handlers_finished_wakers.push(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    /// How many update handlers are running now.
    pub fn running_update_handlers(&self) -> usize {
        self.shared.state.borrow().running_updates
    }
}

/// Looks up the handler for an update (its own, else the dynamic one).
pub(crate) fn find_update(
    ctx: &WorkflowContext,
    name: &str,
) -> Option<(Option<Validator>, Handler)> {
    let st = ctx.shared.state.borrow();
    if let Some(u) = st.updates.get(name) {
        return Some((u.validator.clone(), u.handler.clone()));
    }
    let d = st.dynamic_update.clone()?;
    let owned = name.to_owned();
    let validator = d.validator.map(|v| {
        let owned = owned.clone();
        Rc::new(move |args: &[Payload]| v(&owned, args)) as Validator
    });
    let handler = d.handler;
    Some((
        validator,
        Rc::new(move |args| handler(owned.clone(), args)) as Handler,
    ))
}

/// The error for an update nobody handles.
pub(crate) fn unknown_update(ctx: &WorkflowContext, name: &str) -> WorkflowError {
    let mut known: Vec<String> = ctx.shared.state.borrow().updates.keys().cloned().collect();
    known.sort();
    WorkflowError::from(ApplicationFailure::new(
        "UnknownUpdate",
        format!(
            "workflow type {} has no handler for update {name:?}; known updates: [{}]",
            ctx.info().workflow_type,
            known.join(", ")
        ),
    ))
}
