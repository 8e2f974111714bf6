//! The message header a registry writes and reads: which family, which type, and the family's own
//! fields. Read with hostile input in mind: every key and type is checked.
//!
//! The serde family writes `{"family": "serde", "type": T, "body": bin | nil, "buffers": n}`:
//! the body inline when small, else in frame 0, followed by `n` buffer frames. Every other family
//! writes `{"family": F, "type": T, "meta": any}` and owns all the frames.

use rmp::Marker;

use crate::DeserializeError;

/// Bodies up to this size travel inside the header; larger ones as a frame of their own.
pub(crate) const INLINE_BODY_MAX: usize = 4 << 10;

/// The serde family's header, up to the body.
pub(crate) fn write_serde_prefix(out: &mut Vec<u8>, type_name: &str) {
    out.push(0x84); // fixmap of 4
    write_str(out, "family");
    write_str(out, crate::registry::SERDE);
    write_str(out, "type");
    write_str(out, type_name);
    write_str(out, "body");
}

pub(crate) fn write_buffers(out: &mut Vec<u8>, count: usize) {
    write_str(out, "buffers");
    rmp::encode::write_uint(out, count as u64).expect("writing to a Vec never fails");
}

/// A family other than serde: family, type and meta.
pub(crate) fn write_family_header(
    out: &mut Vec<u8>,
    family: &str,
    type_name: &str,
    meta: &rmpv::Value,
) {
    out.push(0x83);
    write_str(out, "family");
    write_str(out, family);
    write_str(out, "type");
    write_str(out, type_name);
    write_str(out, "meta");
    rmpv::encode::write_value(out, meta).expect("writing to a Vec never fails");
}

pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    rmp::encode::write_str(out, s).expect("writing to a Vec never fails");
}

/// Where the serde family's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body<'a> {
    Inline(&'a [u8]),
    Frame,
}

/// A header as read, with borrowed fields.
#[derive(Debug, Default)]
pub(crate) struct Parsed<'a> {
    pub(crate) family: &'a str,
    pub(crate) type_name: &'a str,
    pub(crate) body: Option<Body<'a>>,
    pub(crate) buffers: Option<u64>,
    /// The raw MessagePack of `meta`.
    pub(crate) meta: Option<&'a [u8]>,
}

fn wrong(key: &'static str, expected: &'static str) -> DeserializeError {
    DeserializeError::WrongType { key, expected }
}

/// Reads a header's fields; checks types, duplicates, and that `family` and `type` are present.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed<'_>, DeserializeError> {
    let mut rd = bytes;
    let len = rmp::decode::read_map_len(&mut rd).map_err(|_| DeserializeError::HeaderNotAMap)?;
    let mut parsed = Parsed::default();
    let (mut has_family, mut has_type) = (false, false);
    for _ in 0..len {
        let (key, rest) =
            rmp::decode::read_str_from_slice(rd).map_err(|_| DeserializeError::HeaderNotAMap)?;
        rd = rest;
        let duplicate = || DeserializeError::DuplicateKey {
            key: key.to_string(),
        };
        match key {
            "family" => {
                if std::mem::replace(&mut has_family, true) {
                    return Err(duplicate());
                }
                let (value, rest) = rmp::decode::read_str_from_slice(rd)
                    .map_err(|_| wrong("family", "a string"))?;
                parsed.family = value;
                rd = rest;
            }
            "type" => {
                if std::mem::replace(&mut has_type, true) {
                    return Err(duplicate());
                }
                let (value, rest) =
                    rmp::decode::read_str_from_slice(rd).map_err(|_| wrong("type", "a string"))?;
                parsed.type_name = value;
                rd = rest;
            }
            "body" => {
                if parsed.body.is_some() {
                    return Err(duplicate());
                }
                parsed.body = Some(read_body(&mut rd)?);
            }
            "buffers" => {
                if parsed.buffers.is_some() {
                    return Err(duplicate());
                }
                let n: u64 = rmp::decode::read_int(&mut rd)
                    .map_err(|_| wrong("buffers", "an unsigned integer"))?;
                parsed.buffers = Some(n);
            }
            "meta" => {
                if parsed.meta.is_some() {
                    return Err(duplicate());
                }
                let start = rd;
                skip_value(&mut rd).map_err(|_| wrong("meta", "one MessagePack value"))?;
                parsed.meta = Some(&start[..start.len() - rd.len()]);
            }
            _ => skip_value(&mut rd).map_err(|_| DeserializeError::HeaderNotAMap)?,
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
    let len = rmp::decode::read_bin_len(rd).map_err(|_| expected())? as usize;
    if len > rd.len() {
        return Err(expected());
    }
    let (body, rest) = rd.split_at(len);
    *rd = rest;
    Ok(Body::Inline(body))
}

/// Skips one MessagePack value. Headers that arrive through ferry-wire were validated as
/// well-formed and bounded in depth; this still checks every length against what remains.
fn skip_value(rd: &mut &[u8]) -> Result<(), ()> {
    rmpv::decode::read_value_ref(rd).map(|_| ()).map_err(|_| ())
}
