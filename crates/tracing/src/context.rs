//! W3C trace context: the ids, the `traceparent` text, the Temporal header that carries it, and
//! the context of the Trellis span a task is running in.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use trellis_core_proto::Payload;
use trellis_core_proto::payload::{encoding, new_payload};
use trellis_worker::interceptors::Headers;

/// The Temporal header that carries the trace context: the name the OpenTelemetry interceptors
/// of the Python and TypeScript SDKs use, so traces cross SDKs.
///
/// Its payload is `json/plain`: a JSON object (the propagator's carrier) with a `traceparent`
/// entry, e.g. `{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`.
pub const TRACER_HEADER: &str = "_tracer-data";

/// The Nexus header that carries the trace context on Nexus requests: W3C `traceparent`
/// itself (Nexus headers are strings, so no payload wraps it), as the Python SDK's
/// OpenTelemetry interceptor writes it.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The `traceparent` flag bit meaning "sampled".
pub const FLAG_SAMPLED: u8 = 0x01;

/// The identity of one span within one trace, as W3C trace context carries it: a 128-bit trace
/// id, a 64-bit span id (neither zero) and the trace flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TraceContext")
            .field(&format_args!("{}", self.traceparent()))
            .finish()
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

impl TraceContext {
    /// A context from its parts; `None` when either id is zero (W3C's invalid ids).
    pub fn new(trace_id: u128, span_id: u64, flags: u8) -> Option<Self> {
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The trace id.
    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    /// The span id.
    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The trace id as 32 lowercase hex digits, as span fields record it.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id as 16 lowercase hex digits, as span fields record it.
    pub fn span_id_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// The W3C `traceparent` value: `00-<trace id>-<span id>-<flags>`.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }

    /// Parses a W3C `traceparent` value. Invalid values (wrong lengths, upper-case or non-hex
    /// digits, zero ids, version `ff`, extra parts in version `00`) give `None`, as the
    /// specification asks.
    pub fn parse_traceparent(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        let rest = parts.next();
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if !hex(version, 2) || version == "ff" || (version == "00" && rest.is_some()) {
            return None;
        }
        if !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return None;
        }
        Self::new(
            u128::from_str_radix(trace, 16).ok()?,
            u64::from_str_radix(span, 16).ok()?,
            u8::from_str_radix(flags, 16).ok()?,
        )
    }

    /// A new trace's root span, with random ids.
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero_random(),
            span_id: nonzero_random(),
            flags: FLAG_SAMPLED,
        }
    }

    /// A child span of this one: the same trace and flags, a random span id.
    pub fn new_child(&self) -> Self {
        self.child_with_id(nonzero_random())
    }

    /// A child span of `parent` if there is one, else a new root; random ids.
    pub fn child_or_root(parent: Option<&Self>) -> Self {
        parent.map_or_else(Self::new_root, Self::new_child)
    }

    /// A child span of this one with the given span id (zero becomes one).
    pub(crate) fn child_with_id(&self, span_id: u64) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: span_id.max(1),
            flags: self.flags,
        }
    }

    /// The context of the Trellis span this task runs in: set while an activity runs (so client
    /// calls made from an activity join the workflow's trace) and by [`TraceContext::scope`].
    /// Client calls made while one is set become its children.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(|c| *c).ok()
    }

    /// Runs `f` with `self` as [`TraceContext::current`], e.g. to make client calls part of a
    /// trace that started elsewhere.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// Like [`TraceContext::scope`], returning the future without awaiting it (and so keeping
    /// its `Send`-ness).
    pub(crate) fn scoped<F: Future>(self, f: F) -> tokio::task::futures::TaskLocalFuture<Self, F> {
        CURRENT.scope(self, f)
    }

    /// Runs a synchronous `f` with `self` as [`TraceContext::current`].
    pub(crate) fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// Reads the context from Temporal headers: the `traceparent` of the [`TRACER_HEADER`]
    /// payload's JSON object. `None` when the header is missing or does not hold a valid one.
    pub fn from_headers(headers: &Headers) -> Option<Self> {
        from_payload(headers.get(TRACER_HEADER)?)
    }

    /// Reads the context from Nexus headers (strings): the W3C [`TRACEPARENT_HEADER`], as the
    /// Python SDK's OpenTelemetry interceptor writes it on Nexus requests.
    pub fn from_nexus_headers(headers: &std::collections::HashMap<String, String>) -> Option<Self> {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(TRACEPARENT_HEADER))
            .and_then(|(_, v)| Self::parse_traceparent(v))
    }

    /// Writes the context into Nexus headers as the W3C [`TRACEPARENT_HEADER`], replacing any
    /// earlier one.
    pub fn inject_nexus(&self, headers: &mut std::collections::HashMap<String, String>) {
        headers.retain(|k, _| !k.eq_ignore_ascii_case(TRACEPARENT_HEADER));
        headers.insert(TRACEPARENT_HEADER.to_owned(), self.traceparent());
    }

    /// Writes the context into Temporal headers as the [`TRACER_HEADER`] payload
    /// (`json/plain`, `{"traceparent":"…"}`), replacing any earlier one.
    pub fn inject(&self, headers: &mut Headers) {
        headers.insert(TRACER_HEADER.to_owned(), self.to_payload());
    }

    /// The [`TRACER_HEADER`] payload for this context.
    pub fn to_payload(&self) -> Payload {
        let carrier = BTreeMap::from([("traceparent", self.traceparent())]);
        let data = serde_json::to_vec(&carrier).expect("a map of strings serializes");
        new_payload(encoding::JSON, data)
    }
}

/// Reads a `traceparent` from a [`TRACER_HEADER`] payload. The payload's data must be a JSON
/// object; other entries (e.g. `tracestate`) are ignored.
fn from_payload(payload: &Payload) -> Option<TraceContext> {
    let carrier: serde_json::Value = serde_json::from_slice(&payload.data).ok()?;
    TraceContext::parse_traceparent(carrier.get("traceparent")?.as_str()?)
}

/// A random non-zero id from the thread's OS-seeded generator. Never called from workflow code.
fn nonzero_random<T: Default + PartialEq>() -> T
where
    rand::distr::StandardUniform: rand::distr::Distribution<T>,
{
    loop {
        let v: T = rand::random();
        if v != T::default() {
            return v;
        }
    }
}

/// Deterministic ids: a stable 64-bit hash of a run id, a purpose and a number, so the same run
/// gets the same ids on every replay, on any worker and any build (unlike `std`'s hasher, whose
/// algorithm may change between Rust releases).
pub(crate) fn derive_id(run_id: &str, purpose: &str, n: u64) -> u64 {
    // FNV-1a over the inputs (each followed by a separator), then the splitmix64 finalizer to
    // spread the bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(run_id.as_bytes());
    eat(purpose.as_bytes());
    eat(&n.to_le_bytes());
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    z.max(1)
}

/// A deterministic 128-bit trace id for a run that no caller traced.
pub(crate) fn derive_trace_id(run_id: &str) -> u128 {
    let hi = derive_id(run_id, "trace-hi", 0);
    let lo = derive_id(run_id, "trace-lo", 0);
    (u128::from(hi) << 64) | u128::from(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips() {
        let c = TraceContext::parse_traceparent(EXAMPLE).unwrap();
        assert_eq!(c.trace_id(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(c.span_id(), 0x00f067aa0ba902b7);
        assert_eq!(c.flags(), FLAG_SAMPLED);
        assert_eq!(c.traceparent(), EXAMPLE);
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_id_hex(), "00f067aa0ba902b7");
        // Ids with leading zeros keep their width.
        let small = TraceContext::new(1, 2, 0).unwrap();
        assert_eq!(
            small.traceparent(),
            "00-00000000000000000000000000000001-0000000000000002-00"
        );
        assert_eq!(
            TraceContext::parse_traceparent(&small.traceparent()),
            Some(small)
        );
        // A later version may append parts; the first four are read.
        assert!(TraceContext::parse_traceparent(&format!("01{}-extra", &EXAMPLE[2..])).is_some());
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bx-01",
        ] {
            assert_eq!(TraceContext::parse_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn header_is_a_json_plain_carrier_with_traceparent() {
        let c = TraceContext::parse_traceparent(EXAMPLE).unwrap();
        let mut headers = Headers::new();
        c.inject(&mut headers);
        let p = &headers[TRACER_HEADER];
        assert_eq!(p.metadata["encoding"], b"json/plain");
        assert_eq!(
            std::str::from_utf8(&p.data).unwrap(),
            format!(r#"{{"traceparent":"{EXAMPLE}"}}"#)
        );
        assert_eq!(TraceContext::from_headers(&headers), Some(c));
    }

    #[test]
    fn reads_carriers_written_by_other_sdks() {
        // What Python's `temporalio.contrib.opentelemetry` writes: the propagator's carrier,
        // possibly with `tracestate`, through the default JSON converter.
        let data = format!(r#"{{"traceparent": "{EXAMPLE}", "tracestate": "congo=t61rcWkgMzE"}}"#);
        let mut headers = Headers::new();
        headers.insert(
            TRACER_HEADER.into(),
            new_payload(encoding::JSON, data.into_bytes()),
        );
        let c = TraceContext::from_headers(&headers).unwrap();
        assert_eq!(c.traceparent(), EXAMPLE);

        for junk in [&b"not json"[..], b"[1,2]", b"{\"traceparent\": 7}", b"{}"] {
            headers.insert(
                TRACER_HEADER.into(),
                new_payload(encoding::JSON, junk.to_vec()),
            );
            assert_eq!(TraceContext::from_headers(&headers), None);
        }
        assert_eq!(TraceContext::from_headers(&Headers::new()), None);
    }

    #[test]
    fn random_ids_differ_and_children_keep_the_trace() {
        let a = TraceContext::new_root();
        let b = TraceContext::new_root();
        assert_ne!(a.trace_id(), b.trace_id());
        let child = a.new_child();
        assert_eq!(child.trace_id(), a.trace_id());
        assert_ne!(child.span_id(), a.span_id());
        assert_eq!(child.flags(), a.flags());
        let unsampled = TraceContext::new(5, 6, 0).unwrap();
        assert_eq!(unsampled.new_child().flags(), 0);
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let run = "3f2a0d8e-7f7e-4b39-9c3f-1b1f3c2c6f10";
        assert_eq!(
            derive_id(run, "StartActivity", 1),
            derive_id(run, "StartActivity", 1)
        );
        // Pinned: the algorithm must not change, or replays on a newer build would propagate
        // other ids than the original run did.
        assert_eq!(derive_id("run", "RunWorkflow", 0), 0xdbc7_17d4_dafd_6703);
        let mut seen = std::collections::HashSet::new();
        for purpose in ["RunWorkflow", "StartActivity", "HandleSignal"] {
            for n in 0..100 {
                assert!(seen.insert(derive_id(run, purpose, n)));
            }
        }
        assert!(seen.insert(derive_id("another run", "RunWorkflow", 0)));
        assert_ne!(derive_trace_id(run), derive_trace_id("another run"));
        assert_ne!(derive_trace_id(run), 0);
    }

    #[test]
    fn current_is_set_only_inside_a_scope() {
        let c = TraceContext::new_root();
        assert_eq!(TraceContext::current(), None);
        let seen = futures::executor::block_on(c.scope(async { TraceContext::current() }));
        assert_eq!(seen, Some(c));
        assert_eq!(c.sync_scope(TraceContext::current), Some(c));
        assert_eq!(TraceContext::current(), None);
    }
}
