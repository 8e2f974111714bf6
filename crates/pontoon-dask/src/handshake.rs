//! The handshake of Dask's comms: right after connecting, each side writes its
//! `handshake_info()` as an ordinary message (`compression`, `python`, `pickle-protocol`)
//! and reads the other's; both then use the compression they agree on and the lower pickle
//! protocol (`Comm.handshake_configuration`).

use crate::DaskCodec;
use crate::value::Value;

/// What one side says in the handshake.
///
/// ```
/// let info = pontoon_dask::HandshakeInfo::default();
/// assert_eq!(info.pickle_protocol, 5);
/// assert_eq!(info.compression, None); // what Dask sends to a peer on its own host
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct HandshakeInfo {
    /// The compression it wants (`None`, `"lz4"`, `"zstd"`, ...).
    pub compression: Option<String>,
    /// Its Python's `(major, minor, micro)`; `None` for a peer that is not Python (this crate
    /// sends none).
    pub python: Option<(i64, i64, i64)>,
    /// The highest pickle protocol it reads.
    pub pickle_protocol: i64,
}

impl Default for HandshakeInfo {
    fn default() -> HandshakeInfo {
        HandshakeInfo {
            compression: None,
            python: None,
            pickle_protocol: 5,
        }
    }
}

impl HandshakeInfo {
    /// The message this side writes.
    ///
    /// ```
    /// let msg = pontoon_dask::HandshakeInfo::default().to_value();
    /// assert_eq!(msg.get("pickle-protocol"), Some(&pontoon_dask::Value::Int(5)));
    /// ```
    pub fn to_value(&self) -> Value {
        let mut items = vec![(
            Value::from("compression"),
            self.compression.as_deref().map_or(Value::Nil, Value::from),
        )];
        if let Some((a, b, c)) = self.python {
            items.push((
                Value::from("python"),
                Value::List(vec![Value::Int(a), Value::Int(b), Value::Int(c)]),
            ));
        }
        items.push((
            Value::from("pickle-protocol"),
            Value::Int(self.pickle_protocol),
        ));
        Value::Map(items)
    }

    /// Reads the peer's message; `None` if it lacks `pickle-protocol` (Dask refuses such a
    /// peer too: its versions "may not be in sync").
    ///
    /// ```
    /// use pontoon_dask::{HandshakeInfo, Value};
    /// let info = HandshakeInfo::from_value(&HandshakeInfo::default().to_value()).unwrap();
    /// assert_eq!(info, HandshakeInfo::default());
    /// assert!(HandshakeInfo::from_value(&Value::Nil).is_none());
    /// ```
    pub fn from_value(value: &Value) -> Option<HandshakeInfo> {
        let pickle_protocol = value.get("pickle-protocol")?.as_i64()?;
        let compression = match value.get("compression") {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        };
        let python = value
            .get("python")
            .and_then(Value::as_list)
            .and_then(|l| match l {
                [a, b, c] => Some((a.as_i64()?, b.as_i64()?, c.as_i64()?)),
                _ => None,
            });
        Some(HandshakeInfo {
            compression,
            python,
            pickle_protocol,
        })
    }
}

/// Both sides' handshakes and what they agree on.
///
/// ```
/// use pontoon_dask::{Handshake, HandshakeInfo};
/// let mut theirs = HandshakeInfo::default();
/// theirs.pickle_protocol = 4;
/// theirs.compression = Some("lz4".into());
/// let agreed = Handshake::agree(HandshakeInfo::default(), theirs);
/// assert_eq!((agreed.pickle_protocol, agreed.compression), (4, None));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Handshake {
    /// What this side sent.
    pub local: HandshakeInfo,
    /// What the peer sent.
    pub remote: HandshakeInfo,
    /// The compression both asked for, if both asked for the same one and it is built in.
    pub compression: Option<DaskCodec>,
    /// The lower of the two pickle protocols.
    pub pickle_protocol: i64,
}

impl Handshake {
    /// What two handshakes agree on, as `Comm.handshake_configuration` decides it.
    ///
    /// ```
    /// use pontoon_dask::{Handshake, HandshakeInfo};
    /// let a = Handshake::agree(HandshakeInfo::default(), HandshakeInfo::default());
    /// assert_eq!(a.compression, None);
    /// ```
    pub fn agree(local: HandshakeInfo, remote: HandshakeInfo) -> Handshake {
        let compression = match (&local.compression, &remote.compression) {
            (Some(a), Some(b)) if a == b => match a.as_str() {
                "lz4" if cfg!(feature = "lz4") => Some(DaskCodec::Lz4),
                "zstd" if cfg!(feature = "zstd") => Some(DaskCodec::Zstd),
                _ => None,
            },
            _ => None,
        };
        let pickle_protocol = local.pickle_protocol.min(remote.pickle_protocol);
        Handshake {
            local,
            remote,
            compression,
            pickle_protocol,
        }
    }
}
