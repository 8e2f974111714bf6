//! `pontoon log`: inspect a pontoon-persist log directory: `verify` checks every record and prints
//! a summary, `dump` prints one line per record.

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use pontoon::persist::{Log, LogOptions, Record};

/// A log with more records than this gets a progress bar.
const BAR_RECORDS: u64 = 10_000;
/// A log with more bytes than this gets a progress bar.
const BAR_BYTES: u64 = 64 << 20;

/// The `pontoon log` subcommands.
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Check every record of a log and print a summary; exit non-zero on corruption.
    ///
    /// Checks every record of the log in DIR (checksums, sequence numbers, messages) and prints
    /// segments, records, bytes, and any torn tail cut. On corruption, prints the error (file
    /// and byte offset) and exits non-zero.
    ///
    /// Opening the log runs recovery, which may write: a torn tail at the end of the last
    /// segment is cut (durably), as any open by the library would. Nothing else is changed.
    Verify {
        /// The log's directory.
        dir: PathBuf,
    },
    /// Print one line per record of a log.
    ///
    /// Prints, per record of the log in DIR: sequence number, kind, frame count and the header
    /// as text. Opening the log runs recovery (a torn tail is cut, as in `verify`).
    Dump {
        /// The log's directory.
        dir: PathBuf,
        /// One JSON object a line instead:
        /// {"seq":..,"kind":..,"frames":[frame lengths],"header":<header as JSON>}.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `pontoon log` subcommand.
pub(crate) fn run(command: &Command) -> Result<(), Box<dyn Error>> {
    match command {
        Command::Verify { dir } => verify(dir),
        Command::Dump { dir, json } => dump(dir, *json),
    }
}

/// The segment files of the log in `dir` and their total size. Errors if `dir` is not a
/// directory (rather than let `Log::open` create a new log there).
fn segments(dir: &Path) -> Result<(usize, u64), Box<dyn Error>> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()).into());
    }
    let mut count = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name
            .strip_suffix(".log")
            .is_some_and(|n| n.parse::<u64>().is_ok())
        {
            count += 1;
            bytes += entry.metadata()?.len();
        }
    }
    Ok((count, bytes))
}

fn open(dir: &Path) -> Result<(Log, pontoon::persist::Recovery), Box<dyn Error>> {
    segments(dir)?;
    Ok(Log::open(dir, LogOptions::default())?)
}

fn verify(dir: &Path) -> Result<(), Box<dyn Error>> {
    // Opening checks every record's checksum first: a spinner while it does, on a large log.
    let (_, size) = segments(dir)?;
    let spinner = if size > BAR_BYTES {
        let spinner = ProgressBar::new_spinner().with_message(format!("recovering {size} bytes"));
        spinner.enable_steady_tick(std::time::Duration::from_millis(100));
        spinner
    } else {
        ProgressBar::hidden()
    };
    let opened = open(dir);
    spinner.finish_and_clear();
    let (log, recovery) = opened?;
    let (segment_count, bytes) = segments(dir)?;
    let bar = if recovery.records > BAR_RECORDS || bytes > BAR_BYTES {
        ProgressBar::new(recovery.records).with_style(ProgressStyle::with_template(
            "{bar:40} {pos}/{len} records {eta}",
        )?)
    } else {
        ProgressBar::hidden()
    };
    // One segment in memory at a time, however large the log.
    let mut seqs: Option<(u64, u64)> = None;
    let mut count = 0u64;
    for record in log.records_from(0)? {
        let record = record.inspect_err(|_| bar.abandon())?;
        if let Some((_, last)) = seqs
            && record.seq != last + 1
        {
            bar.abandon();
            return Err(format!("record {} is missing (found {})", last + 1, record.seq).into());
        }
        record.message.header.to_value().map_err(|e| {
            bar.abandon();
            format!("record {}: its header is not MessagePack: {e}", record.seq)
        })?;
        seqs = Some((seqs.map_or(record.seq, |(first, _)| first), record.seq));
        count += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("segments: {segment_count}");
    println!("records:  {count}");
    if let Some((first, last)) = seqs {
        println!("seqs:     {first}..={last}");
    }
    println!("bytes:    {bytes}");
    match &recovery.cut {
        Some(cut) => println!(
            "cut:      a torn tail of {} bytes at offset {} of {}",
            cut.bytes,
            cut.offset,
            cut.file.display()
        ),
        None => println!("cut:      none"),
    }
    println!("ok");
    Ok(())
}

fn dump(dir: &Path, json: bool) -> Result<(), Box<dyn Error>> {
    let (log, _) = open(dir)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // One segment in memory at a time, however large the log.
    for record in log.records_from(0)? {
        let record = record?;
        let line = if json {
            json_line(&record)?
        } else {
            text_line(&record)?
        };
        if writeln!(out, "{line}").is_err() {
            // A closed pipe (e.g. `| head`): stop quietly.
            return Ok(());
        }
    }
    if out.flush().is_err() {
        return Ok(());
    }
    Ok(())
}

fn text_line(record: &Record) -> Result<String, Box<dyn Error>> {
    Ok(format!(
        "{} kind={} frames={} header={}",
        record.seq,
        record.kind,
        record.message.frames.len(),
        record.message.header.to_value()?
    ))
}

fn json_line(record: &Record) -> Result<String, Box<dyn Error>> {
    let frames: Vec<usize> = record.message.frames.iter().map(|f| f.len()).collect();
    let line = serde_json::json!({
        "seq": record.seq,
        "kind": record.kind,
        "frames": frames,
        "header": to_json(&record.message.header.to_value()?),
    });
    Ok(line.to_string())
}

/// A MessagePack value as JSON: binary becomes an array of byte values, non-string map keys
/// their text, an extension `{"ext": type, "data": [bytes]}`, a non-finite float null.
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
        M::F32(f) => serde_json::Number::from_f64(f64::from(*f)).map_or(J::Null, J::Number),
        M::F64(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        M::String(s) => match s.as_str() {
            Some(s) => J::String(s.to_string()),
            None => J::Array(s.as_bytes().iter().map(|b| J::from(*b)).collect()),
        },
        M::Binary(b) => J::Array(b.iter().map(|b| J::from(*b)).collect()),
        M::Array(items) => J::Array(items.iter().map(to_json).collect()),
        M::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        M::String(s) => s.as_str().map_or_else(|| k.to_string(), str::to_string),
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        M::Ext(kind, data) => serde_json::json!({
            "ext": kind,
            "data": data.iter().map(|b| J::from(*b)).collect::<Vec<_>>(),
        }),
    }
}
