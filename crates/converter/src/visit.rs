//! Payload visitors: find every payload of a worker or client message that must pass through the
//! codec stack, so codecs can run over all of them in one batch.
//!
//! [`VisitPayloads`] is implemented for the messages a worker exchanges with Temporal's core
//! (activations and their completions, activity tasks, completions and heartbeats), for
//! `Failure` (recursively: application and cancellation details, last heartbeat details of
//! timeouts and resets, `encoded_attributes`, and every cause) and for the small containers
//! (`Payload`, `Payloads`, `Memo`, slices, `Vec`, `Option`).
//!
//! What is visited follows the Python SDK's payload visitor:
//! - **search attributes are never visited**: the server must read them, so they stay as the
//!   payload converter wrote them, as in every SDK;
//! - **headers are skipped by default**, as the Python SDK does unless its
//!   `header_codec_behavior` asks otherwise; set [`VisitOptions::include_headers`] to visit them;
//! - memos, user metadata (summary and details of commands) and event group labels are visited.
//!
//! [`encode_in_place`] and [`decode_in_place`] collect the payloads, take them out, run the
//! [`DataConverter`]'s codec stack over the batch, and put the results back in place.

use std::collections::HashMap;

use trellis_core_proto::api::common::v1::Memo;
use trellis_core_proto::api::failure::v1::failure::FailureInfo;
use trellis_core_proto::api::sdk::v1::{UserMetadata, event_group_marker};
use trellis_core_proto::coresdk::{
    self, activity_result, activity_task, child_workflow, nexus, workflow_activation as act,
    workflow_commands as cmd, workflow_completion as compl,
};
use trellis_core_proto::{Failure, Payload, Payloads};

use crate::{CodecError, DataConverter};

/// What the visitors visit beyond the payloads that always pass through codecs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VisitOptions {
    /// Visit header payloads too (default: no, as the Python SDK).
    pub include_headers: bool,
}

impl VisitOptions {
    /// The options with headers visited (`true`) or skipped (`false`).
    pub fn with_headers(mut self, include: bool) -> Self {
        self.include_headers = include;
        self
    }
}

/// A message whose payloads can be collected for the codec stack.
pub trait VisitPayloads {
    /// Pushes a mutable reference to every payload of `self` that codecs must see (see the
    /// [module docs](crate::visit)) onto `out`.
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>);
}

/// Every payload of `message` that codecs must see.
pub fn payloads_mut<'a, M: VisitPayloads + ?Sized>(
    message: &'a mut M,
    options: &VisitOptions,
) -> Vec<&'a mut Payload> {
    let mut out = Vec::new();
    message.visit_payloads(options, &mut out);
    out
}

/// Runs `converter`'s codec encoding, in one batch, over every payload of `message` that codecs
/// must see, replacing each in place. Does nothing when the converter has no codecs. On error the
/// visited payloads are left empty: discard the message.
pub async fn encode_in_place<M: VisitPayloads + Send + ?Sized>(
    converter: &DataConverter,
    message: &mut M,
    options: &VisitOptions,
) -> Result<(), CodecError> {
    run(converter, message, options, true).await
}

/// Runs `converter`'s codec decoding, in one batch, over every payload of `message` that codecs
/// must see, replacing each in place. Does nothing when the converter has no codecs. On error the
/// visited payloads are left empty: discard the message.
pub async fn decode_in_place<M: VisitPayloads + Send + ?Sized>(
    converter: &DataConverter,
    message: &mut M,
    options: &VisitOptions,
) -> Result<(), CodecError> {
    run(converter, message, options, false).await
}

async fn run<M: VisitPayloads + Send + ?Sized>(
    converter: &DataConverter,
    message: &mut M,
    options: &VisitOptions,
    encode: bool,
) -> Result<(), CodecError> {
    if converter.codecs().is_empty() {
        return Ok(());
    }
    let mut slots = payloads_mut(message, options);
    if slots.is_empty() {
        return Ok(());
    }
    let batch: Vec<Payload> = slots.iter_mut().map(|p| std::mem::take(&mut **p)).collect();
    let out = if encode {
        converter.encode_payloads(batch).await?
    } else {
        converter.decode_payloads(batch).await?
    };
    if out.len() != slots.len() {
        return Err(CodecError::CountMismatch {
            codec: "the codec stack".into(),
            expected: slots.len(),
            got: out.len(),
        });
    }
    for (slot, p) in slots.into_iter().zip(out) {
        *slot = p;
    }
    Ok(())
}

fn headers<'a>(
    map: &'a mut HashMap<String, Payload>,
    options: &VisitOptions,
    out: &mut Vec<&'a mut Payload>,
) {
    if options.include_headers {
        out.extend(map.values_mut());
    }
}

fn values<'a>(map: &'a mut HashMap<String, Payload>, out: &mut Vec<&'a mut Payload>) {
    out.extend(map.values_mut());
}

impl VisitPayloads for Payload {
    fn visit_payloads<'a>(&'a mut self, _: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        out.push(self);
    }
}

impl<T: VisitPayloads> VisitPayloads for Option<T> {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        if let Some(v) = self {
            v.visit_payloads(options, out);
        }
    }
}

impl<T: VisitPayloads + ?Sized> VisitPayloads for Box<T> {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        (**self).visit_payloads(options, out);
    }
}

impl<T: VisitPayloads> VisitPayloads for [T] {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        for v in self {
            v.visit_payloads(options, out);
        }
    }
}

impl<T: VisitPayloads> VisitPayloads for Vec<T> {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        self.as_mut_slice().visit_payloads(options, out);
    }
}

impl VisitPayloads for Payloads {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        self.payloads.visit_payloads(options, out);
    }
}

impl VisitPayloads for Memo {
    fn visit_payloads<'a>(&'a mut self, _: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        values(&mut self.fields, out);
    }
}

impl VisitPayloads for Failure {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        let Failure {
            encoded_attributes,
            cause,
            failure_info,
            ..
        } = self;
        encoded_attributes.visit_payloads(options, out);
        match failure_info {
            Some(FailureInfo::ApplicationFailureInfo(i)) => i.details.visit_payloads(options, out),
            Some(FailureInfo::TimeoutFailureInfo(i)) => {
                i.last_heartbeat_details.visit_payloads(options, out)
            }
            Some(FailureInfo::CanceledFailureInfo(i)) => i.details.visit_payloads(options, out),
            Some(FailureInfo::ResetWorkflowFailureInfo(i)) => {
                i.last_heartbeat_details.visit_payloads(options, out)
            }
            _ => {}
        }
        cause.visit_payloads(options, out);
    }
}

// ----- Activations (core → workflow code) -----

impl VisitPayloads for act::WorkflowActivation {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        self.jobs.visit_payloads(options, out);
    }
}

impl VisitPayloads for act::WorkflowActivationJob {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        use act::workflow_activation_job::Variant;
        let Some(v) = &mut self.variant else { return };
        match v {
            Variant::InitializeWorkflow(i) => {
                i.arguments.visit_payloads(options, out);
                headers(&mut i.headers, options, out);
                i.continued_failure.visit_payloads(options, out);
                i.last_completion_result.visit_payloads(options, out);
                i.memo.visit_payloads(options, out);
                // i.search_attributes: never visited.
            }
            Variant::QueryWorkflow(q) => {
                q.arguments.visit_payloads(options, out);
                headers(&mut q.headers, options, out);
            }
            Variant::SignalWorkflow(s) => {
                s.input.visit_payloads(options, out);
                headers(&mut s.headers, options, out);
            }
            Variant::ResolveActivity(r) => r.result.visit_payloads(options, out),
            Variant::ResolveChildWorkflowExecutionStart(r) => {
                use act::resolve_child_workflow_execution_start::Status;
                if let Some(Status::Cancelled(c)) = &mut r.status {
                    c.failure.visit_payloads(options, out);
                }
            }
            Variant::ResolveChildWorkflowExecution(r) => r.result.visit_payloads(options, out),
            Variant::ResolveSignalExternalWorkflow(r) => r.failure.visit_payloads(options, out),
            Variant::ResolveRequestCancelExternalWorkflow(r) => {
                r.failure.visit_payloads(options, out)
            }
            Variant::DoUpdate(u) => {
                u.input.visit_payloads(options, out);
                headers(&mut u.headers, options, out);
            }
            Variant::ResolveNexusOperationStart(r) => {
                use act::resolve_nexus_operation_start::Status;
                if let Some(Status::Failed(f)) = &mut r.status {
                    f.visit_payloads(options, out);
                }
            }
            Variant::ResolveNexusOperation(r) => r.result.visit_payloads(options, out),
            Variant::FireTimer(_)
            | Variant::UpdateRandomSeed(_)
            | Variant::CancelWorkflow(_)
            | Variant::NotifyHasPatch(_)
            | Variant::RemoveFromCache(_) => {}
        }
    }
}

impl VisitPayloads for activity_result::ActivityResolution {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        use activity_result::activity_resolution::Status;
        match &mut self.status {
            Some(Status::Completed(s)) => s.result.visit_payloads(options, out),
            Some(Status::Failed(f)) => f.failure.visit_payloads(options, out),
            Some(Status::Cancelled(c)) => c.failure.visit_payloads(options, out),
            Some(Status::Backoff(_)) | None => {}
        }
    }
}

impl VisitPayloads for child_workflow::ChildWorkflowResult {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        use child_workflow::child_workflow_result::Status;
        match &mut self.status {
            Some(Status::Completed(s)) => s.result.visit_payloads(options, out),
            Some(Status::Failed(f)) => f.failure.visit_payloads(options, out),
            Some(Status::Cancelled(c)) => c.failure.visit_payloads(options, out),
            None => {}
        }
    }
}

impl VisitPayloads for nexus::NexusOperationResult {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        use nexus::nexus_operation_result::Status;
        match &mut self.status {
            Some(Status::Completed(p)) => out.push(p),
            Some(Status::Failed(f) | Status::Cancelled(f) | Status::TimedOut(f)) => {
                f.visit_payloads(options, out)
            }
            None => {}
        }
    }
}

// ----- Completions (workflow code → core) -----

impl VisitPayloads for compl::WorkflowActivationCompletion {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        use compl::workflow_activation_completion::Status;
        match &mut self.status {
            Some(Status::Successful(s)) => s.commands.visit_payloads(options, out),
            Some(Status::Failed(f)) => f.failure.visit_payloads(options, out),
            None => {}
        }
    }
}

impl VisitPayloads for UserMetadata {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        self.summary.visit_payloads(options, out);
        self.details.visit_payloads(options, out);
    }
}

impl VisitPayloads for cmd::WorkflowCommand {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        use cmd::workflow_command::Variant;
        self.user_metadata.visit_payloads(options, out);
        for marker in &mut self.event_group_markers {
            if let Some(event_group_marker::Variant::Label(l)) = &mut marker.variant {
                l.label.visit_payloads(options, out);
            }
        }
        let Some(v) = &mut self.variant else { return };
        match v {
            Variant::ScheduleActivity(a) => {
                headers(&mut a.headers, options, out);
                a.arguments.visit_payloads(options, out);
            }
            Variant::ScheduleLocalActivity(a) => {
                headers(&mut a.headers, options, out);
                a.arguments.visit_payloads(options, out);
            }
            Variant::RespondToQuery(q) => {
                use cmd::query_result::Variant as Q;
                match &mut q.variant {
                    Some(Q::Succeeded(s)) => s.response.visit_payloads(options, out),
                    Some(Q::Failed(f)) => f.visit_payloads(options, out),
                    None => {}
                }
            }
            Variant::CompleteWorkflowExecution(c) => c.result.visit_payloads(options, out),
            Variant::FailWorkflowExecution(f) => f.failure.visit_payloads(options, out),
            Variant::ContinueAsNewWorkflowExecution(c) => {
                c.arguments.visit_payloads(options, out);
                values(&mut c.memo, out);
                headers(&mut c.headers, options, out);
                // c.search_attributes: never visited.
            }
            Variant::CancelWorkflowExecution(c) => c.details.visit_payloads(options, out),
            Variant::StartChildWorkflowExecution(c) => {
                c.input.visit_payloads(options, out);
                headers(&mut c.headers, options, out);
                values(&mut c.memo, out);
                // c.search_attributes: never visited.
            }
            Variant::SignalExternalWorkflowExecution(s) => {
                s.args.visit_payloads(options, out);
                headers(&mut s.headers, options, out);
            }
            Variant::ModifyWorkflowProperties(m) => m.upserted_memo.visit_payloads(options, out),
            Variant::UpdateResponse(u) => {
                use cmd::update_response::Response;
                match &mut u.response {
                    Some(Response::Rejected(f)) => f.visit_payloads(options, out),
                    Some(Response::Completed(p)) => out.push(p),
                    Some(Response::Accepted(())) | None => {}
                }
            }
            Variant::ScheduleNexusOperation(n) => n.input.visit_payloads(options, out),
            Variant::StartTimer(_)
            | Variant::CancelTimer(_)
            | Variant::RequestCancelActivity(_)
            | Variant::RequestCancelLocalActivity(_)
            | Variant::SetPatchMarker(_)
            | Variant::CancelChildWorkflowExecution(_)
            | Variant::RequestCancelExternalWorkflowExecution(_)
            | Variant::CancelSignalWorkflow(_)
            | Variant::UpsertWorkflowSearchAttributes(_)
            | Variant::RequestCancelNexusOperation(_) => {}
        }
    }
}

// ----- Activities -----

impl VisitPayloads for activity_task::ActivityTask {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        if let Some(activity_task::activity_task::Variant::Start(s)) = &mut self.variant {
            headers(&mut s.header_fields, options, out);
            s.input.visit_payloads(options, out);
            s.heartbeat_details.visit_payloads(options, out);
        }
    }
}

impl VisitPayloads for activity_result::ActivityExecutionResult {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        use activity_result::activity_execution_result::Status;
        match &mut self.status {
            Some(Status::Completed(s)) => s.result.visit_payloads(options, out),
            Some(Status::Failed(f)) => f.failure.visit_payloads(options, out),
            Some(Status::Cancelled(c)) => c.failure.visit_payloads(options, out),
            Some(Status::WillCompleteAsync(_)) | None => {}
        }
    }
}

impl VisitPayloads for coresdk::ActivityTaskCompletion {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        self.result.visit_payloads(options, out);
    }
}

impl VisitPayloads for coresdk::ActivityHeartbeat {
    fn visit_payloads<'a>(&'a mut self, options: &VisitOptions, out: &mut Vec<&'a mut Payload>) {
        self.details.visit_payloads(options, out);
    }
}
