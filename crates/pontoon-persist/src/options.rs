//! [`LogOptions`] and [`Durability`]: how a log is opened and written, and when an append is
//! acknowledged.

use std::time::Duration;

use pontoon_wire::Limits;

use crate::format::{RECORD_ALIGN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};

/// When an append is durable, and when it returns.
///
/// | policy | `append` returns | survives kill -9 | survives power loss |
/// | --- | --- | --- | --- |
/// | `Always` | after its own `fdatasync` | yes | yes |
/// | `GroupCommit` | after an `fdatasync` shared with concurrent appends | yes | yes |
/// | `Interval(d)` | once written to the OS | yes | all but about the last `d` |
/// | `Never` | once written to the OS | yes | only what [`Log::sync`](crate::Log::sync) covered |
///
/// ```
/// use std::time::Duration;
/// use pontoon_persist::Durability;
///
/// assert_eq!(Durability::default(), Durability::Always);
/// let _relaxed = Durability::Interval(Duration::from_millis(100));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// An append returns once its record is on disk: written, then `fdatasync`; one sync per
    /// append.
    #[default]
    Always,
    /// An append returns once its record is on disk, but appends made at the same time share
    /// one `fdatasync`: a background thread writes out what has been appended and syncs it,
    /// again and again, while each appender waits for its own record. Concurrent appenders
    /// (threads sharing the log) and one thread with many [`Log::submit`](crate::Log::submit)s in flight both
    /// batch this way; a lone appender waits about as long as with `Always`.
    GroupCommit,
    /// An append returns once its record is written to the operating system (it survives the
    /// process being killed); a background thread syncs every interval, so a power loss loses
    /// at most about the last interval of acknowledged appends. [`Log::wait_durable`](crate::Log::wait_durable) waits
    /// for one record.
    Interval(Duration),
    /// Appends are written to the operating system but never synced by the log;
    /// [`Log::sync`](crate::Log::sync) or [`Log::wait_durable`](crate::Log::wait_durable) make them durable.
    Never,
}

/// How a log is opened and written.
///
/// ```
/// let mut options = pontoon_persist::LogOptions::default();
/// options.segment_bytes = 1 << 20;
/// options.durability = pontoon_persist::Durability::GroupCommit;
/// assert_eq!(options.max_record_bytes, 1 << 30);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LogOptions {
    /// When appends are durable.
    pub durability: Durability,
    /// A new segment file starts once the current one would grow past this.
    pub segment_bytes: u64,
    /// The largest record payload accepted, written or read.
    pub max_record_bytes: u64,
    /// Limits for decoding each record's message.
    pub limits: Limits,
    /// On damage that is not a torn tail, skip to the next valid record (reported) instead of
    /// refusing to open.
    pub salvage: bool,
}

impl Default for LogOptions {
    /// Durability [`Durability::Always`], 64 MiB segments, records up to 1 GiB, no salvage.
    fn default() -> LogOptions {
        let mut limits = Limits::default();
        limits.max_message_bytes = 1 << 30;
        LogOptions {
            durability: Durability::Always,
            segment_bytes: 64 << 20,
            max_record_bytes: 1 << 30,
            limits,
            salvage: false,
        }
    }
}

/// The longest a segment file written under `options` can be: rotation starts a new segment
/// once the next record would pass `segment_bytes`, so one record (with its padding) may go
/// past it. Version 1 segments, with smaller headers and no padding, are bounded by it too.
pub(crate) fn max_segment_bytes(options: &LogOptions) -> u64 {
    options
        .segment_bytes
        .saturating_add(options.max_record_bytes)
        .saturating_add((SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + RECORD_ALIGN - 1) as u64)
}
