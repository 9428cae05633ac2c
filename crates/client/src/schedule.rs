//! Schedules: start a workflow on a timetable (every interval, or by cron), managed from the
//! client. Each operation is one [`ClientCall::Schedule`] (or [`ClientCall::ListSchedules`])
//! through the client's call layers; the workflow arguments go through the data converter and
//! its codecs like a start's.
//!
//! ```no_run
//! # async fn demo(client: trellis_client::Client) -> Result<(), trellis_client::ClientError> {
//! use std::time::Duration;
//! use trellis_client::WorkflowOptions;
//! use trellis_client::schedule::ScheduleOptions;
//!
//! let schedule = client
//!     .create_schedule(
//!         "nightly-report",
//!         ScheduleOptions::every(Duration::from_secs(24 * 3600)).note("the nightly report"),
//!         "Report",
//!         ("nightly",),
//!         WorkflowOptions::new("report", "reports"),
//!     )
//!     .await?;
//! schedule.trigger().await?; // one run now
//! schedule.pause("maintenance").await?;
//! let described = schedule.describe().await?;
//! assert!(described.paused);
//! schedule.delete().await?;
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime};

use trellis_core_proto::api::enums::v1::ScheduleOverlapPolicy;
use trellis_core_proto::api::schedule::v1::{
    IntervalSpec, ScheduleListEntry, SchedulePolicies, ScheduleSpec,
};
use trellis_core_proto::api::workflowservice::v1::DescribeScheduleResponse;
use trellis_core_proto::time::{from_proto_timestamp, to_proto_duration};

use crate::client::Client;
use crate::error::ClientError;
use crate::handle::WorkflowHandle;
use crate::interceptors::{
    ClientCall, ClientCallResponse, ScheduleCall, ScheduleOp, StartWorkflowCall,
};

/// When a schedule acts and how: the spec (intervals, cron strings, calendars, as the server
/// defines them), the policies, and the initial state.
#[derive(Clone, Debug, Default)]
pub struct ScheduleOptions {
    /// When to act. [`ScheduleOptions::every`] and [`ScheduleOptions::cron`] fill it; any
    /// other field of the server's spec (calendars, jitter, time zone, start/end) can be set.
    pub spec: ScheduleSpec,
    /// Overlap, catch-up window, pause on failure.
    pub policies: SchedulePolicies,
    /// Created paused.
    pub paused: bool,
    /// A note shown with the schedule (e.g. why it is paused).
    pub note: String,
    /// Act once as soon as it is created.
    pub trigger_immediately: bool,
}

impl ScheduleOptions {
    /// Acts every `interval` (aligned to the Unix epoch, as the server does).
    pub fn every(interval: Duration) -> Self {
        Self {
            spec: ScheduleSpec {
                interval: vec![IntervalSpec {
                    interval: Some(to_proto_duration(interval)),
                    phase: None,
                }],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Acts at the times of a cron string (`"0 9 * * MON-FRI"`; the server's cron syntax,
    /// which also takes `@daily`, `@every 1h`, and a `CRON_TZ=` prefix).
    pub fn cron(expression: impl Into<String>) -> Self {
        Self {
            spec: ScheduleSpec {
                cron_string: vec![expression.into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Creates it paused.
    pub fn paused(mut self) -> Self {
        self.paused = true;
        self
    }

    /// Sets the note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// What to do when an action is due while the previous run still runs (the server's
    /// default skips it).
    pub fn overlap_policy(mut self, policy: ScheduleOverlapPolicy) -> Self {
        self.policies.overlap_policy = policy as i32;
        self
    }

    /// Acts once as soon as it is created.
    pub fn trigger_immediately(mut self) -> Self {
        self.trigger_immediately = true;
        self
    }
}

/// A schedule of a namespace; cheap to clone. See [`Client::create_schedule`] and
/// [`Client::schedule_handle`].
#[derive(Clone, Debug)]
pub struct ScheduleHandle {
    client: Client,
    id: String,
}

/// What the server says about a schedule.
#[derive(Clone, Debug)]
pub struct ScheduleDescription {
    /// The schedule id.
    pub id: String,
    /// Whether it is paused.
    pub paused: bool,
    /// Its note.
    pub note: String,
    /// How many actions it took.
    pub action_count: i64,
    /// The workflows its latest actions started, oldest first: (workflow id, run id).
    pub recent_runs: Vec<(String, String)>,
    /// When it acts next.
    pub next_action_times: Vec<SystemTime>,
    /// The whole answer (its payloads as stored: encoded by the codecs, if any).
    pub raw: Box<DescribeScheduleResponse>,
}

impl ScheduleHandle {
    pub(crate) fn new(client: Client, id: String) -> Self {
        Self { client, id }
    }

    /// The schedule id.
    pub fn id(&self) -> &str {
        &self.id
    }

    async fn call(&self, op: ScheduleOp) -> Result<ClientCallResponse, ClientError> {
        self.client
            .call(ClientCall::Schedule(Box::new(ScheduleCall {
                schedule_id: self.id.clone(),
                op,
            })))
            .await
    }

    /// Describes the schedule. A schedule that does not exist is a `NotFound`
    /// [`ClientError::Rpc`].
    pub async fn describe(&self) -> Result<ScheduleDescription, ClientError> {
        let raw = match self.call(ScheduleOp::Describe).await? {
            ClientCallResponse::ScheduleDescribed(raw) => raw,
            other => return Err(ClientError::unexpected("describe_schedule", &other)),
        };
        let state = raw
            .schedule
            .as_ref()
            .and_then(|s| s.state.clone())
            .unwrap_or_default();
        let info = raw.info.clone().unwrap_or_default();
        Ok(ScheduleDescription {
            id: self.id.clone(),
            paused: state.paused,
            note: state.notes,
            action_count: info.action_count,
            recent_runs: info
                .recent_actions
                .iter()
                .filter_map(|a| a.start_workflow_result.as_ref())
                .map(|e| (e.workflow_id.clone(), e.run_id.clone()))
                .collect(),
            next_action_times: info
                .future_action_times
                .iter()
                .map(from_proto_timestamp)
                .collect(),
            raw,
        })
    }

    /// Acts once now (with the schedule's overlap policy).
    pub async fn trigger(&self) -> Result<(), ClientError> {
        self.call(ScheduleOp::Trigger).await.map(drop)
    }

    /// Pauses it, with a note saying why.
    pub async fn pause(&self, note: &str) -> Result<(), ClientError> {
        self.call(ScheduleOp::Pause(note.to_owned()))
            .await
            .map(drop)
    }

    /// Unpauses it, with a note.
    pub async fn unpause(&self, note: &str) -> Result<(), ClientError> {
        self.call(ScheduleOp::Unpause(note.to_owned()))
            .await
            .map(drop)
    }

    /// Deletes it (the workflows it started keep running).
    pub async fn delete(&self) -> Result<(), ClientError> {
        self.call(ScheduleOp::Delete).await.map(drop)
    }

    /// A handle to the workflow run its latest action started, if it took one.
    pub async fn latest_run(&self) -> Result<Option<WorkflowHandle>, ClientError> {
        Ok(self
            .describe()
            .await?
            .recent_runs
            .pop()
            .map(|(id, run)| self.client.workflow_handle(id, Some(run))))
    }
}

impl Client {
    /// Creates the schedule `id`, which starts `workflow_type` with `args` (a tuple, or `()`)
    /// and `workflow` options (id, task queue, timeouts, …; the server appends the action time
    /// to the workflow id) when `options` says. An existing id is an `AlreadyExists`
    /// [`ClientError::Rpc`].
    pub async fn create_schedule(
        &self,
        id: &str,
        options: ScheduleOptions,
        workflow_type: &str,
        args: impl trellis_converter::IntoPayloads,
        workflow: crate::WorkflowOptions,
    ) -> Result<ScheduleHandle, ClientError> {
        let call = ClientCall::Schedule(Box::new(ScheduleCall {
            schedule_id: id.to_owned(),
            op: ScheduleOp::Create {
                options: Box::new(options),
                workflow: Box::new(StartWorkflowCall {
                    workflow_type: workflow_type.to_owned(),
                    args: self.data_converter().encode_args(args)?,
                    options: workflow,
                }),
            },
        }));
        self.call(call).await?;
        Ok(self.schedule_handle(id))
    }

    /// A handle to the schedule `id` (no call is made).
    pub fn schedule_handle(&self, id: impl Into<String>) -> ScheduleHandle {
        ScheduleHandle::new(self.clone(), id.into())
    }

    /// The schedules of the namespace (all pages), optionally filtered by a visibility query
    /// (empty: all). Visibility is eventually consistent: a schedule just created may not be
    /// listed yet.
    pub async fn list_schedules(&self, query: &str) -> Result<Vec<ScheduleListEntry>, ClientError> {
        match self
            .call(ClientCall::ListSchedules(crate::interceptors::ListCall {
                query: query.to_owned(),
            }))
            .await?
        {
            ClientCallResponse::Schedules(s) => Ok(s),
            other => Err(ClientError::unexpected("list_schedules", &other)),
        }
    }
}
