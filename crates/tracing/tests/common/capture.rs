//! A `tracing_subscriber` layer that records every span's name, fields and parent, shared by the
//! unit tests (through `#[path]`) and the integration tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// One span as a subscriber saw it.
#[derive(Clone, Debug)]
pub(crate) struct SpanRecord {
    /// The span's static name.
    pub(crate) name: &'static str,
    /// Every field that has a value, as text.
    pub(crate) fields: BTreeMap<String, String>,
    /// The index (in [`Capture::spans`]) of the `tracing` parent span, if any.
    pub(crate) parent: Option<usize>,
    /// Whether the span has closed.
    pub(crate) closed: bool,
}

impl SpanRecord {
    /// A field's value; panics with the span when it is missing.
    pub(crate) fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("span has no field {name:?}: {self:?}"))
    }

    /// A field's value, if recorded.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// `otel.name`, the span's full name.
    pub(crate) fn full_name(&self) -> &str {
        self.field("otel.name")
    }
}

#[derive(Default)]
struct State {
    spans: Vec<SpanRecord>,
    /// Live `tracing` ids (reused once a span closes) to indexes in `spans`.
    live: HashMap<u64, usize>,
}

/// The recording layer. Clones share what they record.
#[derive(Clone, Default)]
pub(crate) struct Capture {
    state: Arc<Mutex<State>>,
}

impl Capture {
    /// Every span recorded so far, in creation order.
    pub(crate) fn spans(&self) -> Vec<SpanRecord> {
        self.state.lock().unwrap().spans.clone()
    }

    /// A subscriber made of the registry and this layer.
    pub(crate) fn subscriber(&self) -> impl Subscriber + Send + Sync + 'static {
        use tracing_subscriber::layer::SubscriberExt;
        tracing_subscriber::registry().with(self.clone())
    }
}

fn ours(metadata: &Metadata<'_>) -> bool {
    metadata.target() == "trellis_tracing"
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // Only the interceptor's spans: the engine's own (many, some at TRACE level) are neither
    // recorded nor built.
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if ours(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        ours(metadata)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent_id = ctx
            .span(id)
            .and_then(|s| s.parent().map(|p| p.id().into_u64()));
        let mut st = self.state.lock().unwrap();
        let parent = parent_id.and_then(|p| st.live.get(&p).copied());
        let index = st.spans.len();
        st.spans.push(SpanRecord {
            name: attrs.metadata().name(),
            fields,
            parent,
            closed: false,
        });
        st.live.insert(id.into_u64(), index);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut st = self.state.lock().unwrap();
        if let Some(&i) = st.live.get(&id.into_u64()) {
            values.record(&mut Fields(&mut st.spans[i].fields));
        }
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        let mut st = self.state.lock().unwrap();
        if let Some(i) = st.live.remove(&id.into_u64()) {
            st.spans[i].closed = true;
        }
    }
}
