//! [`PyStr`]: a Python `str` as pickle stores it, UTF-8 in which lone surrogates may appear (what
//! Python's `surrogatepass` error handler writes), viewed from the input without a copy.

use std::fmt;

use bytes::Bytes;

/// A Python `str`: UTF-8 bytes, except that lone surrogates (U+D800 to U+DFFF, which Python
/// strings may hold) are allowed, encoded as UTF-8 encodes any other code point. Almost every
/// string is plain UTF-8 and [`PyStr::as_str`] gives it without a copy.
///
/// ```
/// use pontoon_pickle::PyStr;
/// let s = PyStr::from("héllo");
/// assert_eq!(s.as_str(), Some("héllo"));
/// let lone = PyStr::from_surrogatepass(bytes::Bytes::from_static(b"\xed\xb2\x80")).unwrap();
/// assert_eq!(lone.as_str(), None); // '\udc80'
/// assert_eq!(lone.code_points().collect::<Vec<_>>(), vec![0xDC80]);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyStr {
    bytes: Bytes,
    utf8: bool,
}

impl PyStr {
    /// Checks `bytes` as UTF-8 with surrogates allowed; `None` if they are not.
    ///
    /// ```
    /// assert!(pontoon_pickle::PyStr::from_surrogatepass(bytes::Bytes::from_static(b"\xff")).is_none());
    /// ```
    pub fn from_surrogatepass(bytes: Bytes) -> Option<PyStr> {
        if std::str::from_utf8(&bytes).is_ok() {
            return Some(PyStr { bytes, utf8: true });
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (_, len) = decode_one(rest)?;
            rest = &rest[len..];
        }
        Some(PyStr { bytes, utf8: false })
    }

    /// A string made of `code_points` (each at most U+10FFFF); `None` if one is out of range.
    ///
    /// ```
    /// let s = pontoon_pickle::PyStr::from_code_points([0x68, 0xE9]).unwrap();
    /// assert_eq!(s.as_str(), Some("hé"));
    /// ```
    pub fn from_code_points(code_points: impl IntoIterator<Item = u32>) -> Option<PyStr> {
        let mut out = Vec::new();
        let mut utf8 = true;
        for cp in code_points {
            if (0xD800..0xE000).contains(&cp) {
                utf8 = false;
            }
            push_code_point(&mut out, cp)?;
        }
        Some(PyStr {
            bytes: Bytes::from(out),
            utf8,
        })
    }

    /// The string, when it holds no lone surrogate.
    ///
    /// ```
    /// assert_eq!(pontoon_pickle::PyStr::from("a").as_str(), Some("a"));
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        if self.utf8 {
            // Checked when made.
            std::str::from_utf8(&self.bytes).ok()
        } else {
            None
        }
    }

    /// The stored bytes: UTF-8 with surrogates allowed, as pickle's `BINUNICODE` carries them.
    ///
    /// ```
    /// assert_eq!(pontoon_pickle::PyStr::from("é").as_bytes(), "é".as_bytes());
    /// ```
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The code points, in order.
    ///
    /// ```
    /// let s = pontoon_pickle::PyStr::from("ab");
    /// assert_eq!(s.code_points().count(), 2);
    /// ```
    pub fn code_points(&self) -> CodePoints<'_> {
        CodePoints { rest: &self.bytes }
    }

    /// The string with each lone surrogate replaced by U+FFFD.
    ///
    /// ```
    /// assert_eq!(pontoon_pickle::PyStr::from("x").to_string_lossy(), "x");
    /// ```
    pub fn to_string_lossy(&self) -> String {
        match self.as_str() {
            Some(s) => s.to_string(),
            None => self
                .code_points()
                .map(|cp| char::from_u32(cp).unwrap_or('\u{FFFD}'))
                .collect(),
        }
    }
}

impl From<&str> for PyStr {
    fn from(s: &str) -> PyStr {
        PyStr {
            bytes: Bytes::copy_from_slice(s.as_bytes()),
            utf8: true,
        }
    }
}

impl From<String> for PyStr {
    fn from(s: String) -> PyStr {
        PyStr {
            bytes: Bytes::from(s.into_bytes()),
            utf8: true,
        }
    }
}

impl fmt::Debug for PyStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string_lossy(), f)
    }
}

/// The code points of a [`PyStr`] ([`PyStr::code_points`]).
///
/// ```
/// let s = pontoon_pickle::PyStr::from("€");
/// let mut it = s.code_points();
/// assert_eq!(it.next(), Some(0x20AC));
/// assert_eq!(it.next(), None);
/// ```
#[derive(Clone, Debug)]
pub struct CodePoints<'a> {
    rest: &'a [u8],
}

impl Iterator for CodePoints<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let (cp, len) = decode_one(self.rest)?;
        self.rest = &self.rest[len..];
        Some(cp)
    }
}

/// One code point from the front of `bytes` and its length, surrogates allowed.
fn decode_one(bytes: &[u8]) -> Option<(u32, usize)> {
    let first = *bytes.first()?;
    let (len, init) = match first {
        0x00..=0x7F => return Some((u32::from(first), 1)),
        0xC2..=0xDF => (2, u32::from(first & 0x1F)),
        0xE0..=0xEF => (3, u32::from(first & 0x0F)),
        0xF0..=0xF4 => (4, u32::from(first & 0x07)),
        _ => return None,
    };
    let tail = bytes.get(1..len)?;
    let mut cp = init;
    for &b in tail {
        if b & 0xC0 != 0x80 {
            return None;
        }
        cp = (cp << 6) | u32::from(b & 0x3F);
    }
    let shortest = match len {
        2 => cp >= 0x80,
        3 => cp >= 0x800,
        _ => (0x10000..=0x10FFFF).contains(&cp),
    };
    shortest.then_some((cp, len))
}

/// Appends `cp` in UTF-8 (surrogates too); `None` beyond U+10FFFF.
pub(crate) fn push_code_point(out: &mut Vec<u8>, cp: u32) -> Option<()> {
    match cp {
        0..=0x7F => out.push(cp as u8),
        0x80..=0x7FF => out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]),
        0x800..=0xFFFF => out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
        0x10000..=0x10FFFF => out.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
        _ => return None,
    }
    Some(())
}
