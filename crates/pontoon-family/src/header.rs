//! The message header a registry writes and reads: which family, which type, and the family's own
//! fields. Read with hostile input in mind: every key and type is checked.
//!
//! The serde family writes `{"family": "serde", "type": T, "body": bin | nil, "buffers": n}`:
//! the body inline when small, else in frame 0, followed by `n` buffer frames. Every other family
//! writes `{"family": F, "type": T, "meta": any}` and owns all the frames.

use rmp::Marker;

use crate::msgpack::{read_str_bytes, skip_value};

use crate::DeserializeError;

/// Bodies up to this size travel inside the header; larger ones as a frame of their own.
pub(crate) const INLINE_BODY_MAX_BYTES: usize = 4 << 10;

/// The serde family's header, up to the body: `{"family": "serde", "type": T, "body": ...`.
pub(crate) fn write_serde_prefix(out: &mut Vec<u8>, type_name: &str) {
    // fixmap of 4, "family", "serde", "type"
    const HEAD: &[u8; 19] = b"\x84\xa6family\xa5serde\xa4type";
    // Every serialize writes this: with a short type name the constant and the fixstr marker
    // go in as one fixed-size copy, after one reserve for the whole prefix.
    out.reserve(HEAD.len() + 5 + type_name.len() + 5);
    match u8::try_from(type_name.len()) {
        Ok(len) if len < 32 => {
            let mut head = [0u8; HEAD.len() + 1];
            head[..HEAD.len()].copy_from_slice(HEAD);
            head[HEAD.len()] = 0xa0 | len; // fixstr
            out.extend_from_slice(&head);
            out.extend_from_slice(type_name.as_bytes());
        }
        _ => {
            out.extend_from_slice(HEAD);
            write_str(out, type_name);
        }
    }
    out.extend_from_slice(b"\xa4body");
}

/// `"buffers": count`, the serde family header's last entry.
pub(crate) fn write_buffers(out: &mut Vec<u8>, count: usize) {
    match count {
        // "buffers" and a positive fixint in one fixed-size copy.
        0..0x80 => {
            let mut entry = *b"\xa7buffers\0";
            entry[8] = count as u8;
            out.extend_from_slice(&entry);
        }
        _ => {
            out.extend_from_slice(b"\xa7buffers");
            rmp::encode::write_uint(out, count as u64).expect("writing to a Vec never fails");
        }
    }
}

/// A family other than serde: family, type and meta.
pub(crate) fn write_family_header(
    out: &mut Vec<u8>,
    family: &str,
    type_name: &str,
    meta: &rmpv::Value,
) {
    out.extend_from_slice(b"\x83\xa6family");
    write_str(out, family);
    out.extend_from_slice(b"\xa4type");
    write_str(out, type_name);
    out.extend_from_slice(b"\xa4meta");
    rmpv::encode::write_value(out, meta).expect("writing to a Vec never fails");
}

pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    match s.len() {
        len @ 0..32 => out.push(0xa0 | len as u8), // fixstr
        len @ 32..256 => out.extend_from_slice(&[0xd9, len as u8]),
        len @ 256..65536 => {
            out.push(0xda);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0xdb);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(s.as_bytes());
}

/// The family a header written by a registry names (its first entry, `family`), read without
/// the rest of the header; `None` for any other header (a hello, a store request, a header
/// laid out otherwise). Cheap enough to run on every message a transport counts; it checks
/// nothing else, so deserializing still reads and checks the whole header.
///
/// ```
/// let message = pontoon_family::Registry::new().serialize(&7u8)?;
/// assert_eq!(pontoon_family::family_name(message.header.as_bytes()), Some("serde"));
/// assert_eq!(pontoon_family::family_name(b"\x80"), None); // an empty map names no family
/// # Ok::<(), pontoon_family::SerializeError>(())
/// ```
pub fn family_name(header: &[u8]) -> Option<&str> {
    let rest = match header.split_first()? {
        (0x81..=0x8f, rest) => rest,
        (0xde, rest) => rest.get(2..)?,
        (0xdf, rest) => rest.get(4..)?,
        _ => return None,
    };
    let mut rest = rest.strip_prefix(b"\xa6family")?;
    std::str::from_utf8(read_str_bytes(&mut rest)?).ok()
}

/// Where the serde family's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body<'a> {
    Inline(&'a [u8]),
    Frame,
}

/// A header as read, with borrowed fields. Names stay bytes until a `&str` is needed: most
/// reads only compare them.
#[derive(Debug, Default)]
pub(crate) struct Parsed<'a> {
    pub(crate) family: &'a [u8],
    pub(crate) type_name: &'a [u8],
    pub(crate) body: Option<Body<'a>>,
    pub(crate) buffers: Option<u64>,
    /// The raw MessagePack of `meta`.
    pub(crate) meta: Option<&'a [u8]>,
}

/// Text for an error message: the bytes as UTF-8, with any invalid bytes replaced.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The type name as a `&str`, for the paths that hand it to a family or look it up by name.
pub(crate) fn type_str<'a>(parsed: &Parsed<'a>) -> Result<&'a str, DeserializeError> {
    std::str::from_utf8(parsed.type_name).map_err(|_| wrong("type", "a UTF-8 string"))
}

fn wrong(key: &'static str, expected: &'static str) -> DeserializeError {
    DeserializeError::WrongType { key, expected }
}

/// Reads a header's fields; checks types, duplicates, and that `family` and `type` are present.
///
/// Inlined with the serde fast path, so that what it read stays in registers: returned
/// through memory, the result cost a stall on every small deserialize.
#[inline(always)]
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed<'_>, DeserializeError> {
    match parse_serde_as_written(bytes) {
        Some(parsed) => Ok(parsed),
        None => parse_any(bytes),
    }
}

/// The header exactly as [`write_serde_prefix`] and [`write_buffers`] lay it out, read without the
/// general parser's bookkeeping; `None` for anything else, which [`parse_any`] then reads (to
/// the same result, for a header that matches here).
#[inline(always)]
fn parse_serde_as_written(bytes: &[u8]) -> Option<Parsed<'_>> {
    let mut rd = bytes.strip_prefix(b"\x84\xa6family\xa5serde\xa4type")?;
    let type_name = read_str_bytes(&mut rd)?;
    rd = rd.strip_prefix(b"\xa4body")?;
    let body = read_body(&mut rd).ok()?;
    let buffers = match rd.strip_prefix(b"\xa7buffers")? {
        [n] if *n < 0x80 => u64::from(*n),
        _ => return None,
    };
    Some(Parsed {
        family: b"serde",
        type_name,
        body: Some(body),
        buffers: Some(buffers),
        meta: None,
    })
}

/// Reads any header map, key by key.
#[inline(never)]
fn parse_any(bytes: &[u8]) -> Result<Parsed<'_>, DeserializeError> {
    let mut rd = bytes;
    let len = rmp::decode::read_map_len(&mut rd).map_err(|_| DeserializeError::HeaderNotAMap)?;
    let mut parsed = Parsed::default();
    let (mut has_family, mut has_type) = (false, false);
    for _ in 0..len {
        let key = read_str_bytes(&mut rd).ok_or(DeserializeError::HeaderNotAMap)?;
        let duplicate = || DeserializeError::DuplicateKey { key: lossy(key) };
        match key {
            b"family" => {
                if std::mem::replace(&mut has_family, true) {
                    return Err(duplicate());
                }
                parsed.family =
                    read_str_bytes(&mut rd).ok_or_else(|| wrong("family", "a string"))?;
            }
            b"type" => {
                if std::mem::replace(&mut has_type, true) {
                    return Err(duplicate());
                }
                parsed.type_name =
                    read_str_bytes(&mut rd).ok_or_else(|| wrong("type", "a string"))?;
            }
            b"body" => {
                if parsed.body.is_some() {
                    return Err(duplicate());
                }
                parsed.body = Some(read_body(&mut rd)?);
            }
            b"buffers" => {
                if parsed.buffers.is_some() {
                    return Err(duplicate());
                }
                let n: u64 = rmp::decode::read_int(&mut rd)
                    .map_err(|_| wrong("buffers", "an unsigned integer"))?;
                parsed.buffers = Some(n);
            }
            b"meta" => {
                if parsed.meta.is_some() {
                    return Err(duplicate());
                }
                let start = rd;
                skip_value(&mut rd).map_err(|_| wrong("meta", "one MessagePack value"))?;
                parsed.meta = Some(&start[..start.len() - rd.len()]);
            }
            _ => {
                skip_value(&mut rd).map_err(|_| DeserializeError::HeaderNotAMap)?;
            }
        }
    }
    if !has_family {
        return Err(DeserializeError::MissingKey { key: "family" });
    }
    if !has_type {
        return Err(DeserializeError::MissingKey { key: "type" });
    }
    Ok(parsed)
}

fn read_body<'a>(rd: &mut &'a [u8]) -> Result<Body<'a>, DeserializeError> {
    let expected = || wrong("body", "binary data or nil");
    let marker = Marker::from_u8(*rd.first().ok_or_else(expected)?);
    if marker == Marker::Null {
        *rd = &rd[1..];
        return Ok(Body::Frame);
    }
    // The three `bin` markers read by hand: every deserialize reads one, and `rmp`'s general
    // reader costs more than the body of a small message takes to check.
    let bytes: &'a [u8] = rd;
    let (len, rest) = match bytes {
        [0xc4, n, rest @ ..] => (usize::from(*n), rest),
        [0xc5, a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        [0xc6, a, b, c, d, rest @ ..] => (u32::from_be_bytes([*a, *b, *c, *d]) as usize, rest),
        _ => return Err(expected()),
    };
    *rd = rest;
    if len > rd.len() {
        return Err(expected());
    }
    let (body, rest) = rd.split_at(len);
    *rd = rest;
    Ok(Body::Inline(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serde header as a general MessagePack writer lays it out, key by key.
    fn generic(type_name: &str, body: &[u8], buffers: usize) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_map_len(&mut out, 4).unwrap();
        for (key, value) in [("family", "serde"), ("type", type_name)] {
            rmp::encode::write_str(&mut out, key).unwrap();
            rmp::encode::write_str(&mut out, value).unwrap();
        }
        rmp::encode::write_str(&mut out, "body").unwrap();
        out.push(0xc6); // bin 32, as the registry writes it
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        rmp::encode::write_str(&mut out, "buffers").unwrap();
        rmp::encode::write_uint(&mut out, buffers as u64).unwrap();
        out
    }

    #[test]
    fn the_fast_writers_lay_out_what_a_general_writer_does_and_both_parsers_agree() {
        let body = b"\x01\x02\x03";
        for name_len in [0, 1, 31, 32, 255, 256] {
            let type_name = "t".repeat(name_len);
            for buffers in [0, 1, 127, 128, 300] {
                let mut out = Vec::new();
                write_serde_prefix(&mut out, &type_name);
                out.push(0xc6);
                out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                out.extend_from_slice(body);
                write_buffers(&mut out, buffers);
                assert_eq!(
                    out,
                    generic(&type_name, body, buffers),
                    "{name_len} {buffers}"
                );

                let general = parse_any(&out).unwrap();
                let parsed = parse(&out).unwrap();
                for p in [&general, &parsed] {
                    assert_eq!(p.family, b"serde");
                    assert_eq!(p.type_name, type_name.as_bytes());
                    assert_eq!(p.body, Some(Body::Inline(body)));
                    assert_eq!(p.buffers, Some(buffers as u64));
                    assert_eq!(p.meta, None);
                }
            }
        }
    }

    #[test]
    fn a_body_reads_under_each_bin_marker_and_a_length_past_the_header_is_refused() {
        let body = vec![7u8; 300];
        for (marker, len_bytes) in [(0xc4u8, 1usize), (0xc5, 2), (0xc6, 4)] {
            for len in [0usize, 3, 255] {
                let mut header = Vec::new();
                rmp::encode::write_map_len(&mut header, 3).unwrap();
                for (key, value) in [("family", "serde"), ("type", "t")] {
                    rmp::encode::write_str(&mut header, key).unwrap();
                    rmp::encode::write_str(&mut header, value).unwrap();
                }
                rmp::encode::write_str(&mut header, "body").unwrap();
                header.push(marker);
                header.extend_from_slice(&(len as u32).to_be_bytes()[4 - len_bytes..]);
                let at = header.len();
                header.extend_from_slice(&body[..len]);
                let parsed = parse(&header).unwrap();
                assert_eq!(
                    parsed.body,
                    Some(Body::Inline(&body[..len])),
                    "{marker:#x} {len}"
                );
                // One byte short of the length it claims.
                if len > 0 {
                    assert!(parse(&header[..at + len - 1]).is_err(), "{marker:#x} {len}");
                }
            }
        }
        // Anything but bin or nil is no body.
        let mut header = generic("t", b"", 0);
        let at = header.iter().position(|&b| b == 0xc6).unwrap();
        header[at] = 0xd9; // str 8
        assert!(matches!(
            parse(&header),
            Err(DeserializeError::WrongType { key: "body", .. })
        ));
    }
}
