//! The handshake's I/O: write this side's preamble and hello, read the peer's, and, when both
//! have a shared secret, run the challenge and response. What a hello says, what two hellos
//! agree on and what proves the secret are pontoon-wire's pure functions
//! ([`pontoon_wire::Hello`], [`pontoon_wire::negotiate`], [`pontoon_wire::auth_proof`]); the
//! layout is in `docs/wire-format.md`.

use bytes::BytesMut;
use pontoon_wire::{
    AUTH_NONCE_LEN, AuthError, AuthMessage, AuthRole, Codec, DecodeError, Decoder, Encoder, Hello,
    HelloError, Message, auth_agreed, auth_proof, hello_limits, negotiate, preamble,
    verify_auth_proof, wanted_codec,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Config, HandshakeError, Secret, TransportError};

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

/// Runs the handshake over a fresh connection: the hellos, then, when both sides have a secret,
/// the challenge and response. Bytes the peer sent after the handshake stay in `rbuf` for the
/// comm to read.
pub(crate) async fn shake<R, W>(
    reader: &mut R,
    writer: &mut W,
    rbuf: &mut BytesMut,
    config: &Config,
    accepts: Vec<String>,
    peer_is_local: bool,
    role: AuthRole,
) -> Result<Peer, TransportError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let secret = config.secret.as_ref();
    // This side announces the codec it would like; it may only use one the peer decodes.
    let mut hello = Hello::new(
        config.identity.clone(),
        accepts,
        wanted_codec(config.compression, peer_is_local),
        config.limits.max_message_bytes,
    );
    // A side with a secret sends its challenge with its hello: one round trip fewer, and a
    // peer without a secret refuses on the hello and never reads it.
    let nonce = match secret {
        Some(_) => {
            hello = hello.with_auth();
            Some(fresh_nonce()?)
        }
        None => None,
    };
    let encoder = Encoder::default();
    let mut out = BytesMut::new();
    out.extend_from_slice(&preamble());
    out.extend_from_slice(&encoder.encode(&hello.to_message())?.to_bytes());
    if let Some(nonce) = nonce {
        let challenge = AuthMessage::Challenge { nonce }.to_message();
        out.extend_from_slice(&encoder.encode(&challenge)?.to_bytes());
    }
    send(writer, &out).await?;

    let mut decoder = Decoder::with_limits(hello_limits());
    let message = read_message(reader, rbuf, &mut decoder).await?;
    let theirs = Hello::from_message(&message).map_err(HandshakeError::Hello)?;
    let agreed = match negotiate(config.compression, peer_is_local, &theirs) {
        Ok(agreed) => agreed,
        Err(HelloError::Version { peer, ours }) => {
            return Err(TransportError::VersionMismatch { peer, ours });
        }
        Err(other) => return Err(HandshakeError::Hello(other).into()),
    };
    if auth_agreed(secret.is_some(), theirs.auth.as_deref()).map_err(auth_error)?
        && let (Some(secret), Some(nonce)) = (secret, nonce)
    {
        authenticate(reader, writer, rbuf, &mut decoder, secret, role, nonce).await?;
        tracing::debug!(identity = %theirs.identity, "the peer proved the shared secret");
    }
    Ok(Peer {
        identity: theirs.identity,
        accepts: theirs.accepts,
        max_message_bytes: theirs.max_message_bytes,
        send_codec: agreed.send_codec,
        receive_codec: theirs.compression,
        certificate: None,
    })
}

fn auth_error(source: AuthError) -> TransportError {
    TransportError::Auth {
        address: "the peer".into(),
        source,
    }
}

/// A nonce from the operating system's CSPRNG.
fn fresh_nonce() -> Result<[u8; AUTH_NONCE_LEN], TransportError> {
    let mut nonce = [0; AUTH_NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|error| TransportError::Io {
        what: "drawing a nonce to authenticate",
        address: "the peer".into(),
        source: std::io::Error::other(error.to_string()),
    })?;
    Ok(nonce)
}

/// The challenge and response, after both hellos said to authenticate and this side's
/// challenge has gone out: read the peer's challenge; the client proves first, and the server
/// answers with its own proof only once the client's checks, so a peer that does not know the
/// secret never sees a proof from the server.
async fn authenticate<R, W>(
    reader: &mut R,
    writer: &mut W,
    rbuf: &mut BytesMut,
    decoder: &mut Decoder,
    secret: &Secret,
    role: AuthRole,
    ours: [u8; AUTH_NONCE_LEN],
) -> Result<(), TransportError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut next = async |decoder: &mut Decoder, rbuf: &mut BytesMut| {
        let message = read_message(reader, rbuf, decoder).await?;
        AuthMessage::from_message(&message).map_err(auth_error)
    };
    let theirs = match next(decoder, rbuf).await? {
        AuthMessage::Challenge { nonce } => nonce,
        _ => {
            return Err(auth_error(AuthError::Unexpected {
                expected: "challenge",
            }));
        }
    };
    let (client, server) = match role {
        AuthRole::Server => (theirs, ours),
        _ => (ours, theirs),
    };
    let proof = |role| {
        Encoder::default()
            .encode(
                &AuthMessage::Proof {
                    mac: auth_proof(secret.bytes(), role, &client, &server),
                }
                .to_message(),
            )
            .map(|encoded| encoded.to_bytes())
    };
    if role == AuthRole::Server {
        let mac = match next(decoder, rbuf).await? {
            AuthMessage::Proof { mac } => mac,
            _ => return Err(auth_error(AuthError::Unexpected { expected: "proof" })),
        };
        if let Err(wrong) =
            verify_auth_proof(secret.bytes(), AuthRole::Client, &client, &server, &mac)
        {
            // Tell the client why before closing; if it is not reading, the close says enough.
            let refused = Encoder::default().encode(&AuthMessage::Refused.to_message())?;
            let _ = send(writer, &refused.to_bytes()).await;
            return Err(auth_error(wrong));
        }
        return send(writer, &proof(AuthRole::Server)?).await;
    }
    send(writer, &proof(AuthRole::Client)?).await?;
    match next(decoder, rbuf).await? {
        AuthMessage::Proof { mac } => {
            verify_auth_proof(secret.bytes(), AuthRole::Server, &client, &server, &mac)
                .map_err(auth_error)
        }
        AuthMessage::Refused => Err(auth_error(AuthError::Refused)),
        _ => Err(auth_error(AuthError::Unexpected { expected: "proof" })),
    }
}

/// Over TLS, the peer's refusal of this side's certificate arrives as an alert after the TLS
/// handshake (TLS 1.3 clients finish theirs first): a TLS error, not an I/O one.
fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> TransportError {
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
}

async fn send<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> Result<(), TransportError> {
    writer
        .write_all(bytes)
        .await
        .map_err(io("sending the handshake to"))?;
    writer.flush().await.map_err(io("sending the handshake to"))
}

/// The peer's next handshake message, read with the hello limits.
async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    decoder: &mut Decoder,
) -> Result<Message, TransportError> {
    loop {
        match decoder.decode(rbuf) {
            Ok(Some(message)) => return Ok(message),
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
    }
}
