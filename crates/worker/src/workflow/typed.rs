//! Typed references to activities and child workflows: a type name with its argument and
//! result types, so a call cannot pass the wrong arguments or read the wrong result.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use trellis_converter::IntoPayloads;

use super::context::{ActivityCall, ActivityFuture, WorkflowContext};
use super::ops::{ChildWorkflowCall, ChildWorkflowHandle};
use crate::error::ChildWorkflowFailed;

/// An activity type name with its argument list `A` (a tuple: `(String,)` for one argument,
/// `(String, u32)` for two, `()` for none) and result type `O`. Declare it once, next to the
/// activity, and call through it:
///
/// ```
/// use std::time::Duration;
/// use trellis_worker::{ActivityRef, WorkflowContext, WorkflowError};
///
/// const COMPOSE: ActivityRef<(String, String), String> = ActivityRef::new("compose_greeting");
///
/// async fn greet(ctx: WorkflowContext, name: String) -> Result<String, WorkflowError> {
///     let greeting = COMPOSE
///         .call(&ctx, ("Hello".to_owned(), name))
///         .options(|c| c.start_to_close_timeout(Duration::from_secs(10)))
///         .run()
///         .await?;
///     Ok(greeting)
/// }
/// ```
pub struct ActivityRef<A, O> {
    name: &'static str,
    _t: PhantomData<fn(A) -> O>,
}

impl<A, O> std::fmt::Debug for ActivityRef<A, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ActivityRef").field(&self.name).finish()
    }
}

impl<A, O> Clone for ActivityRef<A, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, O> Copy for ActivityRef<A, O> {}

impl<A, O> ActivityRef<A, O> {
    /// A reference to the activity type `name`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            _t: PhantomData,
        }
    }

    /// The activity type name (register the activity under it).
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<A: IntoPayloads, O: DeserializeOwned + 'static> ActivityRef<A, O> {
    /// Prepares a call with `args`; set options with [`TypedActivityCall::options`], then run.
    pub fn call(&self, ctx: &WorkflowContext, args: A) -> TypedActivityCall<O> {
        TypedActivityCall {
            call: ctx.activity(self.name).args(args),
            _t: PhantomData,
        }
    }

    /// Prepares a call of the activity as a **local** activity.
    pub fn call_local(&self, ctx: &WorkflowContext, args: A) -> TypedActivityCall<O> {
        TypedActivityCall {
            call: ctx.local_activity(self.name).args(args),
            _t: PhantomData,
        }
    }
}

/// A typed activity call: set options with [`options`](Self::options), then
/// [`run`](Self::run).
#[must_use = "an activity call does nothing until `.run()` is awaited"]
#[derive(Debug)]
pub struct TypedActivityCall<O> {
    call: ActivityCall,
    _t: PhantomData<fn() -> O>,
}

impl<O: DeserializeOwned + 'static> TypedActivityCall<O> {
    /// Sets options on the underlying [`ActivityCall`] (timeouts, retries, task queue, …).
    pub fn options(mut self, f: impl FnOnce(ActivityCall) -> ActivityCall) -> Self {
        self.call = f(self.call);
        self
    }

    /// Schedules the activity; its future gives an `O`.
    pub fn run(self) -> ActivityFuture<O> {
        self.call.run()
    }
}

/// A workflow type name with its argument list `A` (a tuple, as for [`ActivityRef`]) and
/// result type `O`, to start it as a child with the types checked.
pub struct WorkflowRef<A, O> {
    name: &'static str,
    _t: PhantomData<fn(A) -> O>,
}

impl<A, O> std::fmt::Debug for WorkflowRef<A, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WorkflowRef").field(&self.name).finish()
    }
}

impl<A, O> Clone for WorkflowRef<A, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, O> Copy for WorkflowRef<A, O> {}

impl<A, O> WorkflowRef<A, O> {
    /// A reference to the workflow type `name`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            _t: PhantomData,
        }
    }

    /// The workflow type name (register the workflow under it).
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<A: IntoPayloads, O: DeserializeOwned + 'static> WorkflowRef<A, O> {
    /// Prepares the workflow as a child of the running workflow.
    pub fn child(&self, ctx: &WorkflowContext, args: A) -> TypedChildCall<O> {
        TypedChildCall {
            call: ctx.child_workflow(self.name).args(args),
            _t: PhantomData,
        }
    }
}

/// A typed child workflow call: set options with [`options`](Self::options), then
/// [`run`](Self::run) or [`start`](Self::start).
#[must_use = "a child workflow does nothing until started"]
#[derive(Debug)]
pub struct TypedChildCall<O> {
    call: ChildWorkflowCall,
    _t: PhantomData<fn() -> O>,
}

impl<O: DeserializeOwned + 'static> TypedChildCall<O> {
    /// Sets options on the underlying [`ChildWorkflowCall`] (id, task queue, policies, …).
    pub fn options(mut self, f: impl FnOnce(ChildWorkflowCall) -> ChildWorkflowCall) -> Self {
        self.call = f(self.call);
        self
    }

    /// Starts the child; read its result with `handle.result::<O>()`.
    pub async fn start(self) -> Result<ChildWorkflowHandle, ChildWorkflowFailed> {
        self.call.start().await
    }

    /// Starts the child and waits for its `O` result.
    pub async fn run(self) -> Result<O, ChildWorkflowFailed> {
        self.call.run().await
    }
}
