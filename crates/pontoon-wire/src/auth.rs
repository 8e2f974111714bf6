//! Shared-secret authentication in the handshake, as pure functions: whether two hellos agree to
//! authenticate ([`auth_agreed`]), the messages of the challenge and response ([`AuthMessage`]),
//! and the proofs, HMAC-SHA256 over both nonces and the prover's role, checked in constant time
//! ([`auth_proof`], [`verify_auth_proof`]). The transport draws the nonces and moves the bytes.
//! Specified in `docs/wire-format.md`.

use hmac::{KeyInit, Mac};
use rmpv::Value;

use crate::{Header, Message};

/// The one authentication scheme, as a hello names it in its `auth` key.
pub const AUTH_SCHEME: &str = "hmac-sha256";

/// Bytes of each side's nonce.
pub const AUTH_NONCE_LEN: usize = 32;

/// Bytes of a proof (an HMAC-SHA256 tag).
pub const AUTH_PROOF_LEN: usize = 32;

/// What every proof's HMAC input starts with, so a tag made for anything else is never a proof.
pub const AUTH_LABEL: &[u8] = b"pontoon-auth-v1";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Which side of a connection proves: the one that connected, or the one that accepted. Part
/// of every proof, so one side's proof can never be reflected back as the other's.
///
/// ```
/// assert_eq!(pontoon_wire::AuthRole::Client.name(), "client");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRole {
    /// The side that connected.
    Client,
    /// The side that accepted.
    Server,
}

impl AuthRole {
    /// The role's name, the last bytes of its proof's HMAC input.
    ///
    /// ```
    /// assert_eq!(pontoon_wire::AuthRole::Server.name(), "server");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            AuthRole::Client => "client",
            AuthRole::Server => "server",
        }
    }
}

/// A message of the authentication exchange. After the hellos, each side sends a
/// [`AuthMessage::Challenge`]; the client then sends its [`AuthMessage::Proof`]; the server
/// answers with its own proof if the client's is right, or [`AuthMessage::Refused`].
///
/// ```
/// use pontoon_wire::AuthMessage;
/// let challenge = AuthMessage::Challenge { nonce: [7; 32] };
/// assert_eq!(AuthMessage::from_message(&challenge.to_message())?, challenge);
/// # Ok::<(), pontoon_wire::AuthError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMessage {
    /// A side's fresh random nonce.
    Challenge {
        /// The nonce.
        nonce: [u8; AUTH_NONCE_LEN],
    },
    /// A side's proof that it knows the secret (see [`auth_proof`]).
    Proof {
        /// The HMAC-SHA256 tag.
        mac: [u8; AUTH_PROOF_LEN],
    },
    /// The server's answer to a wrong proof: it closes.
    Refused,
}

impl AuthMessage {
    /// The message: no frames, a header map `{"auth": kind, "value": bin}` (`value` absent for
    /// `refused`).
    ///
    /// ```
    /// let message = pontoon_wire::AuthMessage::Refused.to_message();
    /// assert!(message.frames.is_empty());
    /// ```
    pub fn to_message(&self) -> Message {
        let (kind, value): (&str, Option<&[u8]>) = match self {
            AuthMessage::Challenge { nonce } => ("challenge", Some(nonce)),
            AuthMessage::Proof { mac } => ("proof", Some(mac)),
            AuthMessage::Refused => ("refused", None),
        };
        let mut map = vec![("auth".into(), kind.into())];
        if let Some(value) = value {
            map.push(("value".into(), Value::Binary(value.to_vec())));
        }
        Message::new(Header::from_value(&Value::Map(map)), vec![])
    }

    /// Reads an authentication message. Keys it does not know are ignored; frames, a missing
    /// or ill-typed key, an unknown kind, or a value of the wrong length are errors.
    ///
    /// ```
    /// use pontoon_wire::{AuthError, AuthMessage, Header, Message};
    /// let hello_like = Message::new(Header::from_serde(&"hi").unwrap(), vec![]);
    /// assert_eq!(AuthMessage::from_message(&hello_like), Err(AuthError::NotAMap));
    /// ```
    pub fn from_message(message: &Message) -> Result<AuthMessage, AuthError> {
        if !message.frames.is_empty() {
            return Err(AuthError::HasFrames {
                count: message.frames.len(),
            });
        }
        let value = message
            .header
            .to_value()
            .map_err(|_| AuthError::Unreadable)?;
        let map = value.as_map().ok_or(AuthError::NotAMap)?;
        let field = |key: &'static str| {
            map.iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v)
                .ok_or(AuthError::Missing { key })
        };
        let kind = field("auth")?.as_str().ok_or(AuthError::WrongType {
            key: "auth",
            expected: "a string",
        })?;
        let bytes32 = || -> Result<[u8; 32], AuthError> {
            // Binary only: rmpv's `as_slice` would take a string's bytes too.
            let Value::Binary(bytes) = field("value")? else {
                return Err(AuthError::WrongType {
                    key: "value",
                    expected: "binary",
                });
            };
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| AuthError::WrongLength {
                    len: bytes.len(),
                    expected: 32,
                })
        };
        match kind {
            "challenge" => Ok(AuthMessage::Challenge { nonce: bytes32()? }),
            "proof" => Ok(AuthMessage::Proof { mac: bytes32()? }),
            "refused" => Ok(AuthMessage::Refused),
            other => Err(AuthError::UnknownKind {
                kind: other.chars().take(64).collect(),
            }),
        }
    }
}

/// Whether a side authenticates with its peer: `Ok(true)` when both have a secret (and the
/// peer's hello names [`AUTH_SCHEME`]), `Ok(false)` when neither has. A side with a secret never
/// goes on without authenticating, so a peer (or anyone in between) that leaves `auth` out of a
/// hello gets a refusal, not an unauthenticated connection.
///
/// ```
/// use pontoon_wire::{AUTH_SCHEME, AuthError, auth_agreed};
/// assert_eq!(auth_agreed(true, Some(AUTH_SCHEME)), Ok(true));
/// assert_eq!(auth_agreed(false, None), Ok(false));
/// assert_eq!(auth_agreed(true, None), Err(AuthError::PeerHasNoSecret));
/// assert_eq!(auth_agreed(false, Some(AUTH_SCHEME)), Err(AuthError::NoSecret));
/// ```
pub fn auth_agreed(has_secret: bool, peer_scheme: Option<&str>) -> Result<bool, AuthError> {
    match (has_secret, peer_scheme) {
        (false, None) => Ok(false),
        (true, Some(AUTH_SCHEME)) => Ok(true),
        (true, None) => Err(AuthError::PeerHasNoSecret),
        (false, Some(_)) => Err(AuthError::NoSecret),
        (true, Some(other)) => Err(AuthError::UnknownScheme {
            name: other.chars().take(64).collect(),
        }),
    }
}

fn keyed(
    secret: &[u8],
    role: AuthRole,
    client_nonce: &[u8; AUTH_NONCE_LEN],
    server_nonce: &[u8; AUTH_NONCE_LEN],
) -> HmacSha256 {
    // HMAC takes a key of any length (longer ones are hashed first).
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(AUTH_LABEL);
    mac.update(client_nonce);
    mac.update(server_nonce);
    mac.update(role.name().as_bytes());
    mac
}

/// A side's proof: HMAC-SHA256 keyed with the secret over [`AUTH_LABEL`], the client's nonce,
/// the server's nonce and the prover's role name. Both nonces are fresh per connection, so a
/// recorded proof proves nothing on another.
///
/// ```
/// use pontoon_wire::{AuthRole, auth_proof, verify_auth_proof};
/// let (client, server) = ([1; 32], [2; 32]);
/// let proof = auth_proof(b"secret", AuthRole::Client, &client, &server);
/// assert!(verify_auth_proof(b"secret", AuthRole::Client, &client, &server, &proof).is_ok());
/// assert!(verify_auth_proof(b"secret", AuthRole::Server, &client, &server, &proof).is_err());
/// assert!(verify_auth_proof(b"other", AuthRole::Client, &client, &server, &proof).is_err());
/// ```
pub fn auth_proof(
    secret: &[u8],
    role: AuthRole,
    client_nonce: &[u8; AUTH_NONCE_LEN],
    server_nonce: &[u8; AUTH_NONCE_LEN],
) -> [u8; AUTH_PROOF_LEN] {
    keyed(secret, role, client_nonce, server_nonce)
        .finalize()
        .into_bytes()
        .into()
}

/// Checks the peer's proof for its `role`, in constant time; [`AuthError::WrongProof`] if it
/// is not the proof of this secret over these nonces.
///
/// ```
/// use pontoon_wire::{AuthError, AuthRole, verify_auth_proof};
/// let wrong = verify_auth_proof(b"secret", AuthRole::Server, &[0; 32], &[0; 32], &[0; 32]);
/// assert_eq!(wrong, Err(AuthError::WrongProof));
/// ```
pub fn verify_auth_proof(
    secret: &[u8],
    role: AuthRole,
    client_nonce: &[u8; AUTH_NONCE_LEN],
    server_nonce: &[u8; AUTH_NONCE_LEN],
    proof: &[u8; AUTH_PROOF_LEN],
) -> Result<(), AuthError> {
    keyed(secret, role, client_nonce, server_nonce)
        .verify_slice(proof)
        .map_err(|_| AuthError::WrongProof)
}

/// What goes wrong authenticating: a malformed message, hellos that disagree, or a wrong proof.
///
/// ```
/// assert_eq!(
///     pontoon_wire::AuthError::WrongProof.to_string(),
///     "the peer's proof is wrong: it does not know this side's secret"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The message carries frames; authentication messages have none.
    #[error("the authentication message carries {count} frames; it has none")]
    HasFrames {
        /// How many.
        count: usize,
    },
    /// The header cannot be read as a MessagePack value.
    #[error("the authentication message's header cannot be read")]
    Unreadable,
    /// The header is not a map.
    #[error("the authentication message's header is not a map")]
    NotAMap,
    /// A key is missing.
    #[error("the authentication message has no `{key}`")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A key holds a value of the wrong type.
    #[error("`{key}` in the authentication message is not {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// A nonce or proof of the wrong length.
    #[error("the authentication value is {len} bytes, not {expected}")]
    WrongLength {
        /// Its length.
        len: usize,
        /// The length it must have.
        expected: usize,
    },
    /// An `auth` kind this side does not know.
    #[error("unknown authentication message `{kind}`")]
    UnknownKind {
        /// The kind (its first 64 characters).
        kind: String,
    },
    /// A message other than the one the exchange expects at this point.
    #[error("expected the peer's {expected}, got another authentication message")]
    Unexpected {
        /// What was expected.
        expected: &'static str,
    },
    /// This side has a secret and the peer's hello does not offer to authenticate.
    #[error("this side requires a shared secret and the peer does not authenticate")]
    PeerHasNoSecret,
    /// The peer requires a shared secret and this side has none configured.
    #[error("the peer requires a shared secret and this side has none")]
    NoSecret,
    /// The peer offers a scheme this side does not know.
    #[error("the peer offers authentication scheme `{name}`, this side knows only hmac-sha256")]
    UnknownScheme {
        /// The scheme's name (its first 64 characters).
        name: String,
    },
    /// The peer's proof does not check: it does not know the secret (or replays another
    /// connection's proof).
    #[error("the peer's proof is wrong: it does not know this side's secret")]
    WrongProof,
    /// The server refused this side's proof: the secrets differ.
    #[error("the peer refused this side's proof: the secrets differ")]
    Refused,
}
