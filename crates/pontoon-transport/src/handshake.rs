//! The handshake's I/O: write this side's preamble and hello, read the peer's. What a hello says
//! and what two hellos agree on are pontoon-wire's pure functions ([`pontoon_wire::Hello`],
//! [`pontoon_wire::negotiate`]); the layout is in `docs/wire-format.md`.

use bytes::BytesMut;
use pontoon_wire::{
    Codec, DecodeError, Decoder, Encoder, Hello, HelloError, hello_limits, negotiate, preamble,
    wanted_codec,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Config, HandshakeError, TransportError};

/// What the peer said in its handshake, and what was agreed.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f() -> Result<(), pontoon_transport::TransportError> {
/// let comm = pontoon_transport::connect(&"tcp://127.0.0.1:8786".parse()?, pontoon_transport::Config::default()).await?;
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
    /// The largest message the peer accepts, in bytes.
    pub max_message_bytes: u64,
    /// The codec this side compresses with when sending to the peer, if any (agreed from this
    /// side's [`Compression`](crate::Compression) and what the peer decodes).
    pub send_codec: Codec,
    /// The codec the peer announced it would like to compress with. Informational: the peer
    /// falls back to none if this side does not decode it, and every frame records its own codec.
    pub receive_codec: Codec,
    /// The peer's certificate, verified by the TLS handshake: the server's on a `tls://`
    /// connect, a client's on a `tls://` listener that requires client certificates
    /// ([`TlsConfig::require_client_certificates`](crate::TlsConfig::require_client_certificates));
    /// `None` otherwise.
    pub certificate: Option<crate::CertificateIdentity>,
}

/// Runs the handshake over a fresh connection. Bytes the peer sent after its `hello` stay in
/// `rbuf` for the comm to read.
pub(crate) async fn shake<R, W>(
    reader: &mut R,
    writer: &mut W,
    rbuf: &mut BytesMut,
    config: &Config,
    accepts: Vec<String>,
    peer_is_local: bool,
) -> Result<Peer, TransportError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Over TLS, the peer's refusal of this side's certificate arrives as an alert after the
    // TLS handshake (TLS 1.3 clients finish theirs first): a TLS error, not an I/O one.
    let io = |what| {
        move |source| match crate::tls::handshake_error(source) {
            Ok(tls) => TransportError::Tls {
                address: "the peer".into(),
                source: tls,
            },
            Err(source) => TransportError::Io {
                what,
                address: "the peer".into(),
                source,
            },
        }
    };
    // This side announces the codec it would like; it may only use one the peer decodes.
    let hello = Hello::new(
        config.identity.clone(),
        accepts,
        wanted_codec(config.compression, peer_is_local),
        config.limits.max_message_bytes,
    );
    let mut out = BytesMut::new();
    out.extend_from_slice(&preamble());
    out.extend_from_slice(&Encoder::default().encode(&hello.to_message())?.to_bytes());
    writer
        .write_all(&out)
        .await
        .map_err(io("sending the handshake to"))?;
    writer
        .flush()
        .await
        .map_err(io("sending the handshake to"))?;

    let mut decoder = Decoder::with_limits(hello_limits());
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
                    return Err(HandshakeError::PeerClosed.into());
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
            Err(other) => return Err(HandshakeError::Decode(other).into()),
        }
    };
    let theirs = Hello::from_message(&message).map_err(HandshakeError::Hello)?;
    let agreed = match negotiate(config.compression, peer_is_local, &theirs) {
        Ok(agreed) => agreed,
        Err(HelloError::Version { peer, ours }) => {
            return Err(TransportError::VersionMismatch { peer, ours });
        }
        Err(other) => return Err(HandshakeError::Hello(other).into()),
    };
    Ok(Peer {
        identity: theirs.identity,
        accepts: theirs.accepts,
        max_message_bytes: theirs.max_message_bytes,
        send_codec: agreed.send_codec,
        receive_codec: theirs.compression,
        certificate: None,
    })
}
