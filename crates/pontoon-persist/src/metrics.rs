//! The metrics pontoon-persist records through the `metrics` facade: their names, their
//! descriptions, and the handles a [`Log`](crate::Log) registers once when it opens.
//!
//! Nothing is recorded anywhere unless the application installs a recorder (for example
//! `metrics-exporter-prometheus`'s); without one every update is a no-op on a handle. The
//! names follow `pontoon_<area>_<what>_<unit>`; `docs/observability.md` lists them.
//!
//! ```
//! // Once, after installing a recorder: names get their help text and unit.
//! pontoon_persist::metrics::describe();
//! assert_eq!(pontoon_persist::metrics::APPENDED_RECORDS, "pontoon_persist_appended_records_total");
//! ```

use ::metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_histogram, histogram,
};

/// Counter: records appended to a log (every durability policy).
pub const APPENDED_RECORDS: &str = "pontoon_persist_appended_records_total";
/// Counter: bytes of records appended (header, message and padding: what the segment grows by).
pub const APPENDED_BYTES: &str = "pontoon_persist_appended_bytes_total";
/// Histogram: seconds each `fdatasync` of a segment took, the one that makes records durable.
pub const FDATASYNC_SECONDS: &str = "pontoon_persist_fdatasync_seconds";
/// Histogram: records one `fdatasync` made durable (group commit's batch size; 1 per sync
/// under `Always`).
pub const SYNC_BATCH_RECORDS: &str = "pontoon_persist_sync_batch_records";
/// Histogram: seconds `Log::open` took to recover a log (scan, repair, the final sync).
pub const RECOVERY_SECONDS: &str = "pontoon_persist_recovery_seconds";
/// Counter: valid records recovery scanned.
pub const RECOVERY_RECORDS: &str = "pontoon_persist_recovery_records_total";
/// Counter: bytes of segment files recovery read and checked.
pub const RECOVERY_BYTES: &str = "pontoon_persist_recovery_bytes_total";
/// Counter: snapshots written (durable and renamed into place).
pub const SNAPSHOTS_WRITTEN: &str = "pontoon_persist_snapshots_written_total";
/// Counter: bytes of snapshot files written.
pub const SNAPSHOT_BYTES: &str = "pontoon_persist_snapshot_bytes_total";
/// Histogram: seconds writing one snapshot took (write, `fsync`, rename, directory sync).
pub const SNAPSHOT_SECONDS: &str = "pontoon_persist_snapshot_seconds";

/// Gives every metric above its unit and help text in the installed recorder. Call it once
/// after installing a recorder; recording works without it.
///
/// ```
/// pontoon_persist::metrics::describe();
/// ```
pub fn describe() {
    describe_counter!(APPENDED_RECORDS, Unit::Count, "Records appended to a log.");
    describe_counter!(
        APPENDED_BYTES,
        Unit::Bytes,
        "Bytes of records appended to a log (header, message, padding)."
    );
    describe_histogram!(
        FDATASYNC_SECONDS,
        Unit::Seconds,
        "Time of each fdatasync that made log records durable."
    );
    describe_histogram!(
        SYNC_BATCH_RECORDS,
        Unit::Count,
        "Records made durable by one fdatasync (group commit batch size)."
    );
    describe_histogram!(
        RECOVERY_SECONDS,
        Unit::Seconds,
        "Time Log::open took to recover a log."
    );
    describe_counter!(
        RECOVERY_RECORDS,
        Unit::Count,
        "Valid records scanned by recovery."
    );
    describe_counter!(
        RECOVERY_BYTES,
        Unit::Bytes,
        "Bytes of segment files read and checked by recovery."
    );
    describe_counter!(SNAPSHOTS_WRITTEN, Unit::Count, "Snapshots written.");
    describe_counter!(
        SNAPSHOT_BYTES,
        Unit::Bytes,
        "Bytes of snapshot files written."
    );
    describe_histogram!(
        SNAPSHOT_SECONDS,
        Unit::Seconds,
        "Time writing one snapshot took, fsyncs and rename included."
    );
}

/// The handles a log updates on every append and sync, registered once when it opens: an
/// update is then an atomic add (or nothing, without a recorder), never a lookup by name.
#[derive(Debug)]
pub(crate) struct LogMetrics {
    pub(crate) appended_records: Counter,
    pub(crate) appended_bytes: Counter,
    pub(crate) fdatasync_seconds: Histogram,
    pub(crate) sync_batch_records: Histogram,
}

impl LogMetrics {
    pub(crate) fn register() -> LogMetrics {
        LogMetrics {
            appended_records: counter!(APPENDED_RECORDS),
            appended_bytes: counter!(APPENDED_BYTES),
            fdatasync_seconds: histogram!(FDATASYNC_SECONDS),
            sync_batch_records: histogram!(SYNC_BATCH_RECORDS),
        }
    }

    /// One `fdatasync` that took `seconds` made `records` records durable.
    pub(crate) fn synced(&self, seconds: f64, records: u64) {
        self.fdatasync_seconds.record(seconds);
        self.sync_batch_records.record(records as f64);
    }
}
