//! The metrics pontoon-family records: their names and descriptions in one place, and the
//! per-family timers a registry keeps so that a serialize builds no metric key.
//!
//! Recording goes through the [`metrics`] facade: the application installs a recorder (a
//! Prometheus exporter, say) and calls [`describe`]; with none installed nothing is timed at
//! all. The table of every pontoon metric is `docs/observability.md`.

use std::sync::{LazyLock, OnceLock};

use metrics::{Histogram, Key, Label, Level, Metadata, Recorder, SharedString, Unit};

/// Seconds a registry spends turning a value into a message, per family (label `family`):
/// the whole serialize, from the value to the message, for the family that took it.
pub const SERIALIZE_SECONDS: &str = "pontoon_family_serialize_seconds";

/// Seconds a registry spends turning a message into a value, per family (label `family`):
/// the whole deserialize of a message that was accepted and read.
pub const DESERIALIZE_SECONDS: &str = "pontoon_family_deserialize_seconds";

/// The label naming the family.
pub const FAMILY_LABEL: &str = "family";

/// Describes this crate's metrics to the installed recorder (units and help text, as a
/// Prometheus exporter prints them). Call it once after installing the recorder.
///
/// ```
/// pontoon_family::metrics::describe(); // with no recorder installed, does nothing
/// assert!(pontoon_family::metrics::SERIALIZE_SECONDS.starts_with("pontoon_family_"));
/// ```
pub fn describe() {
    metrics::describe_histogram!(
        SERIALIZE_SECONDS,
        Unit::Seconds,
        "Time to serialize a value into a message, per family."
    );
    metrics::describe_histogram!(
        DESERIALIZE_SECONDS,
        Unit::Seconds,
        "Time to deserialize an accepted message into a value, per family."
    );
}

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Whether a recorder is installed for this thread (local or global): the facade's own
/// no-op recorder is the only zero-sized one it hands out, so its size says so without a
/// registration. A zero-sized recorder of the application's own is taken for none (and gets
/// no timings); every real recorder keeps state.
fn recording_to(recorder: &dyn Recorder) -> bool {
    std::mem::size_of_val(recorder) != 0
}

/// The CPU's cycle counter, scaled to nanoseconds (calibrated once, at the first timing): two
/// reads of `std::time::Instant` cost more than a small serialize does.
static CLOCK: LazyLock<quanta::Clock> = LazyLock::new(quanta::Clock::new);

/// When a serialize or deserialize started, in the clock's raw units.
#[derive(Clone, Copy)]
pub(crate) struct Started(u64);

/// The time a serialize or deserialize starts, if anything will record it: no clock is read
/// when no recorder is installed.
#[inline]
pub(crate) fn start() -> Option<Started> {
    metrics::with_recorder(recording_to).then(|| Started(CLOCK.raw()))
}

/// Which recorder a handle belongs to: its address (a global recorder's never changes).
fn identity(recorder: &dyn Recorder) -> usize {
    (recorder as *const dyn Recorder).cast::<()>() as usize
}

/// One family's histograms, registered once with the first recorder that records them.
pub(crate) struct Timers {
    family: SharedString,
    cached: OnceLock<Handles>,
}

struct Handles {
    recorder: usize,
    serialize: Histogram,
    deserialize: Histogram,
}

impl Timers {
    pub(crate) const fn new(family: SharedString) -> Timers {
        Timers {
            family,
            cached: OnceLock::new(),
        }
    }

    fn register(&self, recorder: &dyn Recorder) -> Handles {
        let key = |name| Key::from_parts(name, vec![Label::new(FAMILY_LABEL, self.family.clone())]);
        Handles {
            recorder: identity(recorder),
            serialize: recorder.register_histogram(&key(SERIALIZE_SECONDS), &METADATA),
            deserialize: recorder.register_histogram(&key(DESERIALIZE_SECONDS), &METADATA),
        }
    }

    /// Records the time since `start` with the current recorder: through the cached handles
    /// when they are that recorder's (the usual case: one global recorder), else through
    /// handles registered for this call (a second recorder, such as a test's local one).
    fn record(&self, start: Started, pick: fn(&Handles) -> &Histogram) {
        let seconds = CLOCK.delta_as_nanos(start.0, CLOCK.raw()) as f64 * 1e-9;
        metrics::with_recorder(|recorder| {
            let id = identity(recorder);
            let cached = self.cached.get_or_init(|| self.register(recorder));
            if cached.recorder == id {
                pick(cached).record(seconds);
            } else {
                pick(&self.register(recorder)).record(seconds);
            }
        });
    }

    pub(crate) fn serialized(&self, start: Started) {
        self.record(start, |h| &h.serialize);
    }

    pub(crate) fn deserialized(&self, start: Started) {
        self.record(start, |h| &h.deserialize);
    }
}

/// The built-in families' timers (their names are fixed, so one pair serves every registry).
pub(crate) static CUSTOM_TIMERS: Timers = Timers::new(SharedString::const_str(crate::CUSTOM));
pub(crate) static SERDE_TIMERS: Timers = Timers::new(SharedString::const_str(crate::SERDE));
