//! The hello: what each side of a connection says first (identity, accepted families, codecs,
//! largest message), as pure functions to encode, decode and agree on it. The transport's
//! handshake only moves these bytes. Specified in `docs/wire-format.md`.

use rmpv::Value;

use crate::{Codec, Header, Limits, Message};

/// The transport protocol's version, sent in every hello.
pub const PROTOCOL_VERSION: u64 = 1;

/// Codecs this build decodes, in the order it prefers them: those whose feature (`lz4`, `zstd`)
/// it is built with, and no others, so a hello never announces a codec the side cannot decode.
///
/// ```
/// use pontoon_wire::{Codec, DECODES};
/// assert_eq!(DECODES.contains(&Codec::Zstd), cfg!(feature = "zstd"));
/// assert!(DECODES.iter().all(|codec| codec.is_built()));
/// ```
pub const DECODES: &[Codec] = &[
    #[cfg(feature = "lz4")]
    Codec::Lz4,
    #[cfg(feature = "zstd")]
    Codec::Zstd,
];

/// The limits a hello is read with, whatever a connection's own limits are: no frames, at most
/// 64 KiB of header and 128 KiB in all.
///
/// ```
/// assert_eq!(pontoon_wire::hello_limits().max_frames, 0);
/// ```
pub fn hello_limits() -> Limits {
    Limits {
        max_frames: 0,
        max_header_bytes: 64 << 10,
        max_message_bytes: 128 << 10,
        ..Limits::DEFAULT
    }
}

/// Whether a side compresses what it sends. The peer always decodes what it announced in
/// `decodes`; every frame records its own codec.
///
/// ```
/// assert_eq!(pontoon_wire::Compression::default(), pontoon_wire::Compression::Off);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Never compress: a frame arrives as a view of the receive buffer, not a decompressed
    /// copy. The default (as in Dask since distributed#7768).
    #[default]
    Off,
    /// Compress where it pays in time as well as in size: never to a peer on this machine (Unix
    /// socket, in-process, loopback TCP), where sending costs less than compressing; to other
    /// peers LZ4 (the fastest codec, hundreds of MB/s to compress and GB/s to decompress), and
    /// then only the frames that pay in size (see [`Codec`] and `docs/wire-format.md`).
    Auto,
    /// Compress with this codec (frame by frame, where it pays in size), if the peer decodes it.
    With(Codec),
}

/// What one side says in its hello.
///
/// ```
/// use pontoon_wire::{Codec, Hello};
/// let hello = Hello::new("worker-1", vec!["serde".into()], Codec::None, 1 << 30);
/// assert_eq!(Hello::from_message(&hello.to_message())?, hello);
/// # Ok::<(), pontoon_wire::HelloError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hello {
    /// The transport protocol version ([`PROTOCOL_VERSION`]).
    pub protocol: u64,
    /// How the side names itself.
    pub identity: String,
    /// The families whose messages the side accepts.
    pub accepts: Vec<String>,
    /// The codecs the side decodes that this build knows, in its order of preference (names this
    /// build does not know are skipped).
    pub decodes: Vec<Codec>,
    /// The codec the side would like to send with.
    pub compression: Codec,
    /// The largest encoded message the side accepts, in bytes.
    pub max_message_bytes: u64,
    /// The authentication scheme the side requires ([`AUTH_SCHEME`](crate::AUTH_SCHEME)) when it
    /// has a shared secret; `None` (the key left out) when it has none. See
    /// [`auth_agreed`](crate::auth_agreed).
    pub auth: Option<String>,
}

impl Hello {
    /// This build's hello: [`PROTOCOL_VERSION`], decoding [`DECODES`].
    ///
    /// ```
    /// let hello = pontoon_wire::Hello::new("me", vec![], pontoon_wire::Codec::Lz4, 1024);
    /// assert_eq!(hello.protocol, pontoon_wire::PROTOCOL_VERSION);
    /// ```
    pub fn new(
        identity: impl Into<String>,
        accepts: Vec<String>,
        compression: Codec,
        max_message_bytes: u64,
    ) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            identity: identity.into(),
            accepts,
            decodes: DECODES.to_vec(),
            compression,
            max_message_bytes,
            auth: None,
        }
    }

    /// This hello, requiring shared-secret authentication ([`AUTH_SCHEME`](crate::AUTH_SCHEME)).
    ///
    /// ```
    /// let hello = pontoon_wire::Hello::new("me", vec![], pontoon_wire::Codec::None, 1024).with_auth();
    /// assert_eq!(hello.auth.as_deref(), Some(pontoon_wire::AUTH_SCHEME));
    /// assert_eq!(pontoon_wire::Hello::from_message(&hello.to_message())?, hello);
    /// # Ok::<(), pontoon_wire::HelloError>(())
    /// ```
    #[must_use]
    pub fn with_auth(mut self) -> Hello {
        self.auth = Some(crate::AUTH_SCHEME.to_string());
        self
    }

    /// The hello as a message: no frames, a header map with six keys in a fixed order, and a
    /// seventh, `auth`, when the side requires authentication.
    ///
    /// ```
    /// let hello = pontoon_wire::Hello::new("me", vec![], pontoon_wire::Codec::None, 1024);
    /// assert!(hello.to_message().frames.is_empty());
    /// ```
    pub fn to_message(&self) -> Message {
        let header = Value::Map(vec![
            ("protocol".into(), self.protocol.into()),
            ("identity".into(), self.identity.as_str().into()),
            (
                "accepts".into(),
                Value::Array(self.accepts.iter().map(|f| f.as_str().into()).collect()),
            ),
            (
                "decodes".into(),
                Value::Array(self.decodes.iter().map(|c| c.name().into()).collect()),
            ),
            ("compression".into(), self.compression.name().into()),
            ("max_message".into(), self.max_message_bytes.into()),
        ]);
        let header = match (header, &self.auth) {
            (Value::Map(mut map), Some(scheme)) => {
                map.push(("auth".into(), scheme.as_str().into()));
                Value::Map(map)
            }
            (header, _) => header,
        };
        Message::new(Header::from_value(&header), vec![])
    }

    /// Reads a hello from a message. Keys it does not know are ignored; a missing key, one of
    /// the wrong type, frames, or a `compression` naming no codec this build knows are errors.
    /// A `protocol` other than this build's is read, not refused: see [`negotiate`].
    ///
    /// ```
    /// use pontoon_wire::{Header, Hello, HelloError, Message};
    /// let not_a_hello = Message::new(Header::from_serde(&"hi").unwrap(), vec![]);
    /// assert_eq!(Hello::from_message(&not_a_hello), Err(HelloError::NotAMap));
    /// ```
    pub fn from_message(message: &Message) -> Result<Hello, HelloError> {
        if !message.frames.is_empty() {
            return Err(HelloError::HasFrames {
                count: message.frames.len(),
            });
        }
        let value = message
            .header
            .to_value()
            .map_err(|_| HelloError::Unreadable)?;
        let map = value.as_map().ok_or(HelloError::NotAMap)?;
        let field = |key: &'static str| {
            map.iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v)
                .ok_or(HelloError::Missing { key })
        };
        let wrong =
            |key: &'static str, expected: &'static str| HelloError::WrongType { key, expected };
        let strings = |key: &'static str| -> Result<Vec<String>, HelloError> {
            field(key)?
                .as_array()
                .ok_or(wrong(key, "an array of strings"))?
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .ok_or(wrong(key, "an array of strings"))
                })
                .collect()
        };
        let protocol = field("protocol")?
            .as_u64()
            .ok_or(wrong("protocol", "an unsigned integer"))?;
        let identity = field("identity")?
            .as_str()
            .ok_or(wrong("identity", "a string"))?
            .to_string();
        let accepts = strings("accepts")?;
        let decodes = strings("decodes")?
            .iter()
            .filter_map(|name| name.parse::<Codec>().ok())
            .collect();
        let name = field("compression")?
            .as_str()
            .ok_or(wrong("compression", "a string"))?;
        let compression = name
            .parse::<Codec>()
            .map_err(|unknown| HelloError::UnknownCodec {
                name: unknown.name().to_string(),
            })?;
        let max_message_bytes = field("max_message")?
            .as_u64()
            .ok_or(wrong("max_message", "an unsigned integer"))?;
        // Optional: a side without a secret leaves it out (and hellos from before it had none).
        let auth = match field("auth") {
            Err(_) => None,
            Ok(value) => Some(
                value
                    .as_str()
                    .ok_or(wrong("auth", "a string"))?
                    .chars()
                    .take(64)
                    .collect(),
            ),
        };
        Ok(Hello {
            protocol,
            identity,
            accepts,
            decodes,
            compression,
            max_message_bytes,
            auth,
        })
    }
}

/// The codec a side asks for from its [`Compression`], before it knows what the peer decodes:
/// only a codec this build has ([`Codec::None`] for one it lacks). [`Compression::Auto`] asks for
/// the first of [`DECODES`] (LZ4 when built in).
///
/// ```
/// use pontoon_wire::{Codec, Compression, wanted_codec};
/// assert_eq!(wanted_codec(Compression::Auto, true), Codec::None);
/// # #[cfg(feature = "lz4")]
/// assert_eq!(wanted_codec(Compression::Auto, false), Codec::Lz4);
/// ```
pub fn wanted_codec(compression: Compression, peer_shares_machine: bool) -> Codec {
    let wanted = match compression {
        Compression::Off => Codec::None,
        Compression::With(codec) => codec,
        Compression::Auto if peer_shares_machine => Codec::None,
        Compression::Auto => DECODES.first().copied().unwrap_or(Codec::None),
    };
    if wanted.is_built() {
        wanted
    } else {
        Codec::None
    }
}

/// What two hellos agree on, seen from one side.
///
/// ```
/// use pontoon_wire::{Codec, Compression, Hello, negotiate};
/// let peer = Hello::new("peer", vec!["serde".into()], Codec::None, 1 << 20);
/// let agreed = negotiate(Compression::With(Codec::Zstd), false, &peer)?;
/// // What this side asks for, if built in and the peer decodes it; else no compression.
/// let expected = if Codec::Zstd.is_built() { Codec::Zstd } else { Codec::None };
/// assert_eq!(agreed.send_codec, expected);
/// # Ok::<(), pontoon_wire::HelloError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Agreed {
    /// The codec this side compresses with (where it pays): what it wants, if the peer decodes
    /// it, else none.
    pub send_codec: Codec,
}

/// Agrees with the peer's hello: refuses another protocol version, and picks the send codec.
///
/// ```
/// use pontoon_wire::{Codec, Compression, Hello, HelloError, negotiate};
/// let mut peer = Hello::new("peer", vec![], Codec::None, 1 << 20);
/// peer.protocol = 2;
/// assert_eq!(negotiate(Compression::Off, false, &peer), Err(HelloError::Version { peer: 2, ours: 1 }));
/// ```
pub fn negotiate(
    compression: Compression,
    peer_shares_machine: bool,
    peer: &Hello,
) -> Result<Agreed, HelloError> {
    if peer.protocol != PROTOCOL_VERSION {
        return Err(HelloError::Version {
            peer: peer.protocol,
            ours: PROTOCOL_VERSION,
        });
    }
    let wanted = wanted_codec(compression, peer_shares_machine);
    let send_codec = if wanted == Codec::None || peer.decodes.contains(&wanted) {
        wanted
    } else {
        Codec::None
    };
    Ok(Agreed { send_codec })
}

/// What is wrong with a peer's hello.
///
/// ```
/// let err = pontoon_wire::HelloError::Missing { key: "identity" };
/// assert_eq!(err.to_string(), "the hello has no `identity`");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HelloError {
    /// The hello carries frames; it has none.
    #[error("the hello carries {count} frames; it has none")]
    HasFrames {
        /// How many.
        count: usize,
    },
    /// The header cannot be read as a MessagePack value.
    #[error("the hello's header cannot be read")]
    Unreadable,
    /// The header is not a map.
    #[error("the hello's header is not a map")]
    NotAMap,
    /// A key is missing.
    #[error("the hello has no `{key}`")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A key holds a value of the wrong type.
    #[error("`{key}` in the hello is not {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// `compression` names a codec this build does not know.
    #[error("`compression` in the hello names `{name}`, which this side does not know")]
    UnknownCodec {
        /// The name (its first 64 characters).
        name: String,
    },
    /// The peer speaks another transport protocol version.
    #[error("the peer speaks transport protocol version {peer}, this side speaks {ours}")]
    Version {
        /// The peer's version.
        peer: u64,
        /// This side's version.
        ours: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(feature = "lz4", feature = "zstd"))]
    fn peer(decodes: Vec<Codec>) -> Hello {
        Hello {
            decodes,
            ..Hello::new("peer", vec![], Codec::None, 1 << 20)
        }
    }

    #[test]
    fn the_hello_announces_the_codecs_built_in_and_no_others() {
        let hello = Hello::new("me", vec![], Codec::None, 1 << 20);
        let announced = Hello::from_message(&hello.to_message()).unwrap().decodes;
        for codec in [Codec::Lz4, Codec::Zstd] {
            assert_eq!(announced.contains(&codec), codec.is_built(), "{codec}");
            // A side never asks to send with a codec it has not got.
            let wanted = wanted_codec(Compression::With(codec), false);
            assert_eq!(wanted == codec, codec.is_built(), "{codec}");
        }
        assert_eq!(
            wanted_codec(Compression::Auto, false),
            DECODES.first().copied().unwrap_or(Codec::None)
        );
    }

    #[test]
    #[cfg(all(feature = "lz4", feature = "zstd"))]
    fn compression_is_off_unless_asked_for() {
        let remote = peer(DECODES.to_vec());
        let agreed = negotiate(Compression::default(), false, &remote).unwrap();
        assert_eq!(agreed.send_codec, Codec::None);
        // Auto compresses only to remote peers, and only with what they decode.
        assert_eq!(
            negotiate(Compression::Auto, true, &remote)
                .unwrap()
                .send_codec,
            Codec::None
        );
        assert_eq!(
            negotiate(Compression::Auto, false, &remote)
                .unwrap()
                .send_codec,
            Codec::Lz4
        );
        let lz4_less = peer(vec![Codec::Zstd]);
        assert_eq!(
            negotiate(Compression::Auto, false, &lz4_less)
                .unwrap()
                .send_codec,
            Codec::None
        );
        assert_eq!(
            negotiate(Compression::With(Codec::Zstd), true, &lz4_less)
                .unwrap()
                .send_codec,
            Codec::Zstd
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let good = Hello::new("x", vec!["serde".into()], Codec::Lz4, 7).to_message();
        let with = |key: &str, value: Value| {
            let mut map = good.header.to_value().unwrap();
            let Value::Map(entries) = &mut map else {
                unreachable!()
            };
            match value {
                Value::Nil => entries.retain(|(k, _)| k.as_str() != Some(key)),
                value => {
                    for (k, v) in entries.iter_mut() {
                        if k.as_str() == Some(key) {
                            *v = value.clone();
                        }
                    }
                }
            }
            Hello::from_message(&Message::new(Header::from_value(&map), vec![]))
        };
        assert_eq!(
            with("identity", Value::Nil),
            Err(HelloError::Missing { key: "identity" })
        );
        assert!(matches!(
            with("protocol", "one".into()),
            Err(HelloError::WrongType {
                key: "protocol",
                ..
            })
        ));
        assert!(matches!(
            with("accepts", Value::Array(vec![1.into()])),
            Err(HelloError::WrongType { key: "accepts", .. })
        ));
        assert_eq!(
            with("compression", "brotli".into()),
            Err(HelloError::UnknownCodec {
                name: "brotli".into()
            })
        );
        // Codecs this build does not know are skipped in `decodes`; unknown keys are ignored.
        let hello = with(
            "decodes",
            Value::Array(vec!["brotli".into(), "zstd".into()]),
        )
        .unwrap();
        assert_eq!(hello.decodes, [Codec::Zstd]);
        let framed = Message::new(good.header.clone(), vec![bytes::Bytes::from_static(b"x")]);
        assert_eq!(
            Hello::from_message(&framed),
            Err(HelloError::HasFrames { count: 1 })
        );
    }
}
