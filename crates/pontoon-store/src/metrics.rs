//! The metrics pontoon-store records through the `metrics` facade: their names, their
//! descriptions, and the handles a store registers once, which keep its gauges current as its
//! objects come and go.
//!
//! Nothing is recorded anywhere unless the application installs a recorder (for example
//! `metrics-exporter-prometheus`'s, as `pontoon store serve --metrics` does). The gauges move by
//! each change (never set from a count), so several stores in one process add up, and a store
//! that goes away takes what it held off them. The names follow `pontoon_<area>_<what>_<unit>`;
//! `docs/observability.md` lists them.
//!
//! ```
//! pontoon_store::metrics::describe();
//! assert_eq!(pontoon_store::metrics::OBJECTS, "pontoon_store_objects");
//! ```

use ::metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

/// Gauge: sealed objects in the process's stores (in memory or on disk).
pub const OBJECTS: &str = "pontoon_store_objects";
/// Gauge: bytes of those objects, as [`StoreStats::sealed_bytes`](crate::StoreStats) counts them.
pub const BYTES: &str = "pontoon_store_bytes";
/// Gauge: sealed objects a daemon's client pins (gets it holds and has not released).
pub const PINNED_OBJECTS: &str = "pontoon_store_pinned_objects";
/// Gauge: bytes of the pinned objects.
pub const PINNED_BYTES: &str = "pontoon_store_pinned_bytes";
/// Gauge: objects on disk (spilled, or created there).
pub const SPILLED_OBJECTS: &str = "pontoon_store_spilled_objects";
/// Gauge: bytes of the objects on disk.
pub const SPILLED_BYTES: &str = "pontoon_store_spilled_bytes";
/// Counter: objects written to spill files.
pub const SPILLS: &str = "pontoon_store_spills_total";
/// Counter: bytes of the objects written to spill files.
pub const SPILL_BYTES: &str = "pontoon_store_spill_bytes_total";
/// Histogram: seconds each batch of spills took to write.
pub const SPILL_SECONDS: &str = "pontoon_store_spill_seconds";
/// Counter: spilled objects read back from their files (a get or take of an object on disk).
pub const RESTORES: &str = "pontoon_store_restores_total";
/// Counter: bytes of the objects read back.
pub const RESTORE_BYTES: &str = "pontoon_store_restore_bytes_total";
/// Histogram: seconds each read back took (mapping and, the first time, checking the record).
pub const RESTORE_SECONDS: &str = "pontoon_store_restore_seconds";
/// Gauge: clients connected to the process's store daemons.
pub const CLIENTS: &str = "pontoon_store_clients";
/// Counter: connections a daemon refused (another user's, or past `max_clients`).
pub const REFUSALS: &str = "pontoon_store_refusals_total";

/// Gives every metric above its unit and help text in the installed recorder. Call it once
/// after installing a recorder; recording works without it.
///
/// ```
/// pontoon_store::metrics::describe();
/// ```
pub fn describe() {
    describe_gauge!(
        OBJECTS,
        Unit::Count,
        "Sealed objects in the store (memory or disk)."
    );
    describe_gauge!(
        BYTES,
        Unit::Bytes,
        "Bytes of the sealed objects in the store."
    );
    describe_gauge!(
        PINNED_OBJECTS,
        Unit::Count,
        "Sealed objects a daemon client pins."
    );
    describe_gauge!(PINNED_BYTES, Unit::Bytes, "Bytes of the pinned objects.");
    describe_gauge!(
        SPILLED_OBJECTS,
        Unit::Count,
        "Objects on disk (spilled or created there)."
    );
    describe_gauge!(SPILLED_BYTES, Unit::Bytes, "Bytes of the objects on disk.");
    describe_counter!(SPILLS, Unit::Count, "Objects written to spill files.");
    describe_counter!(
        SPILL_BYTES,
        Unit::Bytes,
        "Bytes of objects written to spill files."
    );
    describe_histogram!(
        SPILL_SECONDS,
        Unit::Seconds,
        "Time of each batch of spills."
    );
    describe_counter!(
        RESTORES,
        Unit::Count,
        "Spilled objects read back from their files."
    );
    describe_counter!(
        RESTORE_BYTES,
        Unit::Bytes,
        "Bytes of spilled objects read back."
    );
    describe_histogram!(
        RESTORE_SECONDS,
        Unit::Seconds,
        "Time of each read back of a spilled object."
    );
    describe_gauge!(
        CLIENTS,
        Unit::Count,
        "Clients connected to the store daemon."
    );
    describe_counter!(
        REFUSALS,
        Unit::Count,
        "Connections the store daemon refused."
    );
}

/// One store's share of the object gauges: what it added, so that its drop takes exactly that
/// off again. Moved under the store's lock, with the change it mirrors.
#[derive(Debug)]
pub(crate) struct ObjectGauges {
    objects: Gauge,
    bytes: Gauge,
    pinned_objects: Gauge,
    pinned_bytes: Gauge,
    held: Held,
}

/// What one store holds of each gauge.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    objects: u64,
    bytes: u64,
    pinned_objects: u64,
    pinned_bytes: u64,
}

impl ObjectGauges {
    pub(crate) fn register() -> ObjectGauges {
        ObjectGauges {
            objects: gauge!(OBJECTS),
            bytes: gauge!(BYTES),
            pinned_objects: gauge!(PINNED_OBJECTS),
            pinned_bytes: gauge!(PINNED_BYTES),
            held: Held::default(),
        }
    }

    /// An object of `bytes` was sealed.
    pub(crate) fn sealed(&mut self, bytes: u64) {
        self.held.objects += 1;
        self.held.bytes += bytes;
        self.objects.increment(1.0);
        self.bytes.increment(bytes as f64);
    }

    /// A sealed object of `bytes` is gone (deleted, taken).
    pub(crate) fn removed(&mut self, bytes: u64) {
        self.held.objects = self.held.objects.saturating_sub(1);
        self.held.bytes = self.held.bytes.saturating_sub(bytes);
        self.objects.decrement(1.0);
        self.bytes.decrement(bytes as f64);
    }

    /// A sealed object is counted as `to` bytes instead of `from` (spilled).
    pub(crate) fn recounted(&mut self, from: u64, to: u64) {
        self.held.bytes = self.held.bytes.saturating_sub(from) + to;
        self.bytes.increment(to as f64 - from as f64);
    }

    /// A sealed object of `bytes` got its first pin.
    pub(crate) fn pinned(&mut self, bytes: u64) {
        self.held.pinned_objects += 1;
        self.held.pinned_bytes += bytes;
        self.pinned_objects.increment(1.0);
        self.pinned_bytes.increment(bytes as f64);
    }

    /// A sealed object of `bytes` lost its last pin (or went away pinned).
    pub(crate) fn unpinned(&mut self, bytes: u64) {
        self.held.pinned_objects = self.held.pinned_objects.saturating_sub(1);
        self.held.pinned_bytes = self.held.pinned_bytes.saturating_sub(bytes);
        self.pinned_objects.decrement(1.0);
        self.pinned_bytes.decrement(bytes as f64);
    }
}

impl Drop for ObjectGauges {
    fn drop(&mut self) {
        let held = self.held;
        self.objects.decrement(held.objects as f64);
        self.bytes.decrement(held.bytes as f64);
        self.pinned_objects.decrement(held.pinned_objects as f64);
        self.pinned_bytes.decrement(held.pinned_bytes as f64);
    }
}

/// A spill directory's metrics: the gauges of what is on disk (what it added, taken off again
/// when it goes away) and the spill and restore counters.
#[derive(Debug)]
pub(crate) struct SpillMetrics {
    spilled_objects: Gauge,
    spilled_bytes: Gauge,
    spills: Counter,
    spill_bytes: Counter,
    spill_seconds: Histogram,
    restores: Counter,
    restore_bytes: Counter,
    restore_seconds: Histogram,
    /// Objects and bytes this directory added to the gauges.
    held: (u64, u64),
}

impl SpillMetrics {
    pub(crate) fn register() -> SpillMetrics {
        SpillMetrics {
            spilled_objects: gauge!(SPILLED_OBJECTS),
            spilled_bytes: gauge!(SPILLED_BYTES),
            spills: counter!(SPILLS),
            spill_bytes: counter!(SPILL_BYTES),
            spill_seconds: histogram!(SPILL_SECONDS),
            restores: counter!(RESTORES),
            restore_bytes: counter!(RESTORE_BYTES),
            restore_seconds: histogram!(RESTORE_SECONDS),
            held: (0, 0),
        }
    }

    /// `objects` objects of `bytes` in all are on disk now (spilled, or created there).
    pub(crate) fn on_disk(&mut self, objects: u64, bytes: u64) {
        self.held.0 += objects;
        self.held.1 += bytes;
        self.spilled_objects.increment(objects as f64);
        self.spilled_bytes.increment(bytes as f64);
    }

    /// An object of `bytes` on disk is gone.
    pub(crate) fn off_disk(&mut self, bytes: u64) {
        self.held.0 = self.held.0.saturating_sub(1);
        self.held.1 = self.held.1.saturating_sub(bytes);
        self.spilled_objects.decrement(1.0);
        self.spilled_bytes.decrement(bytes as f64);
    }

    /// A batch of `objects` spills of `bytes` took `seconds`.
    pub(crate) fn spilled(&self, objects: u64, bytes: u64, seconds: f64) {
        self.spills.increment(objects);
        self.spill_bytes.increment(bytes);
        self.spill_seconds.record(seconds);
    }

    /// An object of `bytes` was read back in `seconds`.
    pub(crate) fn restored(&self, bytes: u64, seconds: f64) {
        self.restores.increment(1);
        self.restore_bytes.increment(bytes);
        self.restore_seconds.record(seconds);
    }
}

impl Drop for SpillMetrics {
    fn drop(&mut self) {
        self.spilled_objects.decrement(self.held.0 as f64);
        self.spilled_bytes.decrement(self.held.1 as f64);
    }
}

/// A client counted in [`CLIENTS`] for as long as this lives (its task's life, so a panic while
/// serving still takes it off).
pub(crate) struct Connected(Gauge);

impl Connected {
    pub(crate) fn new() -> Connected {
        let clients = gauge!(CLIENTS);
        clients.increment(1.0);
        Connected(clients)
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The refusal counter, registered when a daemon starts serving (so a scrape shows 0 before the
/// first refusal, not nothing).
pub(crate) fn refusals() -> Counter {
    counter!(REFUSALS)
}
