//! The handshake: after ferry-wire's preamble, each side sends one `hello` message, then reads
//! the peer's (both write first, so a version mismatch is seen, and reported, on both sides).
//! The layout is in `docs/wire-format.md`.

use bytes::BytesMut;
use ferry_wire::{Codec, DecodeError, Decoder, Encoder, Header, Limits, Message, preamble};
use rmpv::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Compression, Config, TransportError};

/// The transport protocol's version, sent in every `hello`.
pub const PROTOCOL_VERSION: u64 = 1;

/// Codecs this build decodes, in the order it prefers them.
const DECODES: [Codec; 2] = [Codec::Lz4, Codec::Zstd];

/// What the peer said in its handshake, and what was agreed.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f() -> Result<(), ferry_transport::TransportError> {
/// let comm = ferry_transport::connect(&"tcp://127.0.0.1:8786".parse()?, ferry_transport::Config::default()).await?;
/// println!("{} accepts {:?}", comm.peer().identity, comm.peer().accepts);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    /// How the peer names itself.
    pub identity: String,
    /// The families whose messages the peer accepts.
    pub accepts: Vec<String>,
    /// The largest message the peer accepts.
    pub max_message: u64,
    /// The codec this side compresses with when sending to the peer, if any (agreed from this
    /// side's [`Compression`] and what the peer decodes).
    pub send_codec: Codec,
    /// The codec the peer announced it would like to compress with. Informational: the peer
    /// falls back to none if this side does not decode it, and every frame records its own codec.
    pub receive_codec: Codec,
}

fn hello(config: &Config, compression: Codec) -> Message {
    let header = Value::Map(vec![
        ("protocol".into(), PROTOCOL_VERSION.into()),
        ("identity".into(), config.identity.as_str().into()),
        (
            "accepts".into(),
            Value::Array(config.accepts.iter().map(|f| f.as_str().into()).collect()),
        ),
        (
            "decodes".into(),
            Value::Array(DECODES.iter().map(|c| c.name().into()).collect()),
        ),
        ("compression".into(), compression.name().into()),
        ("max_message".into(), config.limits.max_message_bytes.into()),
    ]);
    Message::new(Header::from_value(&header), vec![])
}

fn codec_named(name: &str) -> Option<Codec> {
    [Codec::None, Codec::Lz4, Codec::Zstd]
        .into_iter()
        .find(|c| c.name() == name)
}

/// The codec this side sends with: what it wants, if the peer decodes it.
fn choose(compression: Compression, peer_is_local: bool, peer_decodes: &[Codec]) -> Codec {
    let wanted = match compression {
        Compression::Off => Codec::None,
        Compression::With(codec) => codec,
        Compression::Auto if peer_is_local => Codec::None,
        Compression::Auto => Codec::Lz4,
    };
    if wanted == Codec::None || peer_decodes.contains(&wanted) {
        wanted
    } else {
        Codec::None
    }
}

/// Runs the handshake over a fresh connection. Bytes the peer sent after its `hello` stay in
/// `rbuf` for the comm to read.
pub(crate) async fn shake<R, W>(
    reader: &mut R,
    writer: &mut W,
    rbuf: &mut BytesMut,
    config: &Config,
    peer_is_local: bool,
) -> Result<Peer, TransportError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let io = |what| {
        move |source| TransportError::Io {
            what,
            address: "the peer".into(),
            source,
        }
    };
    // This side announces the codec it would like; it may only use one the peer decodes.
    let wanted = choose(config.compression, peer_is_local, &DECODES);
    let mut out = BytesMut::new();
    out.extend_from_slice(&preamble());
    out.extend_from_slice(
        &Encoder::default()
            .encode(&hello(config, wanted))?
            .to_bytes(),
    );
    writer
        .write_all(&out)
        .await
        .map_err(io("sending the handshake to"))?;
    writer
        .flush()
        .await
        .map_err(io("sending the handshake to"))?;

    let mut limits = Limits::default();
    limits.max_frames = 0;
    limits.max_header_bytes = 64 << 10;
    limits.max_message_bytes = 128 << 10;
    let mut decoder = Decoder::with_limits(limits);
    let message = loop {
        match decoder.decode(rbuf) {
            Ok(Some(message)) => break message,
            Ok(None) => {
                rbuf.reserve(4096);
                if reader
                    .read_buf(rbuf)
                    .await
                    .map_err(io("reading the handshake from"))?
                    == 0
                {
                    return Err(TransportError::Handshake(
                        "the peer closed the connection during the handshake".into(),
                    ));
                }
            }
            Err(DecodeError::UnsupportedVersion {
                version, supported, ..
            }) => {
                return Err(TransportError::VersionMismatch {
                    peer: u64::from(version),
                    ours: u64::from(supported),
                });
            }
            Err(other) => return Err(TransportError::Handshake(other.to_string())),
        }
    };
    let value = message
        .header
        .to_value()
        .map_err(|e| TransportError::Handshake(e.to_string()))?;
    let field = |key: &str| {
        value
            .as_map()
            .and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.as_str() == Some(key))
                    .map(|(_, v)| v)
            })
            .ok_or_else(|| TransportError::Handshake(format!("no `{key}` in the hello")))
    };
    let protocol = field("protocol")?
        .as_u64()
        .ok_or_else(|| TransportError::Handshake("`protocol` is not a number".into()))?;
    if protocol != PROTOCOL_VERSION {
        return Err(TransportError::VersionMismatch {
            peer: protocol,
            ours: PROTOCOL_VERSION,
        });
    }
    let strings = |key: &str| -> Result<Vec<String>, TransportError> {
        field(key)?
            .as_array()
            .ok_or_else(|| TransportError::Handshake(format!("`{key}` is not a list")))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| TransportError::Handshake(format!("`{key}` holds a non-string")))
            })
            .collect()
    };
    let identity = field("identity")?
        .as_str()
        .ok_or_else(|| TransportError::Handshake("`identity` is not a string".into()))?;
    let decodes: Vec<Codec> = strings("decodes")?
        .iter()
        .filter_map(|n| codec_named(n))
        .collect();
    let receive_codec = field("compression")?
        .as_str()
        .and_then(codec_named)
        .ok_or_else(|| {
            TransportError::Handshake("`compression` names no codec this side knows".into())
        })?;
    Ok(Peer {
        identity: identity.to_string(),
        accepts: strings("accepts")?,
        max_message: field("max_message")?
            .as_u64()
            .ok_or_else(|| TransportError::Handshake("`max_message` is not a number".into()))?,
        send_codec: choose(config.compression, peer_is_local, &decodes),
        receive_codec,
    })
}
