//! The receiver's [`Limits`] while a value is deserialized: how decoders inside a serde value
//! (an array in a struct, say) learn how much they may expand what the peer sent.

use std::cell::Cell;

use pontoon_wire::Limits;

thread_local! {
    /// The limits of the deserialize running on this thread; `None` outside one.
    static ACTIVE: Cell<Option<Limits>> = const { Cell::new(None) };
}

/// The limits of the registry (or session) whose deserialize is running on this thread, or
/// [`Limits::DEFAULT`] outside one.
///
/// A type whose `Deserialize` can make more memory than its bytes on the wire (a broadcast
/// array, a decompressed blob) checks against these before it allocates, so that the limits a
/// receiver set on its [`Registry`](crate::Registry) hold inside any serde value.
///
/// ```
/// use pontoon_family::{Registry, decode_limits};
///
/// /// A length that the receiver refuses when it is over its expansion limit.
/// #[derive(serde::Serialize)]
/// struct Checked(u64);
/// impl<'de> serde::Deserialize<'de> for Checked {
///     fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Checked, D::Error> {
///         let n = u64::deserialize(d)?;
///         if n > decode_limits().max_expanded_bytes {
///             return Err(serde::de::Error::custom("larger than the receiver allows"));
///         }
///         Ok(Checked(n))
///     }
/// }
///
/// let mut sender = Registry::new();
/// sender.register_type::<u64>("doc.Length")?;
/// let mut receiver = Registry::new();
/// receiver.register_type::<Checked>("doc.Length")?;
/// let mut limits = pontoon_wire::Limits::default();
/// limits.max_expanded_bytes = 1000;
/// receiver.set_limits(limits);
///
/// assert!(receiver.deserialize::<Checked>(&sender.serialize(&999u64)?).is_ok());
/// assert!(receiver.deserialize::<Checked>(&sender.serialize(&2000u64)?).is_err());
/// assert_eq!(decode_limits(), pontoon_wire::Limits::DEFAULT); // outside a deserialize
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_limits() -> Limits {
    ACTIVE.with(Cell::get).unwrap_or(Limits::DEFAULT)
}

/// Runs `decode` with `limits` active on this thread, and restores what was active before (a
/// value may deserialize another inside its own `Deserialize`).
#[inline]
pub(crate) fn with_limits<R>(limits: &Limits, decode: impl FnOnce() -> R) -> R {
    /// Puts the previous limits back, also when `decode` unwinds.
    struct Restore(Option<Limits>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ACTIVE.with(|active| active.set(self.0));
        }
    }
    let _restore = Restore(ACTIVE.with(|active| active.replace(Some(*limits))));
    decode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_sees_its_own_limits_and_the_ones_before_come_back() {
        let mut outer = Limits::DEFAULT;
        outer.max_expanded_bytes = 1000;
        let mut inner = Limits::DEFAULT;
        inner.max_expanded_bytes = 10;
        assert_eq!(decode_limits(), Limits::DEFAULT);
        with_limits(&outer, || {
            assert_eq!(decode_limits(), outer);
            // A value deserializing another with a registry of its own.
            with_limits(&inner, || assert_eq!(decode_limits(), inner));
            assert_eq!(decode_limits(), outer);
            // A decode that panics still puts the limits before it back.
            let unwound = std::panic::catch_unwind(|| with_limits(&inner, || panic!("in decode")));
            assert!(unwound.is_err());
            assert_eq!(decode_limits(), outer);
        });
        assert_eq!(decode_limits(), Limits::DEFAULT);
    }
}
