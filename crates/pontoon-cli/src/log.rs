//! `pontoon log`: inspect a pontoon-persist log directory without changing it: `verify` checks
//! every record and prints a summary, `dump` prints one line per record. Both read through
//! `Log::inspect`: nothing is created, locked exclusively, cut or written. Both take a remote
//! (`s3://bucket/prefix`) too, read through `log_remote`.

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use indicatif::{ProgressBar, ProgressStyle};
use pontoon::persist::{Inspection, Log, LogOptions, OpenError, RawRecord, ReadError};
use pontoon::wire::{Limits, MessageHead};

/// A log with more records than this gets a progress bar.
const BAR_RECORDS: u64 = 10_000;
/// A log with more bytes than this gets a progress bar.
const BAR_BYTES: u64 = 64 << 20;

/// The `pontoon log` subcommands.
///
/// Exit status: 0 when the log is whole (a torn tail, which the next writable open cuts, is
/// reported but is not damage); 1 when it is damaged (a damaged record with records after it, a
/// segment that is not a regular file, a record that holds no valid message head); 2 when it
/// could not be checked (not a log, another process has it open for writing, an I/O error) or
/// on bad usage. Errors print with every cause, one per line.
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Check every record of a log and print a summary, changing nothing.
    ///
    /// Checks every record of the log in DIR (checksums, sequence numbers, each message's head:
    /// its prefix, frame table and header; frames are not decompressed) and prints segments,
    /// records, bytes, and any torn tail that the next writable open of the log would cut.
    ///
    /// Nothing is written: the log is read as `Log::inspect` reads it (its LOCK file locked
    /// shared, so no writer opens it meanwhile; a log that a process has open for writing is not
    /// checked).
    ///
    /// DIR may be a remote a durable state uploads to, `s3://bucket/prefix`: the state its
    /// newest manifest names (segments, and the active segment's tail) is downloaded into a
    /// temporary directory and checked there; the remote is only read. Credentials, region and
    /// endpoint come from the usual AWS environment variables (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT, ...), the endpoint also from --endpoint.
    ///
    /// Exit status: 0 when the log is whole (a torn tail is reported, not damage), 1 when it is
    /// damaged (or a remote's manifest is), 2 when it could not be checked (not a log, locked
    /// by a writer, an I/O error, a remote that cannot be reached or refuses the credentials)
    /// or on bad usage.
    Verify {
        /// The log's directory, or a remote: `s3://bucket/prefix`.
        dir: PathBuf,
        /// The S3 endpoint of an `s3://` remote (`http://host:port` allowed), instead of
        /// AWS_ENDPOINT or AWS's own.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// Print one line per record of a log, changing nothing.
    ///
    /// Prints, per record of the log in DIR: sequence number, kind, frame count and the header
    /// as text. Frames are not decompressed (their decoded lengths come from the frame table).
    /// Read as `verify` reads (nothing is written; a torn tail is left, and not printed); DIR
    /// may be an `s3://bucket/prefix` remote, as for `verify`.
    ///
    /// Exit status as for `verify`.
    Dump {
        /// The log's directory, or a remote: `s3://bucket/prefix`.
        dir: PathBuf,
        /// The S3 endpoint of an `s3://` remote (`http://host:port` allowed), instead of
        /// AWS_ENDPOINT or AWS's own.
        #[arg(long)]
        endpoint: Option<String>,
        /// One JSON object a line instead (JSON Lines, format version 1):
        /// {"v":1,"seq":..,"kind":..,"frames":[decoded frame lengths],"header":<header>}.
        /// A header over --max-header-bytes is "header":null with "header_bytes":<its length>.
        /// In the header, MessagePack binary is {"$bin":"<hex>"}, a string that is not UTF-8
        /// {"$str_bytes":"<hex>"}, an extension {"$ext":type,"data":"<hex>"}, a NaN or infinite
        /// float {"$float":"NaN"|"inf"|"-inf"}, a map key that is not a string its text, and
        /// a key that is not UTF-8 "$str_bytes:<hex>".
        /// A new field may appear within version 1; a change of meaning bumps "v".
        #[arg(long)]
        json: bool,
        /// Headers longer than this (in MessagePack bytes) are not printed, only their length:
        /// a header's text can be far larger than its bytes.
        #[arg(long, default_value_t = 64 << 10)]
        max_header_bytes: usize,
    },
}

/// Why a subcommand failed, which decides its exit status.
pub(crate) enum Failure {
    /// The log is damaged (exit 1).
    Damaged(Box<dyn Error>),
    /// The log could not be checked (exit 2).
    Unchecked(Box<dyn Error>),
}

impl Failure {
    /// An error opening the log: damage found in it, or a failure to look at it.
    fn open(error: OpenError) -> Failure {
        match error {
            OpenError::Corrupt { .. } | OpenError::NotAFile { .. } => {
                Failure::Damaged(error.into())
            }
            other => Failure::Unchecked(other.into()),
        }
    }

    /// An error reading records: damage found, or a failure to read.
    fn read(error: ReadError) -> Failure {
        match error {
            ReadError::Corrupt { .. }
            | ReadError::BadPayload { .. }
            | ReadError::NotAFile { .. } => Failure::Damaged(error.into()),
            other => Failure::Unchecked(other.into()),
        }
    }

    fn unchecked(error: impl Into<Box<dyn Error>>) -> Failure {
        Failure::Unchecked(error.into())
    }
}

/// Runs a `pontoon log` subcommand; a failure says whether the log was found damaged (exit 1)
/// or could not be checked (exit 2), as documented on [`Command`].
pub(crate) fn run(command: &Command) -> Result<(), Failure> {
    let (location, endpoint) = match command {
        Command::Verify { dir, endpoint } | Command::Dump { dir, endpoint, .. } => {
            (dir, endpoint.as_deref())
        }
    };
    // A remote is checked as a local copy; the copy is removed when this returns.
    let downloaded = if crate::log_remote::is_remote(location) {
        let url = location.to_string_lossy();
        Some(crate::log_remote::download(&url, endpoint)?)
    } else {
        None
    };
    let dir = downloaded
        .as_ref()
        .map_or(location.as_path(), |d| d.dir.as_path());
    match command {
        Command::Verify { .. } => verify(dir),
        Command::Dump {
            json,
            max_header_bytes,
            ..
        } => dump(dir, *json, *max_header_bytes),
    }
}

fn inspect(dir: &Path) -> Result<Inspection, Failure> {
    Log::inspect(dir, &LogOptions::default()).map_err(Failure::open)
}

/// The head of a record's message (prefix, frame table, header), read from as little of the
/// payload as holds it: a frame is never copied or decompressed.
fn head_of(record: &RawRecord, limits: &Limits) -> Result<MessageHead, Failure> {
    let payload: &Bytes = &record.payload;
    let damaged = |why: String| {
        Failure::Damaged(
            format!(
                "record {} in {} at byte offset {}: {why}",
                record.seq,
                record.file.display(),
                record.offset
            )
            .into(),
        )
    };
    let mut take = payload.len().min(4096);
    loop {
        let mut buf = BytesMut::from(&payload[..take]);
        match MessageHead::parse(&mut buf, limits) {
            Ok(Some(head)) if head.len() == payload.len() as u64 => return Ok(head),
            Ok(Some(head)) => {
                return Err(damaged(format!(
                    "its message is {} bytes, the record's payload {}",
                    head.len(),
                    payload.len()
                )));
            }
            Ok(None) if take < payload.len() => take = take.saturating_mul(2).min(payload.len()),
            Ok(None) => return Err(damaged("its message is cut short".into())),
            Err(e) => return Err(damaged(format!("its message is not valid: {e}"))),
        }
    }
}

fn verify(dir: &Path) -> Result<(), Failure> {
    // Recovery checks every record's checksum first: a spinner while it does, on a large log.
    let spinner = ProgressBar::new_spinner().with_message("checking checksums");
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let inspected = inspect(dir);
    spinner.finish_and_clear();
    let inspection = inspected?;
    let recovery = &inspection.recovery;
    let bar = if recovery.records > BAR_RECORDS || recovery.bytes > BAR_BYTES {
        let style = ProgressStyle::with_template("{bar:40} {pos}/{len} records {eta}")
            .map_err(Failure::unchecked)?;
        ProgressBar::new(recovery.records).with_style(style)
    } else {
        ProgressBar::hidden()
    };
    let limits = LogOptions::default().limits;
    // Records are views of the bytes the inspection checked (its maps, or what it read when
    // the directory has no LOCK to keep writers out): no segment is read twice.
    let mut seqs: Option<(u64, u64)> = None;
    let mut count = 0u64;
    for record in inspection.raw_records(0) {
        let record = record.map_err(|e| {
            bar.abandon();
            Failure::read(e)
        })?;
        if let Some((_, last)) = seqs
            && Some(record.seq) != last.checked_add(1)
        {
            bar.abandon();
            return Err(Failure::Damaged(
                format!(
                    "record {} is missing (found {})",
                    last.saturating_add(1),
                    record.seq
                )
                .into(),
            ));
        }
        head_of(&record, &limits).inspect_err(|_| bar.abandon())?;
        seqs = Some((seqs.map_or(record.seq, |(first, _)| first), record.seq));
        count += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("segments: {}", inspection.segments.len());
    println!("format:   {}", formats(&inspection.segment_versions()));
    println!("records:  {count}");
    if let Some((first, last)) = seqs {
        println!("seqs:     {first}..={last}");
    }
    println!("bytes:    {}", recovery.bytes);
    match inspection.would_cut() {
        Some(cut) => println!(
            "cut:      a torn tail of {} bytes at offset {} of {}; not cut now: the next \
             writable open of the log cuts it",
            cut.bytes,
            cut.offset,
            cut.file.display()
        ),
        None => println!("cut:      none"),
    }
    println!("ok");
    Ok(())
}

/// How many segments are in each format version: `version 2 (20 segments)`, or for a log of
/// pontoon 0.1 a note that its next writable open upgrades it.
fn formats(versions: &[Option<u8>]) -> String {
    let count = |version| versions.iter().filter(|v| **v == Some(version)).count();
    let plural = |n: usize| if n == 1 { "segment" } else { "segments" };
    let mut parts: Vec<String> = [1, 2]
        .into_iter()
        .map(|v| (v, count(v)))
        .filter(|&(_, n)| n > 0)
        .map(|(v, n)| format!("version {v} ({n} {})", plural(n)))
        .collect();
    let unborn = versions.iter().filter(|v| v.is_none()).count();
    if unborn > 0 {
        parts.push(format!("{unborn} never finished"));
    }
    let mut line = parts.join(", ");
    if versions.last().copied().flatten() == Some(1) {
        line += "; the next writable open goes on in a version 2 segment (the version 1 \
                 segments stay as they are until pruned)";
    }
    line
}

fn dump(dir: &Path, json: bool, max_header_bytes: usize) -> Result<(), Failure> {
    let inspection = inspect(dir)?;
    let limits = LogOptions::default().limits;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // Records are views of the maps the inspection checked.
    for record in inspection.raw_records(0) {
        let record = record.map_err(Failure::read)?;
        let head = head_of(&record, &limits)?;
        let line = if json {
            json_line(&record, &head, max_header_bytes)
        } else {
            text_line(&record, &head, max_header_bytes)
        };
        if writeln!(out, "{line}").is_err() {
            // A closed pipe (e.g. `| head`): stop quietly.
            return Ok(());
        }
    }
    let _ = out.flush();
    Ok(())
}

/// The header as a MessagePack value, if it is short enough to print.
fn header_value(head: &MessageHead, max_header_bytes: usize) -> Option<rmpv::Value> {
    let header = head.header();
    if header.as_bytes().len() > max_header_bytes {
        return None;
    }
    header.to_value().ok()
}

fn text_line(record: &RawRecord, head: &MessageHead, max_header_bytes: usize) -> String {
    let header = match header_value(head, max_header_bytes) {
        Some(value) => value.to_string(),
        None => format!(
            "<{} bytes, over --max-header-bytes>",
            head.header().as_bytes().len()
        ),
    };
    format!(
        "{} kind={} frames={} header={header}",
        record.seq,
        record.kind,
        head.frames().len(),
    )
}

/// The version of `dump --json`'s line format, written as `"v"` in every line.
const JSON_FORMAT_VERSION: u64 = 1;

fn json_line(record: &RawRecord, head: &MessageHead, max_header_bytes: usize) -> String {
    let frames: Vec<u64> = head.frames().iter().map(|f| f.raw_len).collect();
    let line = match header_value(head, max_header_bytes) {
        Some(value) => serde_json::json!({
            "v": JSON_FORMAT_VERSION,
            "seq": record.seq,
            "kind": record.kind,
            "frames": frames,
            "header": to_json(&value),
        }),
        None => serde_json::json!({
            "v": JSON_FORMAT_VERSION,
            "seq": record.seq,
            "kind": record.kind,
            "frames": frames,
            "header": null,
            "header_bytes": head.header().as_bytes().len(),
        }),
    };
    line.to_string()
}

/// A MessagePack value as JSON, with what JSON cannot say tagged (see `dump --json`'s help):
/// binary `{"$bin": hex}`, a non-UTF-8 string `{"$str_bytes": hex}`, an extension
/// `{"$ext": type, "data": hex}`, a non-finite float `{"$float": "NaN"}`.
fn to_json(value: &rmpv::Value) -> serde_json::Value {
    use rmpv::Value as M;
    use serde_json::Value as J;
    match value {
        M::Nil => J::Null,
        M::Boolean(b) => J::Bool(*b),
        M::Integer(i) => i
            .as_u64()
            .map(J::from)
            .or_else(|| i.as_i64().map(J::from))
            .unwrap_or(J::Null),
        M::F32(f) => float(f64::from(*f)),
        M::F64(f) => float(*f),
        M::String(s) => match s.as_str() {
            Some(s) => J::String(s.to_string()),
            None => serde_json::json!({ "$str_bytes": hex(s.as_bytes()) }),
        },
        M::Binary(b) => serde_json::json!({ "$bin": hex(b) }),
        M::Array(items) => J::Array(items.iter().map(to_json).collect()),
        M::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        M::String(s) => s.as_str().map_or_else(
                            || format!("$str_bytes:{}", hex(s.as_bytes())),
                            str::to_string,
                        ),
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        M::Ext(kind, data) => serde_json::json!({ "$ext": kind, "data": hex(data) }),
    }
}

/// A float as a JSON number, or tagged when JSON has no number for it.
fn float(f: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => serde_json::Value::Number(n),
        None if f.is_nan() => serde_json::json!({ "$float": "NaN" }),
        None if f > 0.0 => serde_json::json!({ "$float": "inf" }),
        None => serde_json::json!({ "$float": "-inf" }),
    }
}

/// Bytes as lowercase hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_tags_what_json_cannot_say() {
        use rmpv::Value as M;
        // A MessagePack str of two bytes that are not UTF-8.
        let not_utf8 = || rmpv::decode::read_value(&mut &[0xa2, 0xc3, 0x28][..]).unwrap();
        let header = M::Map(vec![
            (M::from("bin"), M::Binary(vec![0, 0xff, 0x10])),
            (M::from("nan"), M::F64(f64::NAN)),
            (M::from("inf"), M::F32(f32::NEG_INFINITY)),
            (M::from("ext"), M::Ext(5, vec![1, 2])),
            (not_utf8(), M::Nil),
            (M::from("raw"), not_utf8()),
            (M::from(7), M::from(1.5)),
        ]);
        assert_eq!(
            to_json(&header),
            serde_json::json!({
                "bin": {"$bin": "00ff10"},
                "nan": {"$float": "NaN"},
                "inf": {"$float": "-inf"},
                "ext": {"$ext": 5, "data": "0102"},
                "$str_bytes:c328": null,
                "raw": {"$str_bytes": "c328"},
                "7": 1.5,
            })
        );
    }
}
