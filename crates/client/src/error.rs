use trellis_converter::{ApplicationFailure, ConversionError, FailureConverter};
use trellis_core_proto::Failure;
use trellis_core_proto::api::enums::v1::WorkflowExecutionStatus;

/// Anything a client call can fail with. Each variant names the cause.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be set up.
    #[error("cannot connect to Temporal at {address}: {cause}")]
    Connect {
        /// The configured address.
        address: String,
        /// What went wrong.
        cause: String,
    },
    /// The server (or a layer of the gRPC stack) refused an RPC.
    #[error("{operation} failed: {} ({:?})", status.message(), status.code())]
    Rpc {
        /// The client operation (e.g. `start_workflow`).
        operation: &'static str,
        /// The gRPC status.
        status: tonic::Status,
    },
    /// A value could not be converted.
    #[error(transparent)]
    Conversion(#[from] ConversionError),
    /// The workflow did not complete successfully.
    #[error(transparent)]
    Workflow(Box<WorkflowFailure>),
    /// A payload codec (e.g. encryption) could not encode or decode the call's payloads.
    #[error("{operation}: payload codec error: {cause}")]
    Codec {
        /// The client operation.
        operation: &'static str,
        /// The codec's error (names the key id for encryption).
        cause: trellis_converter::CodecError,
    },
    /// A client interceptor (call layer) failed the call.
    #[error("a client interceptor failed {operation}: {cause}")]
    Interceptor {
        /// The client operation.
        operation: &'static str,
        /// The interceptor's error.
        cause: trellis_interceptor::BoxError,
    },
    /// A plugin's hook failed.
    #[error("plugin {plugin:?} failed in {hook}: {cause}")]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// The hook (`configure_client`, `connect_service_client`, …).
        hook: &'static str,
        /// The hook's error.
        cause: trellis_interceptor::BoxError,
    },
    /// The workflow rejected or failed a query.
    #[error("query {query:?} failed: {message}")]
    Query {
        /// The query name.
        query: String,
        /// The failure message from the workflow or server.
        message: String,
    },
    /// The workflow rejected an update (its validator, or no handler) or its handler failed.
    #[error("update {update:?} failed: {}", failure_chain(failure))]
    Update {
        /// The update name.
        update: String,
        /// The failure the workflow reported (decoded).
        failure: Box<Failure>,
    },
}

fn failure_chain(f: &Failure) -> String {
    let mut parts = Vec::new();
    let mut cur = Some(f);
    while let Some(f) = cur {
        if !f.message.is_empty() {
            parts.push(f.message.clone());
        }
        cur = f.cause.as_deref();
    }
    parts.join(": ")
}

impl From<WorkflowFailure> for ClientError {
    fn from(f: WorkflowFailure) -> Self {
        Self::Workflow(Box::new(f))
    }
}

impl ClientError {
    /// Recovers a client error that crossed a boxed service stack; any other error is an
    /// interceptor's.
    pub(crate) fn from_boxed(err: trellis_interceptor::BoxError) -> Self {
        match err.downcast::<ClientError>() {
            Ok(e) => *e,
            Err(cause) => Self::Interceptor {
                operation: "client call",
                cause,
            },
        }
    }

    pub(crate) fn unexpected(operation: &'static str, response: &dyn std::fmt::Debug) -> Self {
        Self::Interceptor {
            operation,
            cause: format!("an interceptor answered with an unexpected response: {response:?}")
                .into(),
        }
    }

    pub(crate) fn rpc(operation: &'static str) -> impl FnOnce(tonic::Status) -> Self {
        move |status| Self::Rpc { operation, status }
    }

    /// The gRPC status, if this is an RPC error.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Self::Rpc { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// A workflow that closed without a result: failed, cancelled, terminated or timed out.
#[derive(Debug, Clone)]
pub struct WorkflowFailure {
    /// The workflow id.
    pub workflow_id: String,
    /// The run that closed.
    pub run_id: String,
    /// How it closed.
    pub status: WorkflowExecutionStatus,
    /// The failure recorded in the close event, if any (failed workflows always have one).
    pub failure: Option<Failure>,
    /// The reason given on termination.
    pub reason: Option<String>,
}

impl WorkflowFailure {
    /// The application failure the workflow raised (or the first one in the cause chain).
    pub fn application_failure(&self) -> Option<ApplicationFailure> {
        self.failure
            .as_ref()
            .and_then(|f| FailureConverter::default().failure_to_application(f))
    }

    /// The failure message chain, outermost first, joined with `: `.
    pub fn message(&self) -> String {
        let mut parts = Vec::new();
        let mut cur = self.failure.as_ref();
        while let Some(f) = cur {
            parts.push(f.message.clone());
            cur = f.cause.as_deref();
        }
        parts.join(": ")
    }
}

impl std::fmt::Display for WorkflowFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.status {
            WorkflowExecutionStatus::Failed => "failed",
            WorkflowExecutionStatus::Canceled => "was cancelled",
            WorkflowExecutionStatus::Terminated => "was terminated",
            WorkflowExecutionStatus::TimedOut => "timed out",
            _ => "closed without a result",
        };
        write!(
            f,
            "workflow {} (run {}) {how}",
            self.workflow_id, self.run_id
        )?;
        if let Some(reason) = &self.reason
            && !reason.is_empty()
        {
            write!(f, ": {reason}")?;
        }
        let msg = self.message();
        if !msg.is_empty() {
            write!(f, ": {msg}")?;
        }
        if let Some(app) = self.application_failure()
            && !app.error_type.is_empty()
        {
            write!(f, " (type {})", app.error_type)?;
        }
        Ok(())
    }
}

impl std::error::Error for WorkflowFailure {}

/// An error's message followed by its sources' (each added once), joined with `: `.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg.push_str(": ");
            msg.push_str(&s_msg);
        }
        src = s.source();
    }
    msg
}
