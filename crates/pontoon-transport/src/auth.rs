//! Shared-secret authentication settings: the [`Secret`] in [`Config::secret`](crate::Config::secret),
//! and the warning a listener gives when anyone who reaches it may connect. The exchange itself
//! is pontoon-wire's (pure functions) and the handshake's (I/O).

use std::path::Path;
use std::sync::Arc;

use crate::{Address, Config};

/// A shared secret both sides of a connection must know: each proves it in the handshake
/// (HMAC-SHA256 over both sides' fresh nonces) without sending it. Use a long random value
/// (32 bytes from a CSPRNG), not a password: a peer that takes part in a handshake sees a
/// proof it could try guesses against offline. `Debug` prints no byte of it.
///
/// ```
/// use pontoon_transport::{Config, Secret};
/// let mut config = Config::new("worker-1");
/// config.secret = Some(Secret::new(*b"32 random bytes, not a password!"));
/// assert_eq!(format!("{:?}", config.secret.unwrap()), "Secret(32 bytes)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// A secret of these bytes.
    ///
    /// ```
    /// let secret = pontoon_transport::Secret::new(b"correct horse battery staple".to_vec());
    /// assert_eq!(secret.len(), 28);
    /// ```
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into().into())
    }

    /// The secret in a file (as a deployment hands it out), without one trailing newline.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("pontoon-doc-secret-{}", std::process::id()));
    /// std::fs::write(&path, "s3cr3t\n")?;
    /// let secret = pontoon_transport::Secret::from_file(&path)?;
    /// assert_eq!(secret, pontoon_transport::Secret::new(*b"s3cr3t"));
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> std::io::Result<Secret> {
        let mut bytes = std::fs::read(path)?;
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        Ok(Secret::new(bytes))
    }

    /// Its length in bytes.
    ///
    /// ```
    /// assert!(pontoon_transport::Secret::new(Vec::new()).is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty (an empty secret still works, and protects nothing).
    ///
    /// ```
    /// assert!(!pontoon_transport::Secret::new(*b"x").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// The warning (a `tracing` warning, from [`listen`](crate::listen)) for a listener that any
/// peer able to reach it may connect to: one on an
/// address other than loopback, a Unix socket or in-process, without a shared secret, and
/// without TLS client certificates.
pub(crate) fn unauthenticated_warning(address: &Address, config: &Config) -> Option<String> {
    let verifies_clients = matches!(address, Address::Tls(_))
        && config
            .tls
            .as_ref()
            .is_some_and(|tls| tls.verifies_clients());
    (config.secret.is_none() && !address.is_local() && !verifies_clients).then(|| {
        format!(
            "listening at {address} without a shared secret: \
             any peer that can reach this address may connect (set Config::secret, or require \
             TLS client certificates)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reachable_listeners_without_a_secret_are_warned_about() {
        let open = Config::new("s");
        let tcp = |a: &str| a.parse::<Address>().unwrap();
        let warning = unauthenticated_warning(&tcp("tcp://0.0.0.0:8786"), &open).unwrap();
        assert!(warning.contains("tcp://0.0.0.0:8786"), "{warning}");
        assert!(warning.contains("without a shared secret"), "{warning}");
        assert!(unauthenticated_warning(&tcp("tcp://10.1.2.3:1"), &open).is_some());
        assert!(unauthenticated_warning(&tcp("tls://0.0.0.0:1"), &open).is_some());
        // Loopback, Unix sockets and in-process listeners are reachable from this machine only.
        assert!(unauthenticated_warning(&tcp("tcp://127.0.0.1:1"), &open).is_none());
        assert!(unauthenticated_warning(&tcp("unix:///tmp/x.sock"), &open).is_none());
        assert!(unauthenticated_warning(&tcp("inproc://x"), &open).is_none());
        let mut secret = Config::new("s");
        secret.secret = Some(Secret::new(*b"k"));
        assert!(unauthenticated_warning(&tcp("tcp://0.0.0.0:1"), &secret).is_none());
    }
}
