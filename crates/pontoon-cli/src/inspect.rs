//! `pontoon inspect --format pickle` and `pontoon inspect --dialect dask`: decode a file (a
//! pickle and its out-of-band buffers, or one message as Dask's TCP comm writes it) and print
//! the value as JSON, never running code; a malformed or refused file is one line on stderr.

use std::error::Error;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use pontoon::pickle::{LoadOptions, loads, to_json};

/// The formats `pontoon inspect` reads.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Format {
    /// A Python pickle, protocols 0 to 5.
    Pickle,
}

/// The protocols whose byte streams `pontoon inspect` reads.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Dialect {
    /// One message of Dask distributed's TCP comm: its framing, then the frames.
    Dask,
}

/// `pontoon inspect` arguments.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["format", "dialect"]))]
pub(crate) struct Args {
    /// What FILE holds, as a file format.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// What FILE holds, as a protocol's byte stream.
    #[arg(long, value_enum, conflicts_with = "buffers")]
    dialect: Option<Dialect>,
    /// The file to decode.
    file: PathBuf,
    /// A protocol 5 out-of-band buffer, in the order the pickle takes them (repeat the option).
    #[arg(long = "buffer", value_name = "FILE")]
    buffers: Vec<PathBuf>,
    /// The longest JSON to print: a value shared many times is printed each time it recurs.
    #[arg(long, default_value_t = 1 << 30)]
    max_output_bytes: usize,
}

/// Why a file could not be inspected: the file and every cause, on one line.
#[derive(Debug)]
pub(crate) struct InspectError {
    file: PathBuf,
    what: String,
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.what)
    }
}

impl Error for InspectError {}

/// The error and each of its causes, joined on one line.
fn one_line(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Decodes the file and prints its JSON on stdout.
pub(crate) fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let read = |path: &PathBuf| -> Result<Bytes, InspectError> {
        std::fs::read(path)
            .map(Bytes::from)
            .map_err(|e| InspectError {
                file: path.clone(),
                what: format!("cannot read it: {e}"),
            })
    };
    let data = read(&args.file)?;
    let buffers = args
        .buffers
        .iter()
        .map(read)
        .collect::<Result<Vec<_>, _>>()?;
    let fail = |error: &(dyn Error + 'static)| InspectError {
        file: args.file.clone(),
        what: one_line(error),
    };
    let json = match (args.format, args.dialect) {
        (Some(Format::Pickle), _) => {
            let graph = loads(&data, &buffers, &LoadOptions::default()).map_err(|e| fail(&e))?;
            to_json(&graph, args.max_output_bytes).map_err(|e| fail(&e))?
        }
        (None, Some(Dialect::Dask)) => {
            dask_json(&data, args.max_output_bytes).map_err(|what| InspectError {
                file: args.file.clone(),
                what,
            })?
        }
        (None, None) => unreachable!("clap requires --format or --dialect"),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{json}")?;
    stdout.flush()?;
    Ok(())
}

/// One Dask message (framing, then frames) as JSON, or the one-line reason it is refused.
fn dask_json(data: &Bytes, max_output_bytes: usize) -> Result<String, String> {
    use pontoon::dask::{DecodeOptions, decode_in, framing, to_json};
    let limits = pontoon::wire::Limits::default();
    let (frames, rest) = framing::decode_stream(data.clone(), &limits).map_err(|e| one_line(&e))?;
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes follow the message (the file holds one message)",
            rest.len()
        ));
    }
    let value =
        decode_in(&frames, Some(data), &DecodeOptions::default()).map_err(|e| one_line(&e))?;
    to_json(&value, max_output_bytes).map_err(|e| one_line(&e))
}
