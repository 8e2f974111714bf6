//! [`Error`]: what can go wrong encoding or decoding a body in the binary serde encoding.

use std::fmt;

/// What went wrong encoding a value into, or decoding it from, the serde family's binary body.
///
/// [`Error::path`] is filled in when the failure could be located: a field path such as
/// `layers[3].weights`, relative to the value.
///
/// ```
/// use pontoon_family::binary::{self, ErrorKind};
/// let err = binary::from_slice::<(u8, bool)>(&[1, 7], &[], 256).unwrap_err();
/// assert_eq!(err.kind(), &ErrorKind::InvalidTag { what: "bool", byte: 7, offset: 1 });
/// assert_eq!(err.path(), Some("[1]"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    path: Option<String>,
}

/// The kinds of [`Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A `Serialize` or `Deserialize` implementation reported an error of its own.
    #[error("{0}")]
    Custom(String),
    /// The value is nested deeper than the limit (or refers to itself).
    #[error("nested deeper than the limit of {limit} (is the value cyclic?)")]
    TooDeep {
        /// The depth limit in force.
        limit: usize,
    },
    /// A sequence or map did not say its length up front; the encoding needs it.
    #[error("a sequence or map of unknown length cannot be encoded; collect it first")]
    UnknownLength,
    /// A struct skipped a field (`#[serde(skip_serializing_if)]`), which a non-self-describing
    /// encoding cannot represent.
    #[error(
        "field `{0}` was skipped (skip_serializing_if); the binary encoding writes every field"
    )]
    SkippedField(&'static str),
    /// The type asked for `deserialize_any` (untagged enums, `flatten`, `serde_json::Value`),
    /// which needs a self-describing format.
    #[error("the type needs a self-describing format (deserialize_any)")]
    NotSelfDescribing,
    /// The body ends before the value does.
    #[error("the body ends at byte offset {offset} in the middle of a value")]
    Eof {
        /// Where the body ends.
        offset: usize,
    },
    /// A byte that must be 0 or 1 (a bool or an option tag) is something else.
    #[error("invalid {what} byte {byte:#04x} at byte offset {offset}")]
    InvalidTag {
        /// What was being read.
        what: &'static str,
        /// The byte found.
        byte: u8,
        /// Where.
        offset: usize,
    },
    /// A `char` that is not a Unicode scalar value.
    #[error("invalid char {value:#x} at byte offset {offset}")]
    InvalidChar {
        /// The value found.
        value: u32,
        /// Where.
        offset: usize,
    },
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in a string at byte offset {offset}")]
    InvalidUtf8 {
        /// Where the string starts.
        offset: usize,
    },
    /// A length prefix longer than the bytes that remain, or a varint longer than 64 bits.
    #[error("length {len} at byte offset {offset} is more than the {remaining} bytes that remain")]
    BadLength {
        /// The length read.
        len: u64,
        /// Where.
        offset: usize,
        /// Bytes left in the body.
        remaining: usize,
    },
    /// The elements of the body's sequences and maps would take more memory than the receiver
    /// allows for the body's size: [`Limits::max_expansion`](pontoon_wire::Limits::max_expansion)
    /// of it, one budget for the whole body (elements that take no bytes on the wire, such as
    /// structs whose fields are all `#[serde(skip)]`, draw on it most).
    #[error(
        "the body's sequences would take more than the {max_bytes} bytes in memory this side \
         allows for it (at byte offset {offset})"
    )]
    Expansion {
        /// Where the element that went over ends.
        offset: usize,
        /// The most the elements may take beyond their bytes in the body.
        max_bytes: u64,
    },
    /// A varint that runs past ten bytes.
    #[error("malformed varint at byte offset {offset}")]
    BadVarint {
        /// Where it starts.
        offset: usize,
    },
    /// A buffer reference to a frame that is not there.
    #[error(
        "buffer reference {index} at byte offset {offset}, but the message has {count} buffer frames"
    )]
    BufferOutOfRange {
        /// The frame index read.
        index: u64,
        /// Where.
        offset: usize,
        /// How many buffer frames there are.
        count: usize,
    },
    /// Bytes remain after the value.
    #[error("{remaining} bytes remain after the value at byte offset {offset}")]
    TrailingBytes {
        /// Where the value ended.
        offset: usize,
        /// How many bytes follow.
        remaining: usize,
    },
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Error {
        Error { kind, path: None }
    }

    /// What went wrong.
    ///
    /// ```
    /// use pontoon_family::binary::{self, ErrorKind};
    /// let err = binary::from_slice::<u16>(&[1], &[], 256).unwrap_err();
    /// assert_eq!(err.kind(), &ErrorKind::Eof { offset: 1 });
    /// ```
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Where in the value, when known: `layers[3].weights`.
    ///
    /// ```
    /// let err = pontoon_family::binary::from_slice::<Vec<char>>(&[1, 0, 0xd8, 0, 0], &[], 256).unwrap_err();
    /// assert_eq!(err.path(), Some("[0]"));
    /// ```
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    pub(crate) fn set_path(&mut self, path: Option<String>) {
        self.path = path;
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            Some(path) if !path.is_empty() => write!(f, "at `{path}`: {}", self.kind()),
            _ => write!(f, "{}", self.kind()),
        }
    }
}

impl std::error::Error for Error {}

/// The encoder's error is boxed: one pointer wide, so the `Result` of every serialize call fits
/// in a register (`Box` is fundamental, so this impl is ours to write).
impl serde::ser::Error for Box<Error> {
    fn custom<T: fmt::Display>(msg: T) -> Box<Error> {
        Box::new(Error::new(ErrorKind::Custom(msg.to_string())))
    }
}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error::new(ErrorKind::Custom(msg.to_string()))
    }
}
