//! Registered workflows and activities, by name.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_converter::{DataConverter, PayloadConverterExt};
use trellis_core_proto::Payload;

use crate::activity::ActivityContext;
use crate::error::{ActivityError, WorkerError, WorkflowError};
use crate::workflow::context::WorkflowContext;
use crate::workflow::run::WorkflowFuture;

/// Builds a run's future from its context and input payloads.
pub(crate) type WorkflowFactory =
    Arc<dyn Fn(WorkflowContext, Vec<Payload>) -> WorkflowFuture + Send + Sync>;

/// Runs one activity attempt from its context and input payloads.
pub(crate) type ActivityFn = Arc<
    dyn Fn(ActivityContext, Vec<Payload>) -> BoxFuture<'static, Result<Payload, ActivityError>>
        + Send
        + Sync,
>;

/// A workflow definition: a name and the function that runs it.
#[derive(Clone)]
pub struct WorkflowDefinition {
    pub(crate) name: String,
    pub(crate) factory: WorkflowFactory,
    pub(crate) dynamic: bool,
}

impl std::fmt::Debug for WorkflowDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowDefinition")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl WorkflowDefinition {
    /// A workflow named `name` run by `f(ctx, input)`. The input is decoded from the start
    /// arguments (see [`trellis_converter::decode_args`]); the output is encoded as the result.
    pub fn new<I, O, F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        F: Fn(WorkflowContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, WorkflowError>> + 'static,
    {
        let f = Arc::new(f);
        let factory: WorkflowFactory = Arc::new(move |ctx: WorkflowContext, args: Vec<Payload>| {
            let f = f.clone();
            Box::pin(async move {
                let converter: DataConverter = ctx.data_converter().clone();
                let input: I = converter.decode_args(&args).map_err(WorkflowError::task)?;
                let output = f(ctx, input).await?;
                converter
                    .payloads()
                    .encode(&output)
                    .map_err(WorkflowError::task)
            }) as WorkflowFuture
        });
        Self {
            name: name.into(),
            factory,
            dynamic: false,
        }
    }

    /// A **dynamic** workflow: serves every workflow type not registered by name on the
    /// worker. `f(ctx, args)` gets the start arguments still encoded (decode them with
    /// `ctx.data_converter()`); the type name is `ctx.info().workflow_type`.
    pub fn dynamic<O, F, Fut>(f: F) -> Self
    where
        O: Serialize + 'static,
        F: Fn(WorkflowContext, Vec<Payload>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, WorkflowError>> + 'static,
    {
        let f = Arc::new(f);
        let factory: WorkflowFactory = Arc::new(move |ctx: WorkflowContext, args: Vec<Payload>| {
            let f = f.clone();
            Box::pin(async move {
                let converter: DataConverter = ctx.data_converter().clone();
                let output = f(ctx, args).await?;
                converter
                    .payloads()
                    .encode(&output)
                    .map_err(WorkflowError::task)
            }) as WorkflowFuture
        });
        Self {
            name: DYNAMIC_NAME.to_owned(),
            factory,
            dynamic: true,
        }
    }

    /// Whether this is the dynamic (catch-all) workflow.
    pub fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// The workflow type name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same workflow, with `f(&ctx, err)` applied to every error it returns.
    pub(crate) fn map_error<C: Send + Sync + 'static>(
        self,
        ctx: C,
        f: fn(&C, WorkflowError) -> WorkflowError,
    ) -> Self {
        let inner = self.factory;
        let ctx = Arc::new(ctx);
        let factory: WorkflowFactory = Arc::new(move |wf: WorkflowContext, args: Vec<Payload>| {
            let run = inner(wf, args);
            let ctx = ctx.clone();
            Box::pin(async move { run.await.map_err(|e| f(&ctx, e)) }) as WorkflowFuture
        });
        Self {
            name: self.name,
            factory,
            dynamic: self.dynamic,
        }
    }
}

/// An activity definition: a name and the function that runs one attempt.
#[derive(Clone)]
pub struct ActivityDefinition {
    pub(crate) name: String,
    pub(crate) run: ActivityFn,
    pub(crate) dynamic: bool,
}

/// The name a dynamic registration is listed under.
pub(crate) const DYNAMIC_NAME: &str = "*";

impl std::fmt::Debug for ActivityDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityDefinition")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ActivityDefinition {
    /// An activity named `name` run by `f(ctx, input)`. Several arguments decode into a tuple.
    pub fn new<I, O, F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ActivityError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let run: ActivityFn = Arc::new(move |ctx: ActivityContext, args: Vec<Payload>| {
            let converter = ctx.data_converter().clone();
            let input: Result<I, _> = converter.decode_args(&args);
            match input {
                Ok(input) => {
                    let fut = f(ctx, input);
                    async move {
                        let output = fut.await?;
                        Ok(converter.payloads().encode(&output)?)
                    }
                    .boxed()
                }
                Err(e) => futures::future::ready(Err(ActivityError::from(e))).boxed(),
            }
        });
        Self {
            name: name.into(),
            run,
            dynamic: false,
        }
    }

    /// A **dynamic** activity: serves every activity type not registered by name on the
    /// worker. `f(ctx, args)` gets the arguments still encoded; the type name is
    /// `ctx.info().activity_type`.
    pub fn dynamic<O, F, Fut>(f: F) -> Self
    where
        O: Serialize + 'static,
        F: Fn(ActivityContext, Vec<Payload>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ActivityError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let run: ActivityFn = Arc::new(move |ctx: ActivityContext, args: Vec<Payload>| {
            let converter = ctx.data_converter().clone();
            let fut = f(ctx, args);
            async move {
                let output = fut.await?;
                Ok(converter.payloads().encode(&output)?)
            }
            .boxed()
        });
        Self {
            name: DYNAMIC_NAME.to_owned(),
            run,
            dynamic: true,
        }
    }

    /// Whether this is the dynamic (catch-all) activity.
    pub fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// The activity type name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Registered functions by type name.
pub(crate) struct Registry<T> {
    map: HashMap<String, T>,
    dynamic: Option<T>,
}

/// Workflows by type name.
pub(crate) type WorkflowRegistry = Registry<WorkflowFactory>;
/// Activities by type name.
pub(crate) type ActivityRegistry = Registry<ActivityFn>;

impl<T: Clone> Registry<T> {
    /// Builds a registry from `(source, name, value)` entries, refusing a name given twice;
    /// `source` says where each entry came from, for the error message.
    pub(crate) fn build<'a>(
        kind: &'static str,
        entries: impl IntoIterator<Item = (&'a str, &'a str, bool, &'a T)>,
    ) -> Result<Self, WorkerError>
    where
        T: 'a,
    {
        let mut sources: HashMap<&str, &str> = HashMap::new();
        let mut map = HashMap::new();
        let mut dynamic: Option<(&str, T)> = None;
        for (source, name, is_dynamic, value) in entries {
            if is_dynamic {
                if let Some((first, _)) = dynamic {
                    return Err(WorkerError::Duplicate {
                        kind,
                        name: "(dynamic)".to_owned(),
                        first: first.to_owned(),
                        second: source.to_owned(),
                    });
                }
                dynamic = Some((source, value.clone()));
                continue;
            }
            if let Some(first) = sources.insert(name, source) {
                return Err(WorkerError::Duplicate {
                    kind,
                    name: name.to_owned(),
                    first: first.to_owned(),
                    second: source.to_owned(),
                });
            }
            map.insert(name.to_owned(), value.clone());
        }
        Ok(Self {
            map,
            dynamic: dynamic.map(|(_, v)| v),
        })
    }

    /// The function registered under `name`, else the dynamic one.
    pub(crate) fn get(&self, name: &str) -> Option<&T> {
        self.map.get(name).or(self.dynamic.as_ref())
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<_> = self.map.keys().cloned().collect();
        v.sort();
        if self.dynamic.is_some() {
            v.push(DYNAMIC_NAME.to_owned());
        }
        v
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty() && self.dynamic.is_none()
    }
}

/// Builds the registries, refusing duplicate names (the error names both sources).
pub(crate) fn build_registries(
    workflows: &[(String, WorkflowDefinition)],
    activities: &[(String, ActivityDefinition)],
) -> Result<(WorkflowRegistry, ActivityRegistry), WorkerError> {
    Ok((
        Registry::build(
            "workflow",
            workflows
                .iter()
                .map(|(source, d)| (source.as_str(), d.name.as_str(), d.dynamic, &d.factory)),
        )?,
        Registry::build(
            "activity",
            activities
                .iter()
                .map(|(source, d)| (source.as_str(), d.name.as_str(), d.dynamic, &d.run)),
        )?,
    ))
}
