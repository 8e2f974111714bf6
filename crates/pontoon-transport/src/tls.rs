//! TLS for `tls://` addresses: [`TlsConfig`] (certificates and keys from PEM files, the roots a
//! client trusts, optional client certificates), [`TlsError`], and the upgrade of a TCP stream
//! to a TLS one, with the verified peer certificate's [`CertificateIdentity`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;

use crate::listener::{Reader, Writer};

/// The certificates a TLS client trusts for the server's chain.
///
/// ```
/// use pontoon_transport::Roots;
/// let roots = Roots::CaFile("/etc/pontoon/ca.pem".into());
/// assert!(matches!(roots, Roots::CaFile(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Roots {
    /// The operating system's trust store (through `rustls-native-certs`: the same roots the
    /// system's other programs trust, updated with the system; `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` are honoured).
    System,
    /// The certificates in this PEM file: a cluster's own CA.
    CaFile(PathBuf),
}

/// What goes wrong setting TLS up or shaking hands over it.
///
/// ```
/// let err = pontoon_transport::TlsError::NoCertificate { path: "ca.pem".into() };
/// assert_eq!(err.to_string(), "no certificate in ca.pem");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file cannot be read or parsed.
    #[error("cannot read PEM from {path}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A PEM file that should hold certificates holds none.
    #[error("no certificate in {path}")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The system trust store has no certificates that could be loaded.
    #[error("no certificate could be loaded from the system trust store ({errors} errors)")]
    NoSystemRoots {
        /// How many errors loading it gave.
        errors: usize,
    },
    /// rustls refuses the certificates, key or settings.
    #[error("bad TLS settings")]
    Settings(#[source] rustls::Error),
    /// The TLS settings are for the other side: a `tls://` listener needs a
    /// [`TlsConfig::server`], a `tls://` connect a [`TlsConfig::client`].
    #[error("a tls:// {role} needs TLS settings made for that side in Config::tls")]
    NotConfigured {
        /// "listener" or "connect".
        role: &'static str,
    },
    /// The host of a `tls://` address is not a valid name to verify the server against.
    #[error("`{name}` is not a valid TLS server name")]
    ServerName {
        /// The name.
        name: String,
    },
    /// The TLS handshake failed: the peer's certificate was refused (unknown issuer, expired,
    /// absent under mutual TLS), the peer refused ours, or the peer does not speak TLS.
    #[error("the TLS handshake failed")]
    Handshake(#[source] rustls::Error),
}

/// A verified peer certificate's identity: its subject and the names it holds (DNS names, IP
/// addresses, e-mail addresses and URIs of its subject alternative name extension). Only a
/// certificate the TLS handshake verified gets here.
///
/// ```
/// let identity = pontoon_transport::CertificateIdentity::default();
/// assert_eq!(identity.name(), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateIdentity {
    /// The subject's distinguished name, as `CN=worker-1, O=cluster` (empty if it has none).
    pub subject: String,
    /// The subject alternative names, in the certificate's order (`DNS:` names, `IP:`
    /// addresses, `email:` and `URI:` entries without their prefix).
    pub alt_names: Vec<String>,
}

impl CertificateIdentity {
    /// The name a family most likely wants: the first subject alternative name, or the subject
    /// when there is none (`None` when both are empty).
    ///
    /// ```
    /// let mut identity = pontoon_transport::CertificateIdentity::default();
    /// identity.subject = "CN=worker-1".into();
    /// assert_eq!(identity.name(), Some("CN=worker-1"));
    /// identity.alt_names.push("worker-1.cluster".into());
    /// assert_eq!(identity.name(), Some("worker-1.cluster"));
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.alt_names
            .first()
            .map(String::as_str)
            .or((!self.subject.is_empty()).then_some(self.subject.as_str()))
    }

    /// Reads subject and names from a DER certificate; an empty identity for one that
    /// x509-parser cannot read (the handshake has verified it, so that does not happen with a
    /// certificate rustls accepted).
    fn from_der(der: &[u8]) -> CertificateIdentity {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let Ok((_, cert)) = X509Certificate::from_der(der) else {
            return CertificateIdentity::default();
        };
        let alt_names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(n) | GeneralName::RFC822Name(n) => Some(n.to_string()),
                        GeneralName::URI(n) => Some(n.to_string()),
                        GeneralName::IPAddress(bytes) => ip_from_bytes(bytes),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        CertificateIdentity {
            subject: cert.subject().to_string(),
            alt_names,
        }
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// TLS settings for one side, in [`Config::tls`](crate::Config::tls): a server's certificate
/// chain and key (and, for mutual TLS, the CA its clients' certificates must chain to), or the
/// roots a client verifies the server against (and, for mutual TLS, its own certificate). TLS
/// 1.3 and 1.2, through rustls with the `ring` provider.
///
/// ```no_run
/// use pontoon_transport::{Config, Roots, TlsConfig};
/// # fn main() -> Result<(), pontoon_transport::TlsError> {
/// let mut server = Config::new("server");
/// server.tls = Some(
///     TlsConfig::server("server-chain.pem", "server-key.pem")?
///         .require_client_certificates("clients-ca.pem")?,
/// );
/// let mut client = Config::new("client");
/// client.tls = Some(
///     TlsConfig::client(Roots::CaFile("ca.pem".into()))?
///         .with_client_certificate("client-chain.pem", "client-key.pem")?,
/// );
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    side: Side,
}

#[derive(Clone)]
enum Side {
    Server {
        chain: Vec<CertificateDer<'static>>,
        key: Arc<PrivateKeyDer<'static>>,
        client_roots: Option<Arc<RootCertStore>>,
        built: Arc<ServerConfig>,
    },
    Client {
        roots: Arc<RootCertStore>,
        server_name: Option<String>,
        built: Arc<ClientConfig>,
    },
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.side {
            Side::Server {
                chain,
                client_roots,
                ..
            } => f
                .debug_struct("TlsConfig::Server")
                .field("chain_certificates", &chain.len())
                .field("verifies_clients", &client_roots.is_some())
                .finish_non_exhaustive(),
            Side::Client {
                roots, server_name, ..
            } => f
                .debug_struct("TlsConfig::Client")
                .field("roots", &roots.len())
                .field("server_name", server_name)
                .finish_non_exhaustive(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem {
        path: path.to_path_buf(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        path: path.to_path_buf(),
        source,
    })
}

fn root_store(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store.add(cert).map_err(TlsError::Settings)?;
    }
    Ok(store)
}

fn build_server(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    client_roots: Option<&Arc<RootCertStore>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Settings)?;
    let builder = match client_roots {
        Some(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| TlsError::Settings(rustls::Error::General(e.to_string())))?,
        ),
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain.to_vec(), key.clone_key())
        .map_err(TlsError::Settings)?;
    Ok(Arc::new(config))
}

fn build_client(
    roots: &Arc<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Settings)?
        .with_root_certificates(roots.clone());
    let config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(TlsError::Settings)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

impl TlsConfig {
    /// A server's settings: its certificate chain (leaf first) and private key (PKCS#8, PKCS#1
    /// or SEC1), each from a PEM file. Clients are not asked for certificates unless
    /// [`TlsConfig::require_client_certificates`] says so.
    ///
    /// ```no_run
    /// let tls = pontoon_transport::TlsConfig::server("chain.pem", "key.pem")?;
    /// # let _ = tls; Ok::<(), pontoon_transport::TlsError>(())
    /// ```
    pub fn server(
        chain_pem: impl AsRef<Path>,
        key_pem: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsError> {
        let chain = certificates(chain_pem.as_ref())?;
        let key = private_key(key_pem.as_ref())?;
        let built = build_server(&chain, &key, None)?;
        Ok(TlsConfig {
            side: Side::Server {
                chain,
                key: Arc::new(key),
                client_roots: None,
                built,
            },
        })
    }

    /// Mutual TLS, on a server's settings: every client must present a certificate that chains
    /// to one in this PEM file, or its handshake fails. On a client's settings it is
    /// [`TlsError::NotConfigured`].
    ///
    /// ```no_run
    /// let tls = pontoon_transport::TlsConfig::server("chain.pem", "key.pem")?
    ///     .require_client_certificates("clients-ca.pem")?;
    /// # let _ = tls; Ok::<(), pontoon_transport::TlsError>(())
    /// ```
    pub fn require_client_certificates(
        self,
        ca_pem: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsError> {
        let Side::Server { chain, key, .. } = self.side else {
            return Err(TlsError::NotConfigured { role: "listener" });
        };
        let roots = Arc::new(root_store(ca_pem.as_ref())?);
        let built = build_server(&chain, &key, Some(&roots))?;
        Ok(TlsConfig {
            side: Side::Server {
                chain,
                key,
                client_roots: Some(roots),
                built,
            },
        })
    }

    /// A client's settings: the roots it verifies the server's chain against. The server's
    /// certificate must name the host of the `tls://` address (or
    /// [`TlsConfig::with_server_name`]).
    ///
    /// ```no_run
    /// use pontoon_transport::{Roots, TlsConfig};
    /// let tls = TlsConfig::client(Roots::System)?;
    /// # let _ = tls; Ok::<(), pontoon_transport::TlsError>(())
    /// ```
    pub fn client(roots: Roots) -> Result<TlsConfig, TlsError> {
        let store = match roots {
            Roots::CaFile(path) => root_store(&path)?,
            Roots::System => {
                let loaded = rustls_native_certs::load_native_certs();
                let mut store = RootCertStore::empty();
                let (added, _) = store.add_parsable_certificates(loaded.certs);
                if added == 0 {
                    return Err(TlsError::NoSystemRoots {
                        errors: loaded.errors.len(),
                    });
                }
                store
            }
        };
        let roots = Arc::new(store);
        let built = build_client(&roots, None)?;
        Ok(TlsConfig {
            side: Side::Client {
                roots,
                server_name: None,
                built,
            },
        })
    }

    /// On a client's settings: present this certificate chain and key (PEM files) when the
    /// server asks (mutual TLS). On a server's settings it is [`TlsError::NotConfigured`].
    ///
    /// ```no_run
    /// use pontoon_transport::{Roots, TlsConfig};
    /// let tls = TlsConfig::client(Roots::CaFile("ca.pem".into()))?
    ///     .with_client_certificate("client-chain.pem", "client-key.pem")?;
    /// # let _ = tls; Ok::<(), pontoon_transport::TlsError>(())
    /// ```
    pub fn with_client_certificate(
        self,
        chain_pem: impl AsRef<Path>,
        key_pem: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsError> {
        let Side::Client {
            roots, server_name, ..
        } = self.side
        else {
            return Err(TlsError::NotConfigured { role: "connect" });
        };
        let chain = certificates(chain_pem.as_ref())?;
        let key = private_key(key_pem.as_ref())?;
        let built = build_client(&roots, Some((chain, key)))?;
        Ok(TlsConfig {
            side: Side::Client {
                roots,
                server_name,
                built,
            },
        })
    }

    /// On a client's settings: verify the server's certificate against this name (and send it
    /// as SNI) instead of the host of the `tls://` address; for a server reached by an IP
    /// address whose certificate names it by DNS name. No effect on a server's settings.
    ///
    /// ```
    /// # #[allow(dead_code)]
    /// # fn f(tls: pontoon_transport::TlsConfig) {
    /// let tls = tls.with_server_name("scheduler.cluster");
    /// # let _ = tls; }
    /// ```
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> TlsConfig {
        if let Side::Client { server_name, .. } = &mut self.side {
            *server_name = Some(name.into());
        }
        self
    }

    /// Whether these are a server's settings (from [`TlsConfig::server`]).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(tls: pontoon_transport::TlsConfig) { assert!(tls.is_server()); }
    /// ```
    pub fn is_server(&self) -> bool {
        matches!(self.side, Side::Server { .. })
    }

    /// Whether these are a server's settings that require client certificates.
    pub(crate) fn verifies_clients(&self) -> bool {
        matches!(
            self.side,
            Side::Server {
                client_roots: Some(_),
                ..
            }
        )
    }
}

/// A TLS error out of an I/O error from tokio-rustls, which wraps rustls' own.
pub(crate) fn handshake_error(error: std::io::Error) -> Result<TlsError, std::io::Error> {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => Ok(TlsError::Handshake(tls.clone())),
        None => Err(error),
    }
}

/// A TCP stream still to be upgraded to TLS: the upgrade runs inside the handshake timeout.
pub(crate) enum Upgrade {
    Server(TcpStream, Arc<ServerConfig>),
    Client(TcpStream, Arc<ClientConfig>, ServerName<'static>),
}

impl Upgrade {
    /// The client's settings and the name it verifies for `host` (the host part of a
    /// `tls://host:port` address), checked before any socket is opened.
    pub(crate) fn client_settings(
        tls: Option<&TlsConfig>,
        host: &str,
    ) -> Result<(Arc<ClientConfig>, ServerName<'static>), TlsError> {
        let Some(Side::Client {
            server_name, built, ..
        }) = tls.map(|tls| &tls.side)
        else {
            return Err(TlsError::NotConfigured { role: "connect" });
        };
        let name = server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let server_name =
            ServerName::try_from(name.to_string()).map_err(|_| TlsError::ServerName {
                name: name.to_string(),
            })?;
        Ok((built.clone(), server_name))
    }

    /// The server's settings for a `tls://` listener.
    pub(crate) fn server_config(tls: Option<&TlsConfig>) -> Result<Arc<ServerConfig>, TlsError> {
        match tls.map(|tls| &tls.side) {
            Some(Side::Server { built, .. }) => Ok(built.clone()),
            _ => Err(TlsError::NotConfigured { role: "listener" }),
        }
    }

    /// Runs the TLS handshake; gives the two halves of the TLS stream and the verified peer
    /// certificate's identity (the server's always, a client's under mutual TLS).
    pub(crate) async fn run(
        self,
    ) -> Result<(Reader, Writer, Option<CertificateIdentity>), std::io::Error> {
        fn leaf(certs: Option<&[CertificateDer<'_>]>) -> Option<CertificateIdentity> {
            certs
                .and_then(|certs| certs.first())
                .map(|der| CertificateIdentity::from_der(der))
        }
        match self {
            Upgrade::Server(stream, config) => {
                let tls = tokio_rustls::TlsAcceptor::from(config)
                    .accept(stream)
                    .await?;
                let identity = leaf(tls.get_ref().1.peer_certificates());
                let (r, w) = tokio::io::split(tls);
                Ok((Box::new(r), Box::new(w), identity))
            }
            Upgrade::Client(stream, config, name) => {
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, stream)
                    .await?;
                let identity = leaf(tls.get_ref().1.peer_certificates());
                let (r, w) = tokio::io::split(tls);
                Ok((Box::new(r), Box::new(w), identity))
            }
        }
    }
}
