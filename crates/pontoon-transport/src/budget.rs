//! The receive budget: how many frame bytes the messages still arriving on a listener's
//! connections may hold together, and how many large decompressions may run at once.
//!
//! A message's need is what its frame table declares: the frames' wire bytes, plus the bytes its
//! compressed frames decompress to (at most what the limits let them expand to). A connection
//! takes its message's need from the budget when the head has been read and before it reads
//! any more of the message from its socket; when the budget is spent it stops reading (TCP
//! makes the peer wait) until other messages are handed over and give theirs back. The
//! reservation is only accounting: frame memory still grows as the bytes arrive.
//!
//! A message takes its whole need at once, never a part and then more, so that no two
//! half-received messages can each wait for the other's budget. A message that needs more than
//! the whole budget takes all of it: it waits until nothing else holds any, and is received
//! alone. Waiting is first come, first served (tokio's semaphore is fair), so a large message
//! is not starved by a stream of small ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pontoon_wire::{ENTRY_LEN, Limits, MESSAGE_MARKER, PREFIX_LEN};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::pool::Pool;
use crate::{Config, TransportError};

/// Budget is counted in units of this many bytes, so that one `u32` permit count covers any
/// message (tokio's semaphore takes at most `u32::MAX` permits at a time).
const UNIT: u64 = 1 << 10;

/// What the connections of one listener share on their way in (or one comm from `connect`):
/// the pool of warm buffers, the receive budget, and the slots for large decompressions.
pub(crate) struct Receiving {
    pub(crate) pool: Arc<Pool>,
    budget: Arc<Semaphore>,
    budget_units: u32,
    decompressions: Arc<Semaphore>,
    /// Decompressions running now (counted on the blocking thread itself, not from permits).
    running: Arc<AtomicUsize>,
}

impl Receiving {
    pub(crate) fn new(config: &Config) -> Arc<Receiving> {
        let budget_units = config
            .receive_budget_bytes
            .div_ceil(UNIT)
            .clamp(1, u64::from(u32::MAX))
            .min(Semaphore::MAX_PERMITS as u64);
        let budget_units = u32::try_from(budget_units).unwrap_or(u32::MAX);
        let max_decompressions = config
            .max_decompressions_in_flight
            .clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Receiving {
            pool: Pool::new(config.receive_pool_bytes),
            budget: Arc::new(Semaphore::new(budget_units as usize)),
            budget_units,
            decompressions: Arc::new(Semaphore::new(max_decompressions)),
            running: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Bytes of the budget held by messages in progress now.
    pub(crate) fn budget_in_use_bytes(&self) -> u64 {
        let free = self.budget.available_permits() as u64;
        u64::from(self.budget_units).saturating_sub(free) * UNIT
    }

    /// The budget in bytes (rounded up to its unit).
    pub(crate) fn budget_bytes(&self) -> u64 {
        u64::from(self.budget_units) * UNIT
    }

    /// Decompressions running on blocking threads now.
    pub(crate) fn decompressions_in_flight(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Takes `need` bytes of budget (all of it, if `need` is more), waiting while it is spent.
    /// Cancel safe: a dropped wait holds nothing.
    pub(crate) async fn reserve(&self, need: u64) -> Result<Grant, TransportError> {
        let units = need.div_ceil(UNIT).min(u64::from(self.budget_units));
        let units = u32::try_from(units).unwrap_or(self.budget_units);
        if units == 0 {
            return Ok(Grant { _permit: None });
        }
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(units)
            .await
            .map_err(|_| TransportError::Closed)?;
        Ok(Grant {
            _permit: Some(permit),
        })
    }

    /// A slot to decompress one message in, waiting while all are taken. Cancel safe.
    pub(crate) async fn decompression_slot(&self) -> Result<Slot, TransportError> {
        let permit = self
            .decompressions
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| TransportError::Closed)?;
        Ok(Slot {
            _permit: permit,
            running: self.running.clone(),
        })
    }
}

impl std::fmt::Debug for Receiving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiving")
            .field("budget_bytes", &self.budget_bytes())
            .field("budget_in_use_bytes", &self.budget_in_use_bytes())
            .field("decompressions_in_flight", &self.decompressions_in_flight())
            .finish()
    }
}

/// Budget held by one message in progress; given back when dropped.
#[derive(Debug)]
pub(crate) struct Grant {
    _permit: Option<OwnedSemaphorePermit>,
}

/// One of the slots for decompressions; [`Slot::run`] counts itself as running while it works.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
}

impl Slot {
    /// Runs `work` counted as one decompression in flight (on the thread that runs it).
    pub(crate) fn run<T>(self, work: impl FnOnce() -> T) -> T {
        self.running.fetch_add(1, Ordering::Relaxed);
        let result = work();
        self.running.fetch_sub(1, Ordering::Relaxed);
        result
    }
}

/// What the message whose head starts `buf` needs from the budget, read from its frame table:
/// its frames' wire bytes, plus for each compressed frame the bytes it decompresses to, at most
/// what `limits` let it expand to (more is refused when it is decoded). `None` unless `buf`
/// starts with a message whose frame table is all there. The head is not checked here: the
/// reader does that before the need is taken.
pub(crate) fn declared_need(buf: &[u8], limits: &Limits) -> Option<u64> {
    if !buf.starts_with(&MESSAGE_MARKER) {
        return None;
    }
    let count = u64::from_le_bytes(buf.get(8..16)?.try_into().ok()?);
    let table_len = usize::try_from(count).ok()?.checked_mul(ENTRY_LEN)?;
    let table = buf.get(PREFIX_LEN..PREFIX_LEN.checked_add(table_len)?)?;
    let mut need = 0u64;
    for entry in table.chunks_exact(ENTRY_LEN) {
        let field = |at: usize| {
            entry
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        let (wire_len, raw_len, codec) = (field(0), field(8), entry.get(16).copied());
        need = need.saturating_add(wire_len);
        if codec != Some(0) {
            need = need.saturating_add(raw_len.min(limits.max_expansion(wire_len)));
        }
    }
    Some(need)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use pontoon_wire::{Codec, EncodeOptions, Encoder, Header, Message};

    fn wire(message: &Message, options: EncodeOptions) -> Vec<u8> {
        Encoder::new(options)
            .encode(message)
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn the_need_is_the_frames_and_what_they_decompress_to() {
        let limits = Limits::default();
        let message = Message::new(
            Header::empty(),
            vec![
                Bytes::from(vec![1u8; 1000]),
                Bytes::from(vec![0u8; 300_000]),
            ],
        );
        let plain = wire(&message, EncodeOptions::default());
        assert_eq!(declared_need(&plain, &limits), Some(301_000));
        let head_end = plain.len() - 301_000;
        // Until the frame table is whole, nothing is known.
        assert_eq!(
            declared_need(&plain[..PREFIX_LEN + ENTRY_LEN], &limits),
            None
        );
        assert_eq!(declared_need(&plain[..head_end], &limits), Some(301_000));
        let packed = wire(&message, EncodeOptions::default().codec(Codec::Lz4));
        let need = declared_need(&packed, &limits).unwrap();
        assert!(need > 300_000 && need < 302_000 + 1000, "{need}");
        // A close message, garbage, or a count that does not fit: nothing.
        assert_eq!(declared_need(b"\xF0C....", &limits), None);
        let mut huge = plain.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(declared_need(&huge, &limits), None);
    }

    #[test]
    fn a_declared_expansion_counts_only_what_the_limits_allow() {
        let limits = Limits::default();
        let message = Message::new(Header::empty(), vec![Bytes::from(vec![0u8; 1 << 20])]);
        let mut packed = wire(&message, EncodeOptions::default().codec(Codec::Lz4));
        let wire_len = u64::from_le_bytes(packed[24..32].try_into().unwrap());
        packed[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            declared_need(&packed, &limits),
            Some(wire_len + limits.max_expansion(wire_len))
        );
    }

    #[tokio::test]
    async fn a_need_over_the_budget_takes_all_of_it() {
        let mut config = Config::new("t");
        config.receive_budget_bytes = 10 << 10;
        let receiving = Receiving::new(&config);
        let all = receiving.reserve(u64::MAX).await.unwrap();
        assert_eq!(receiving.budget_in_use_bytes(), 10 << 10);
        drop(all);
        assert_eq!(receiving.budget_in_use_bytes(), 0);
        let small = receiving.reserve(1).await.unwrap();
        assert_eq!(receiving.budget_in_use_bytes(), UNIT);
        drop(small);
        let none = receiving.reserve(0).await.unwrap();
        assert_eq!(receiving.budget_in_use_bytes(), 0);
        drop(none);
    }
}
