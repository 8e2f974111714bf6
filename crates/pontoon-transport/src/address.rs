//! [`Address`]: where a comm listens or connects: `tcp://host:port`, `tls://host:port`,
//! `unix:///path`, `inproc://name`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::TransportError;

/// Where a comm listens or connects.
///
/// ```
/// use pontoon_transport::Address;
/// let tcp: Address = "tcp://127.0.0.1:8786".parse()?;
/// let unix: Address = "unix:///tmp/pontoon.sock".parse()?;
/// let inproc: Address = "inproc://scheduler".parse()?;
/// let tls: Address = "tls://scheduler.cluster:8786".parse()?;
/// assert_eq!(tcp.to_string(), "tcp://127.0.0.1:8786");
/// assert_eq!(tls.to_string(), "tls://scheduler.cluster:8786");
/// assert!(matches!(unix, Address::Unix(_)));
/// assert!("http://x".parse::<Address>().is_err());
/// # let _ = inproc;
/// # Ok::<(), pontoon_transport::TransportError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A TCP socket: `host:port` (a name or an IP; port 0 picks a free port when listening).
    Tcp(String),
    /// TLS over TCP: `host:port`, as for [`Address::Tcp`]. The settings are
    /// [`Config::tls`](crate::Config::tls); a client verifies the server's certificate against
    /// the host (or [`TlsConfig::with_server_name`](crate::TlsConfig::with_server_name)).
    Tls(String),
    /// A Unix domain socket at a path.
    Unix(PathBuf),
    /// A named endpoint inside this process: no socket at all.
    Inproc(String),
}

impl Address {
    /// Whether a peer at this address shares this machine (and its memory) for sure: Unix and
    /// in-process always, TCP and TLS when the host is a loopback address.
    ///
    /// ```
    /// # use pontoon_transport::Address;
    /// assert!("tcp://127.0.0.1:1".parse::<Address>()?.is_local());
    /// assert!(!"tcp://10.1.2.3:1".parse::<Address>()?.is_local());
    /// # Ok::<(), pontoon_transport::TransportError>(())
    /// ```
    pub fn is_local(&self) -> bool {
        match self {
            Address::Unix(_) | Address::Inproc(_) => true,
            Address::Tcp(host_port) | Address::Tls(host_port) => {
                let host = host_port
                    .rsplit_once(':')
                    .map_or(host_port.as_str(), |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

impl FromStr for Address {
    type Err = TransportError;

    fn from_str(s: &str) -> Result<Address, TransportError> {
        let bad = |why: &str| TransportError::BadAddress {
            address: s.to_string(),
            reason: why.to_string(),
        };
        let host_port = |rest: &str| {
            rest.rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        };
        if let Some(rest) = s.strip_prefix("tcp://") {
            if !host_port(rest) {
                return Err(bad("expected tcp://host:port"));
            }
            Ok(Address::Tcp(rest.to_string()))
        } else if let Some(rest) = s.strip_prefix("tls://") {
            if !host_port(rest) {
                return Err(bad("expected tls://host:port"));
            }
            Ok(Address::Tls(rest.to_string()))
        } else if let Some(rest) = s.strip_prefix("unix://") {
            if rest.is_empty() {
                return Err(bad("expected unix:///path"));
            }
            Ok(Address::Unix(PathBuf::from(rest)))
        } else if let Some(rest) = s.strip_prefix("inproc://") {
            if rest.is_empty() {
                return Err(bad("expected inproc://name"));
            }
            Ok(Address::Inproc(rest.to_string()))
        } else {
            Err(bad(
                "the scheme must be tcp://, tls://, unix:// or inproc://",
            ))
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(host_port) => write!(f, "tcp://{host_port}"),
            Address::Tls(host_port) => write!(f, "tls://{host_port}"),
            Address::Unix(path) => write!(f, "unix://{}", path.display()),
            Address::Inproc(name) => write!(f, "inproc://{name}"),
        }
    }
}
