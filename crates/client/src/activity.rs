//! Completing activities asynchronously: an activity function can return saying it will
//! complete later, and anything holding a [`Client`] finishes it by task token or by ids.

use serde::Serialize;
use trellis_converter::IntoPayloads;

use crate::client::Client;
use crate::error::ClientError;
use crate::interceptors::{
    ActivityHeartbeatResponse, AsyncActivityCall, AsyncActivityId, ClientCall, ClientCallResponse,
    FailActivityCall,
};

/// A handle to an activity that completes asynchronously; from
/// [`Client::async_activity_handle`]. Each method is one [`ClientCall`] through the client-call
/// stack. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AsyncActivityHandle {
    client: Client,
    activity: AsyncActivityId,
}

impl AsyncActivityHandle {
    pub(crate) fn new(client: Client, activity: AsyncActivityId) -> Self {
        Self { client, activity }
    }

    /// Which activity this handle completes.
    pub fn activity(&self) -> &AsyncActivityId {
        &self.activity
    }

    /// Records a heartbeat with details (a tuple, or `()` for none). The answer says whether
    /// cancellation was requested; then stop and call
    /// [`report_cancellation`](Self::report_cancellation).
    pub async fn heartbeat(
        &self,
        details: impl IntoPayloads,
    ) -> Result<ActivityHeartbeatResponse, ClientError> {
        let details = self.client.data_converter().encode_args(details)?;
        let call = ClientCall::HeartbeatActivity(AsyncActivityCall {
            activity: self.activity.clone(),
            details,
        });
        match self.client.call(call).await? {
            ClientCallResponse::ActivityHeartbeat(r) => Ok(r),
            other => Err(ClientError::unexpected("heartbeat_activity", &other)),
        }
    }

    /// Completes the activity with a result.
    pub async fn complete<T: Serialize + ?Sized>(&self, result: &T) -> Result<(), ClientError> {
        let result = vec![self.client.data_converter().encode(result)?];
        self.client
            .call(ClientCall::CompleteActivity(AsyncActivityCall {
                activity: self.activity.clone(),
                details: result,
            }))
            .await?;
        Ok(())
    }

    /// Fails the activity attempt with an error (an `ApplicationFailure` keeps its type,
    /// retryability and details; any other error becomes a retryable failure with its
    /// message), recording heartbeat details (a tuple, or `()` for none) the next attempt
    /// reads. The activity's retry policy decides whether it runs again.
    pub async fn fail(
        &self,
        error: &(dyn std::error::Error + 'static),
        last_heartbeat_details: impl IntoPayloads,
    ) -> Result<(), ClientError> {
        let dc = self.client.data_converter();
        let call = ClientCall::FailActivity(FailActivityCall {
            activity: self.activity.clone(),
            failure: Box::new(dc.failures().error_to_failure(error)),
            last_heartbeat_details: dc.encode_args(last_heartbeat_details)?,
        });
        self.client.call(call).await?;
        Ok(())
    }

    /// Reports that the activity accepted a cancellation request, with details (a tuple, or
    /// `()` for none).
    pub async fn report_cancellation(&self, details: impl IntoPayloads) -> Result<(), ClientError> {
        let details = self.client.data_converter().encode_args(details)?;
        self.client
            .call(ClientCall::ReportActivityCancellation(AsyncActivityCall {
                activity: self.activity.clone(),
                details,
            }))
            .await?;
        Ok(())
    }
}
