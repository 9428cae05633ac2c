//! Temporal's API and core protocol types for Trellis, with the small helpers every other Trellis
//! crate needs.
//!
//! # Structure
//!
//! - [`api`]: the Temporal API (`temporal.api.*`), e.g. [`api::common::v1::Payload`].
//! - [`coresdk`]: the protocol between Temporal's core engine and a language layer
//!   (activations, commands, activity tasks).
//! - [`payload`]: building and reading [`Payload`]s by encoding.
//! - [`json`]: histories as JSON, in the CLI/UI and proto3-JSON forms.
//! - [`time`]: conversions between [`std::time`] and the protobuf `Duration`/`Timestamp`.
//!
//! The definitions are the official compiled ones (`temporalio-protos`); Trellis never copies
//! Temporal's `.proto` files.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod json;
pub mod payload;
pub mod time;

#[doc(inline)]
pub use temporalio_protos::temporal::api;
#[doc(inline)]
pub use temporalio_protos::{coresdk, grpc};

/// The protobuf well-known types used by the Temporal protos (`Duration`, `Timestamp`, …).
pub use prost_wkt_types as wkt;

#[doc(inline)]
pub use api::common::v1::{Header, Payload, Payloads};
#[doc(inline)]
pub use api::failure::v1::Failure;
#[doc(inline)]
pub use api::history::v1::History;
pub use payload::PayloadExt;

/// Encodes a protobuf message to bytes.
pub fn encode_message<M: prost::Message>(message: &M) -> Vec<u8> {
    message.encode_to_vec()
}

/// Decodes a [`Payload`] from its protobuf bytes.
pub fn decode_payload(bytes: &[u8]) -> Result<Payload, prost::DecodeError> {
    <Payload as prost::Message>::decode(bytes)
}
