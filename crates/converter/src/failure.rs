//! Rust errors ↔ Temporal [`Failure`]s.

use std::time::Duration;

use trellis_core_proto::api::failure::v1::{ApplicationFailureInfo, failure::FailureInfo};
use trellis_core_proto::{Failure, Payload, Payloads};

/// An application error: the failure a workflow or activity raises on purpose. It reaches the
/// caller (in any SDK) with its type, message, retryability and details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplicationFailure {
    /// The error's type name; retry policies can list types that are not retried.
    pub error_type: String,
    /// A human-readable message.
    pub message: String,
    /// When true, the activity or workflow is not retried whatever its retry policy says.
    pub non_retryable: bool,
    /// Extra values, already encoded.
    pub details: Vec<Payload>,
    /// Overrides the retry policy's next delay for this attempt.
    pub next_retry_delay: Option<Duration>,
    /// The stack trace or context text, if any.
    pub stack_trace: String,
}

impl ApplicationFailure {
    /// A retryable application error with a type and message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
            ..Self::default()
        }
    }

    /// The same error, marked non-retryable.
    pub fn non_retryable(mut self) -> Self {
        self.non_retryable = true;
        self
    }
}

impl std::fmt::Display for ApplicationFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.error_type.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.error_type, self.message)
        }
    }
}

impl std::error::Error for ApplicationFailure {}

/// Turns errors into Temporal failures and back. The default writes every failure in the shape
/// the other SDKs write (`source` = "TrellisSDK", application failure info with type and
/// retryability).
#[derive(Debug, Clone)]
pub struct FailureConverter {
    source: String,
}

impl Default for FailureConverter {
    fn default() -> Self {
        Self {
            source: "TrellisSDK".to_owned(),
        }
    }
}

impl FailureConverter {
    /// An application failure as a Temporal failure.
    pub fn application_to_failure(&self, app: &ApplicationFailure) -> Failure {
        Failure {
            message: app.message.clone(),
            source: self.source.clone(),
            stack_trace: app.stack_trace.clone(),
            failure_info: Some(FailureInfo::ApplicationFailureInfo(
                ApplicationFailureInfo {
                    r#type: app.error_type.clone(),
                    non_retryable: app.non_retryable,
                    details: (!app.details.is_empty()).then(|| Payloads {
                        payloads: app.details.clone(),
                    }),
                    next_retry_delay: app
                        .next_retry_delay
                        .map(trellis_core_proto::time::to_proto_duration),
                    category: 0,
                },
            )),
            ..Failure::default()
        }
    }

    /// Any error as a Temporal failure: an [`ApplicationFailure`] keeps its fields; any other
    /// error becomes a retryable application failure whose type is the error's Rust type name
    /// and whose message is its `Display` chain.
    pub fn error_to_failure(&self, err: &(dyn std::error::Error + 'static)) -> Failure {
        if let Some(app) = err.downcast_ref::<ApplicationFailure>() {
            return self.application_to_failure(app);
        }
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        self.application_to_failure(&ApplicationFailure::new("Error", message))
    }

    /// Reads an application failure back out of a Temporal failure (or its first application
    /// cause). `None` when the failure holds no application failure.
    pub fn failure_to_application(&self, failure: &Failure) -> Option<ApplicationFailure> {
        let mut current = Some(failure);
        while let Some(f) = current {
            if let Some(FailureInfo::ApplicationFailureInfo(info)) = &f.failure_info {
                return Some(ApplicationFailure {
                    error_type: info.r#type.clone(),
                    message: f.message.clone(),
                    non_retryable: info.non_retryable,
                    details: info.details.clone().map(|d| d.payloads).unwrap_or_default(),
                    next_retry_delay: info
                        .next_retry_delay
                        .as_ref()
                        .map(trellis_core_proto::time::from_proto_duration),
                    stack_trace: f.stack_trace.clone(),
                });
            }
            current = f.cause.as_deref();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_failure_round_trip() {
        let fc = FailureConverter::default();
        let app = ApplicationFailure {
            next_retry_delay: Some(Duration::from_secs(3)),
            ..ApplicationFailure::new("PaymentDeclined", "card expired").non_retryable()
        };
        let f = fc.application_to_failure(&app);
        assert_eq!(f.message, "card expired");
        assert_eq!(fc.failure_to_application(&f), Some(app));
    }

    #[test]
    fn plain_errors_keep_their_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let fc = FailureConverter::default();
        let f = fc.error_to_failure(&Outer(std::io::Error::other("disk full")));
        assert_eq!(f.message, "outer: disk full");
        let app = fc.failure_to_application(&f).unwrap();
        assert!(!app.non_retryable);
    }
}
