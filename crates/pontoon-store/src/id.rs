//! Object and store ids, and their textual form.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;

/// Which store made an object: a random 64-bit number drawn when a store starts.
///
/// ```
/// let a = pontoon_store::StoreId::random();
/// let b = pontoon_store::StoreId::random();
/// assert_ne!(a, b);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreId(pub u64);

impl StoreId {
    /// A fresh random id (from the OS-seeded keys of std's `RandomState`; not for secrets, only
    /// to tell stores apart).
    ///
    /// ```
    /// assert_ne!(pontoon_store::StoreId::random().0, 0);
    /// ```
    pub fn random() -> StoreId {
        static DRAWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        loop {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(DRAWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            // Zero is never drawn, so an all-zero id is never a real object.
            let value = hasher.finish();
            if value != 0 {
                return StoreId(value);
            }
        }
    }
}

/// An object's id: 16 bytes, the [`StoreId`] of the store that owns it, then a sequence number
/// that store never reuses. So an id alone says where its object lives (what a pull from a peer
/// store will need), and no two stores hand out the same id.
///
/// Its textual form, printed by `pontoon store put` and read by `get`/`delete`, is the two
/// halves as 16 lowercase hex digits each, joined by a dash:
///
/// ```
/// use pontoon_store::{ObjectId, StoreId};
/// let id = ObjectId::new(StoreId(0xabc), 7);
/// assert_eq!(id.to_string(), "0000000000000abc-0000000000000007");
/// assert_eq!("0000000000000abc-0000000000000007".parse::<ObjectId>()?, id);
/// assert_eq!(id.store(), StoreId(0xabc));
/// # Ok::<(), pontoon_store::ParseIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 16]);

impl ObjectId {
    /// The id of object number `seq` of `store`.
    ///
    /// ```
    /// let id = pontoon_store::ObjectId::new(pontoon_store::StoreId(1), 2);
    /// assert_eq!(id.seq(), 2);
    /// ```
    pub fn new(store: StoreId, seq: u64) -> ObjectId {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&store.0.to_be_bytes());
        bytes[8..].copy_from_slice(&seq.to_be_bytes());
        ObjectId(bytes)
    }

    /// The id from its 16 bytes (as the daemon's protocol carries it).
    ///
    /// ```
    /// let id = pontoon_store::ObjectId::new(pontoon_store::StoreId(1), 2);
    /// assert_eq!(pontoon_store::ObjectId::from_bytes(*id.as_bytes()), id);
    /// ```
    pub fn from_bytes(bytes: [u8; 16]) -> ObjectId {
        ObjectId(bytes)
    }

    /// The id's 16 bytes: the store id then the sequence number, both big-endian.
    ///
    /// ```
    /// let id = pontoon_store::ObjectId::new(pontoon_store::StoreId(1), 2);
    /// assert_eq!(id.as_bytes()[15], 2);
    /// ```
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The store that owns the object.
    ///
    /// ```
    /// let id = pontoon_store::ObjectId::new(pontoon_store::StoreId(9), 2);
    /// assert_eq!(id.store().0, 9);
    /// ```
    pub fn store(&self) -> StoreId {
        StoreId(u64::from_be_bytes(self.0[..8].try_into().unwrap_or([0; 8])))
    }

    /// The object's sequence number in its store.
    ///
    /// ```
    /// let id = pontoon_store::ObjectId::new(pontoon_store::StoreId(9), 2);
    /// assert_eq!(id.seq(), 2);
    /// ```
    pub fn seq(&self) -> u64 {
        u64::from_be_bytes(self.0[8..].try_into().unwrap_or([0; 8]))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{:016x}", self.store().0, self.seq())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

/// Text that is not an object id (`<16 hex digits>-<16 hex digits>`).
///
/// ```
/// let err = "nope".parse::<pontoon_store::ObjectId>().unwrap_err();
/// assert_eq!(err.to_string(), "`nope` is not an object id (want 16 hex digits, a dash, 16 hex digits)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an object id (want 16 hex digits, a dash, 16 hex digits)")]
#[non_exhaustive]
pub struct ParseIdError {
    /// The text given (at most 64 characters of it).
    pub text: String,
}

impl FromStr for ObjectId {
    type Err = ParseIdError;

    fn from_str(text: &str) -> Result<ObjectId, ParseIdError> {
        let fail = || ParseIdError {
            text: text.chars().take(64).collect(),
        };
        let (store, seq) = text.split_once('-').ok_or_else(fail)?;
        let half = |s: &str| {
            if s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                u64::from_str_radix(s, 16).ok()
            } else {
                None
            }
        };
        match (half(store), half(seq)) {
            (Some(store), Some(seq)) => Ok(ObjectId::new(StoreId(store), seq)),
            _ => Err(fail()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_refuses_near_misses() {
        let id = ObjectId::new(StoreId(u64::MAX), u64::MAX - 1);
        assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
        for bad in [
            "",
            "-",
            "0000000000000abc0000000000000007",
            "000000000000abc-0000000000000007",
            "+000000000000abc-0000000000000007",
            "0000000000000abc-000000000000000g",
            "0000000000000abc-0000000000000007-",
        ] {
            assert!(bad.parse::<ObjectId>().is_err(), "{bad:?} parsed");
        }
    }
}
