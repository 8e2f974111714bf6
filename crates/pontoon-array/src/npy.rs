//! NumPy's `.npy` file format, versions 1.0, 2.0 and 3.0: [`write()`] an [`Array`] as the chunks
//! of a file, [`read()`] a file back as an array that views the file's bytes.
//!
//! A file is the magic `\x93NUMPY`, the format version (major, minor), the header's length
//! (`u16` little-endian in 1.0, `u32` in 2.0 and 3.0), then the header: a Python dict literal
//! such as `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`, padded with spaces
//! and ended by `\n` so that the data starts at a multiple of 64 bytes. The data follows, in C
//! order or (with `fortran_order: True`) Fortran order.
//!
//! Only numeric dtypes are supported (those of [`DType`]); object, string and structured dtypes
//! are refused when read.

use bytes::Bytes;
use pontoon_wire::Limits;

use crate::{Array, ArrayError, DType, MAX_DIMS};

/// The first six bytes of every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The data starts at a multiple of this many bytes from the start of the file.
const ALIGN: usize = 64;

/// The header dict's keys, in the order numpy writes them.
const KEYS: [&str; 3] = ["descr", "fortran_order", "shape"];

/// What was wrong with a `.npy` file [`read()`] was given: where, and what.
///
/// ```
/// use pontoon_array::npy::{self, NpyError};
/// let err = npy::read(bytes::Bytes::from_static(b"PK\x03\x04 not npy")).unwrap_err();
/// assert!(matches!(err, NpyError::NotNpy { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NpyError {
    /// The file does not start with the magic.
    #[error("the file starts with \"{start}\", not the magic \"\\x93NUMPY\"")]
    NotNpy {
        /// The first bytes, escaped.
        start: String,
    },
    /// The file ends inside its magic, version or header length.
    #[error("the file ends after {len} bytes, inside the {part}")]
    Truncated {
        /// The bytes the file holds.
        len: usize,
        /// The part it ends in.
        part: &'static str,
    },
    /// A format version other than 1.0, 2.0 and 3.0.
    #[error("unsupported format version {major}.{minor} (1.0, 2.0 and 3.0 are supported)")]
    Version {
        /// Major version.
        major: u8,
        /// Minor version.
        minor: u8,
    },
    /// A header longer than the file.
    #[error(
        "the header claims {claimed} bytes, but the file holds only {available} after the header length"
    )]
    HeaderLength {
        /// The length the file gives.
        claimed: usize,
        /// The bytes after the header length.
        available: usize,
    },
    /// A version 3.0 header that is not UTF-8.
    #[error("the version 3.0 header is not UTF-8")]
    HeaderEncoding(#[source] std::string::FromUtf8Error),
    /// A header that is not numpy's dict of `descr`, `fortran_order` and `shape`.
    #[error("malformed header at byte {at}: {what}; the header is {header}")]
    Header {
        /// The byte of the header where it goes wrong.
        at: usize,
        /// What is wrong.
        what: String,
        /// The header, quoted and cut.
        header: String,
    },
    /// A header without some of its keys.
    #[error("the header has no {missing}: {header}")]
    MissingKeys {
        /// The missing keys, comma-separated.
        missing: String,
        /// The header, quoted and cut.
        header: String,
    },
    /// A shape of more than [`MAX_DIMS`] dimensions.
    #[error("the shape has {0} dimensions or more, more than the supported 32")]
    TooManyDimensions(usize),
    /// A `descr` that is not a supported numeric dtype.
    #[error("the header's descr")]
    DType(#[source] ArrayError),
    /// A shape whose size overflows, or data shorter than the shape needs.
    #[error("the data does not fit its header")]
    Data(#[source] ArrayError),
}

/// The `.npy` file of `array`, as chunks to write one after the other: the header (magic,
/// version, header dict), then the data.
///
/// The data chunk is a zero-copy slice of the array's data when the array is C- or
/// Fortran-contiguous (a Fortran-order array is written with `fortran_order: True`); any other
/// layout (sliced, strided, broadcast) is first compacted into C order. The byte order is kept
/// (a big-endian array is written as `>`). The format version is 1.0 unless the header needs
/// more than 65535 bytes (it never does for a numeric array), then 2.0. The compaction is the
/// only step that can fail: an [`ArrayError::OutOfMemory`].
///
/// ```
/// use pontoon_array::{Array, npy};
/// let a = Array::from_shape_vec(&[2, 3], vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// let chunks = npy::write(&a)?;
/// assert!(chunks[0].starts_with(b"\x93NUMPY\x01\x00"));
/// assert_eq!(chunks[0].len() % 64, 0);
/// assert_eq!(chunks[1].len(), 48);
/// let file: Vec<u8> = chunks.concat();
/// assert_eq!(npy::read(file.into())?, a);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write(array: &Array) -> Result<Vec<Bytes>, ArrayError> {
    let nbytes = array.len() * array.dtype().size();
    let (fortran_order, data) = if array.is_empty() {
        (false, Bytes::new())
    } else if array.is_c_contiguous() || array.is_f_contiguous() {
        let start = array.offset();
        let data = array.data().slice(start..start + nbytes);
        (!array.is_c_contiguous(), data)
    } else {
        (false, array.to_contiguous()?.data().clone())
    };
    let dict = header_dict(&array.descr(), fortran_order, array.shape());
    Ok(vec![Bytes::from(frame_header(&dict)), data])
}

/// numpy's header dict, unpadded: `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`.
fn header_dict(descr: &str, fortran_order: bool, shape: &[usize]) -> String {
    let order = if fortran_order { "True" } else { "False" };
    let shape = match shape {
        [one] => format!("({one},)"),
        dims => {
            let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    };
    format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}")
}

/// The magic, version, header length and `dict` padded with spaces and a final `\n` so that the
/// data after it starts at a multiple of [`ALIGN`]: version 1.0 when the padded header fits a
/// `u16` length, 2.0 otherwise.
fn frame_header(dict: &str) -> Vec<u8> {
    let padded = |prefix: usize| {
        let unpadded = prefix + dict.len() + 1;
        dict.len() + 1 + (ALIGN - unpadded % ALIGN) % ALIGN
    };
    let (major, prefix) = match padded(10) {
        len if len <= usize::from(u16::MAX) => (1u8, 10),
        _ => (2u8, 12),
    };
    let header_len = padded(prefix);
    let mut out = Vec::with_capacity(prefix + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        let len = u16::try_from(header_len).expect("checked to fit above");
        out.extend_from_slice(&len.to_le_bytes());
    } else {
        let len = u32::try_from(header_len).expect("a numeric array's header is far below 4 GiB");
        out.extend_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(prefix + header_len - 1, b' ');
    out.push(b'\n');
    out
}

/// The array in a `.npy` file, its data a zero-copy slice of `file`.
///
/// The header is parsed strictly (exactly the keys `descr`, `fortran_order` and `shape`, with
/// the literal forms numpy writes: quoted strings, `True`/`False`, tuples of integers such as
/// `(3, 4)`, `(5,)` and `()`) but tolerantly of spacing and trailing commas. The data is a view
/// of `file`, unless it is not aligned for its dtype in memory: then [`Array::from_parts`]
/// copies it once. Bytes after the data are ignored, as numpy does.
///
/// The data must be in the file, in full: an array read from a `.npy` file never makes more
/// memory than the file holds, so the receiver's expansion limits cannot be exceeded here (the
/// array is built with [`Limits::DEFAULT`], which holds for any contiguous data).
///
/// Every problem is an [`NpyError`], never a panic: a bad magic, an unknown version, a header
/// length beyond the file, a malformed header, an unsupported dtype ([`NpyError::DType`]), a
/// shape whose size overflows or data shorter than the shape needs ([`NpyError::Data`]).
///
/// ```
/// use bytes::Bytes;
/// use pontoon_array::{ByteOrder, DType, npy};
/// let mut file = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
/// file.extend_from_slice(b"{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }");
/// file.resize(127, b' ');
/// file.push(b'\n');
/// file.extend_from_slice(&[0x01, 0x02, 0xff, 0xfe]);
/// let a = npy::read(Bytes::from(file))?;
/// assert_eq!((a.dtype(), a.byte_order(), a.shape()), (DType::I16, ByteOrder::Big, &[2][..]));
/// assert_eq!(a.to_native()?.as_slice::<i16>()?, &[0x0102, -2]);
///
/// let err = npy::read(Bytes::from_static(b"PK\x03\x04 not npy")).unwrap_err();
/// assert!(matches!(err, npy::NpyError::NotNpy { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read(file: Bytes) -> Result<Array, NpyError> {
    let (header, data_start) = split_header(&file)?;
    let Header {
        descr,
        fortran_order,
        shape,
    } = parse_header(&header)?;
    let (dtype, order) = DType::parse(&descr).map_err(NpyError::DType)?;
    let size = dtype.size();
    let overflow = || {
        NpyError::Data(ArrayError::Overflow {
            shape: shape.clone(),
        })
    };
    let elements = shape
        .iter()
        .try_fold(1usize, |n, &len| n.checked_mul(len))
        .ok_or_else(overflow)?;
    let needed = elements
        .checked_mul(size)
        .filter(|&n| isize::try_from(n).is_ok())
        .ok_or_else(overflow)?;
    let available = file.len().saturating_sub(data_start);
    if available < needed {
        return Err(NpyError::Data(ArrayError::WrongLength {
            elements,
            itemsize: size,
            needed,
            len: available,
        }));
    }
    let strides = if fortran_order {
        contiguous_strides(shape.iter(), size)
    } else {
        let mut strides = contiguous_strides(shape.iter().rev(), size);
        strides.reverse();
        strides
    };
    Array::from_parts(
        dtype,
        order,
        shape,
        strides,
        0,
        file.slice(data_start..data_start + needed),
        &Limits::DEFAULT,
    )
    .map_err(NpyError::Data)
}

/// Contiguous byte strides for the axes `lens`, fastest first, in the same order; empty axes
/// count as 1. Only an empty array (whose strides are never followed) can have dimensions whose
/// product overflows: its strides saturate.
fn contiguous_strides<'a>(lens: impl Iterator<Item = &'a usize>, size: usize) -> Vec<isize> {
    let mut step = isize::try_from(size).unwrap_or(isize::MAX);
    lens.map(|&len| {
        let stride = step;
        step = step.saturating_mul(isize::try_from(len.max(1)).unwrap_or(isize::MAX));
        stride
    })
    .collect()
}

/// Checks the magic and version and returns the header as text (latin-1 in versions 1.0 and
/// 2.0, UTF-8 in 3.0) and where the data starts.
fn split_header(file: &[u8]) -> Result<(String, usize), NpyError> {
    let truncated = |part| NpyError::Truncated {
        len: file.len(),
        part,
    };
    if file.len() < MAGIC.len() && MAGIC.starts_with(file) {
        return Err(truncated("magic"));
    }
    if !file.starts_with(MAGIC) {
        let start = file.get(..file.len().min(MAGIC.len())).unwrap_or_default();
        return Err(NpyError::NotNpy {
            start: start.escape_ascii().to_string(),
        });
    }
    let [major, minor] = match file.get(6..8) {
        Some(&[major, minor]) => [major, minor],
        _ => return Err(truncated("version")),
    };
    let (length_bytes, part) = match (major, minor) {
        (1, 0) => (2, "2-byte header length"),
        (2 | 3, 0) => (4, "4-byte header length"),
        _ => return Err(NpyError::Version { major, minor }),
    };
    let header_start = 8 + length_bytes;
    let Some(length) = file.get(8..header_start) else {
        return Err(truncated(part));
    };
    let header_len = length
        .iter()
        .rev()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b));
    let header_end = header_start.saturating_add(header_len);
    let Some(header) = file.get(header_start..header_end) else {
        return Err(NpyError::HeaderLength {
            claimed: header_len,
            available: file.len() - header_start,
        });
    };
    let text = if major == 3 {
        String::from_utf8(header.to_vec()).map_err(NpyError::HeaderEncoding)?
    } else {
        header.iter().map(|&b| char::from(b)).collect()
    };
    Ok((text, header_end))
}

/// The header dict's values.
#[derive(Debug, PartialEq)]
struct Header {
    /// `descr`: the dtype string.
    descr: String,
    /// `fortran_order`.
    fortran_order: bool,
    /// `shape`.
    shape: Vec<usize>,
}

/// One value of the header dict.
enum Value {
    /// A quoted string.
    Str(String),
    /// `True` or `False`.
    Bool(bool),
    /// A tuple of non-negative integers.
    Tuple(Vec<usize>),
}

impl Value {
    /// What the value is, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Bool(_) => "a bool",
            Value::Tuple(_) => "a tuple",
        }
    }
}

/// Parses the header dict: exactly the keys of [`KEYS`], each once, in any order, with the
/// literal forms numpy writes; any spacing, a trailing comma, and trailing whitespace.
fn parse_header(text: &str) -> Result<Header, NpyError> {
    let mut parser = Parser { text, pos: 0 };
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    parser.expect('{')?;
    loop {
        if parser.eat('}') {
            break;
        }
        let at = parser.pos;
        let key = parser.string()?;
        let seen = match key.as_str() {
            "descr" => descr.is_some(),
            "fortran_order" => fortran_order.is_some(),
            "shape" => shape.is_some(),
            _ => {
                let allowed = KEYS.join(", ");
                let what = format!("unexpected key `{key}` (only {allowed} are allowed)");
                return Err(parser.error_at(at, &what));
            }
        };
        if seen {
            return Err(parser.error_at(at, &format!("the key `{key}` appears twice")));
        }
        parser.expect(':')?;
        let value_at = parser.pos;
        let value = parser.value()?;
        let kind = value.kind();
        let wrong = |wanted: &str| {
            parser.error_at(value_at, &format!("`{key}` must be {wanted}, not {kind}"))
        };
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("fortran_order", Value::Bool(b)) => fortran_order = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            ("descr", _) => return Err(wrong("a dtype string")),
            ("fortran_order", _) => return Err(wrong("True or False")),
            _ => return Err(wrong("a tuple of integers")),
        }
        if parser.eat('}') {
            break;
        }
        if !parser.eat(',') {
            let found = parser.found();
            let what = format!("expected `,` or `}}` after the value of `{key}`, found {found}");
            return Err(parser.error_at(parser.pos, &what));
        }
    }
    parser.skip_space();
    if parser.pos != text.len() {
        return Err(parser.error_at(parser.pos, "unexpected text after the dict"));
    }
    match (descr, fortran_order, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(Header {
            descr,
            fortran_order,
            shape,
        }),
        (descr, fortran_order, shape) => {
            let missing: Vec<&str> = [descr.is_none(), fortran_order.is_none(), shape.is_none()]
                .iter()
                .zip(KEYS)
                .filter(|(missing, _)| **missing)
                .map(|(_, key)| key)
                .collect();
            Err(NpyError::MissingKeys {
                missing: missing.join(", "),
                header: snippet(text),
            })
        }
    }
}

/// A cursor over the header text.
struct Parser<'a> {
    /// The whole header.
    text: &'a str,
    /// The byte position of the next character.
    pos: usize,
}

impl<'a> Parser<'a> {
    /// The rest of the text.
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// An error at byte `at`, with the header for context.
    fn error_at(&self, at: usize, what: &str) -> NpyError {
        NpyError::Header {
            at,
            what: what.to_string(),
            header: snippet(self.text),
        }
    }

    /// Skips spaces, tabs, carriage returns and newlines.
    fn skip_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
    }

    /// Skips spaces, then consumes `c` if it comes next.
    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        let found = self.rest().starts_with(c);
        if found {
            self.pos += c.len_utf8();
        }
        found
    }

    /// Skips spaces, then consumes `c` or fails.
    fn expect(&mut self, c: char) -> Result<(), NpyError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error_at(self.pos, &format!("expected `{c}`, found {}", self.found())))
        }
    }

    /// The next character, for messages.
    fn found(&self) -> String {
        match self.rest().chars().next() {
            Some(c) => format!("`{}`", c.escape_debug()),
            None => "the end".into(),
        }
    }

    /// A quoted string (single or double quotes, no escapes).
    fn string(&mut self) -> Result<String, NpyError> {
        self.skip_space();
        let Some(quote) = self
            .rest()
            .chars()
            .next()
            .filter(|c| matches!(c, '\'' | '"'))
        else {
            return Err(self.error_at(
                self.pos,
                &format!("expected a quoted string, found {}", self.found()),
            ));
        };
        let start = self.pos;
        let body = &self.rest()[1..];
        let Some(len) = body
            .find([quote, '\\', '\n'])
            .filter(|&i| body[i..].starts_with(quote))
        else {
            return Err(self.error_at(
                start,
                "a string without its closing quote (or with an escape)",
            ));
        };
        self.pos += 1 + len + 1;
        Ok(body[..len].to_string())
    }

    /// A value: a string, `True`, `False`, or a tuple of non-negative integers. Lists (numpy's
    /// structured dtypes) are refused by name.
    fn value(&mut self) -> Result<Value, NpyError> {
        self.skip_space();
        let rest = self.rest();
        if rest.starts_with(['\'', '"']) {
            return self.string().map(Value::Str);
        }
        if rest.starts_with('(') {
            return self.tuple().map(Value::Tuple);
        }
        if rest.starts_with('[') {
            return Err(self.error_at(
                self.pos,
                "a list (numpy writes one for a structured dtype; structured dtypes are not supported)",
            ));
        }
        let word_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        let value = match &rest[..word_len] {
            "True" => Value::Bool(true),
            "False" => Value::Bool(false),
            _ => {
                return Err(self.error_at(
                    self.pos,
                    &format!(
                        "expected a string, True, False or a tuple, found {}",
                        self.found()
                    ),
                ));
            }
        };
        self.pos += word_len;
        Ok(value)
    }

    /// A tuple of integers: `()`, `(5,)`, `(3, 4)`, `(3, 4,)`. `(5)` is not a tuple in Python,
    /// and is refused.
    fn tuple(&mut self) -> Result<Vec<usize>, NpyError> {
        let start = self.pos;
        self.expect('(')?;
        let mut items = Vec::new();
        if self.eat(')') {
            return Ok(items);
        }
        loop {
            if items.len() == MAX_DIMS {
                return Err(NpyError::TooManyDimensions(items.len() + 1));
            }
            items.push(self.integer()?);
            if self.eat(')') {
                if items.len() == 1 {
                    return Err(self.error_at(
                        start,
                        "`(n)` is a number, not a tuple; a 1-d shape is `(n,)`",
                    ));
                }
                return Ok(items);
            }
            self.expect(',')?;
            if self.eat(')') {
                return Ok(items);
            }
        }
    }

    /// A non-negative decimal integer that fits a `usize` (Python 2's `L` suffix allowed).
    fn integer(&mut self) -> Result<usize, NpyError> {
        self.skip_space();
        let rest = self.rest();
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            let what = if rest.starts_with('-') {
                "a negative dimension"
            } else {
                "expected an integer"
            };
            return Err(self.error_at(self.pos, &format!("{what}, found {}", self.found())));
        }
        let value = rest[..digits].parse::<usize>().map_err(|_| {
            self.error_at(
                self.pos,
                &format!("the dimension {} is too large", &rest[..digits]),
            )
        })?;
        self.pos += digits;
        if self.rest().starts_with('L') {
            self.pos += 1;
        }
        Ok(value)
    }
}

/// The header for messages: quoted and escaped, trailing padding dropped, cut at 200 characters.
fn snippet(text: &str) -> String {
    let text = text.trim_end_matches([' ', '\n']);
    let mut out: String = text
        .chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(200).is_some() {
        out.push_str("...");
    }
    format!("\"{out}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> Result<Header, NpyError> {
        parse_header(text)
    }

    fn shape_of(text: &str) -> Vec<usize> {
        header(text).unwrap().shape
    }

    #[test]
    fn numpy_headers_parse() {
        let h = header("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }          \n")
            .unwrap();
        assert_eq!(
            h,
            Header {
                descr: "<f8".into(),
                fortran_order: false,
                shape: vec![3, 4]
            }
        );
        assert_eq!(
            shape_of("{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }"),
            [5]
        );
        assert_eq!(
            shape_of("{'descr': '<f8', 'fortran_order': False, 'shape': (), }"),
            [0usize; 0]
        );
        let f = header("{'descr': '|b1', 'fortran_order': True, 'shape': (2, 0, 7), }\n").unwrap();
        assert!(f.fortran_order);
        assert_eq!(f.shape, [2, 0, 7]);
    }

    #[test]
    fn spacing_quotes_order_and_commas_are_tolerated() {
        for text in [
            "{'descr':'<i4','fortran_order':False,'shape':(2,3)}",
            "{ 'shape' : ( 2 , 3 , ) , 'descr' : \"<i4\" , 'fortran_order' : False }\n",
            "\n{\t'fortran_order': False,\r\n 'shape': (2, 3L), 'descr': '<i4',}   \n\n",
        ] {
            let h = header(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(
                h,
                Header {
                    descr: "<i4".into(),
                    fortran_order: false,
                    shape: vec![2, 3]
                },
                "{text:?}"
            );
        }
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        let cases = [
            ("", "expected `{`"),
            ("{'descr': '<f8', 'fortran_order': False}", "no shape"),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), 'extra': 1}",
                "unexpected key `extra`",
            ),
            (
                "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': ()}",
                "appears twice",
            ),
            (
                "{'descr': '<f8', 'fortran_order': 0, 'shape': ()}",
                "expected a string, True, False",
            ),
            (
                "{'descr': '<f8', 'fortran_order': 'False', 'shape': ()}",
                "`fortran_order` must be True or False",
            ),
            (
                "{'descr': '<f8', 'fortran_order': false, 'shape': ()}",
                "expected a string, True, False",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (3)}",
                "not a tuple",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (-3,)}",
                "negative dimension",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (3,,)}",
                "expected an integer",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (,)}",
                "expected an integer",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': [3]}",
                "a list",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                "too large",
            ),
            (
                "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': ()}",
                "structured dtypes",
            ),
            (
                "{'descr': 3, 'fortran_order': False, 'shape': ()}",
                "expected a string",
            ),
            (
                "{'descr': (), 'fortran_order': False, 'shape': ()}",
                "`descr` must be a dtype string",
            ),
            (
                "{'descr': '<f8, 'fortran_order': False, 'shape': ()}",
                "after the value of `descr`, found `f`",
            ),
            (
                "{'descr': '<f8\\'', 'fortran_order': False, 'shape': ()}",
                "escape",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': ()} x",
                "after the dict",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': ()}}",
                "after the dict",
            ),
            (
                "{'descr': '<f8' 'fortran_order': False, 'shape': ()}",
                "expected `,` or `}`",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2",
                "expected `,`",
            ),
            ("{descr: '<f8'}", "expected a quoted string"),
        ];
        for (text, reason) in cases {
            let err = header(text).expect_err(text);
            assert!(
                matches!(err, NpyError::Header { .. } | NpyError::MissingKeys { .. }),
                "{text}: {err:?}"
            );
            assert!(
                err.to_string().contains(reason),
                "{text}: `{err}` does not say `{reason}`"
            );
        }
        let deep = format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}), }}",
            "1, ".repeat(40)
        );
        assert_eq!(
            header(&deep).unwrap_err(),
            NpyError::TooManyDimensions(MAX_DIMS + 1)
        );
    }

    #[test]
    fn headers_are_padded_to_64_bytes_and_end_in_a_newline() {
        for dims in 0..=MAX_DIMS {
            let shape = vec![usize::MAX; dims];
            let framed = frame_header(&header_dict("<c16", true, &shape));
            assert_eq!(framed.len() % ALIGN, 0);
            assert_eq!(&framed[..8], b"\x93NUMPY\x01\x00");
            assert_eq!(
                usize::from(u16::from_le_bytes([framed[8], framed[9]])),
                framed.len() - 10
            );
            assert_eq!(framed.last(), Some(&b'\n'));
            let (text, start) = split_header(&framed).unwrap();
            assert_eq!(start, framed.len());
            assert_eq!(parse_header(&text).unwrap().shape, shape);
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "a 64 KiB header is slow under miri; the logic is the same as for small ones"
    )]
    fn a_header_past_64_kib_takes_version_2() {
        let dict = format!(
            "{{'descr': '<f8', 'fortran_order': False, 'shape': (), {}}}",
            " ".repeat(70_000)
        );
        let framed = frame_header(&dict);
        assert_eq!(&framed[..8], b"\x93NUMPY\x02\x00");
        let len = u32::from_le_bytes(framed[8..12].try_into().unwrap()) as usize;
        assert_eq!(len, framed.len() - 12);
        assert_eq!(framed.len() % ALIGN, 0);
        let mut file = framed;
        file.extend_from_slice(&7.5f64.to_le_bytes());
        let a = read(Bytes::from(file)).unwrap();
        assert_eq!(a.shape(), &[0usize; 0]);
        assert_eq!(a.to_native().unwrap().as_slice::<f64>().unwrap(), &[7.5]);
    }

    #[test]
    fn version_3_headers_are_utf8() {
        let dict = "{'descr': '<u2', 'fortran_order': False, 'shape': (1,), }\n";
        let mut file = b"\x93NUMPY\x03\x00".to_vec();
        file.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        file.extend_from_slice(dict.as_bytes());
        file.extend_from_slice(&[0x34, 0x12]);
        let a = read(Bytes::from(file.clone())).unwrap();
        assert_eq!(a.to_native().unwrap().as_slice::<u16>().unwrap(), &[0x1234]);
        file[13] = 0xff; // inside the header: not UTF-8
        let err = read(Bytes::from(file)).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn latin1_headers_of_version_1_fail_as_text_not_as_bytes() {
        let dict = "{'descr': '<\u{e9}8', 'fortran_order': False, 'shape': (), }\n";
        let latin1: Vec<u8> = dict.chars().map(|c| c as u8).collect();
        let mut file = b"\x93NUMPY\x01\x00".to_vec();
        file.extend_from_slice(&(latin1.len() as u16).to_le_bytes());
        file.extend_from_slice(&latin1);
        assert_eq!(
            read(Bytes::from(file)).unwrap_err(),
            NpyError::DType(ArrayError::UnknownDType("<\u{e9}8".into()))
        );
    }

    #[test]
    fn snippets_are_cut_and_escaped() {
        assert_eq!(snippet("{'a'}\n   \n"), "\"{\\'a\\'}\"");
        assert!(snippet(&"x".repeat(500)).ends_with("...\""));
    }
}
