//! The receive budget: how many frame bytes the messages still arriving on a listener's
//! connections may hold together, and how many large decompressions may run at once.
//!
//! A message's need is what its frame table declares: the frames' wire bytes, plus the bytes its
//! compressed frames decompress to (at most what the limits let them expand to). Declaring costs
//! nothing: a message is granted budget a step at a time as its bytes arrive, and a connection
//! reads no more from its socket than it has been granted; when it cannot be granted more it
//! stops reading (TCP makes the peer wait) until other messages are handed over and give theirs
//! back. So a peer that declares much and sends little holds only what it sent.
//!
//! Steps are granted only while the ledger stays *safe* (the banker's rule): there is an order
//! in which every message in progress could still be granted all it declared, each finishing
//! and giving its bytes back before the next. So half-received messages never wait on each
//! other for good: some message can always finish. A message that declares more than the whole
//! budget counts as declaring all of it: it can be granted all of it once nothing else holds
//! any, and then it is received alone, past the budget, to its end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pontoon_wire::{ENTRY_LEN, Limits, MESSAGE_MARKER, PREFIX_LEN};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::pool::Pool;
use crate::{Config, TransportError};

/// What the connections of one listener share on their way in (or one comm from `connect`):
/// the pool of warm buffers, the receive budget, and the slots for large decompressions.
pub(crate) struct Receiving {
    pub(crate) pool: Arc<Pool>,
    budget: Arc<Budget>,
    decompressions: Arc<Semaphore>,
    /// Decompressions running now (counted on the blocking thread itself, not from permits).
    running: Arc<AtomicUsize>,
}

impl Receiving {
    pub(crate) fn new(config: &Config) -> Arc<Receiving> {
        let max_decompressions = config
            .max_decompressions_in_flight
            .clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Receiving {
            pool: Pool::new(config.receive_pool_bytes),
            budget: Arc::new(Budget {
                bytes: config.receive_budget_bytes.max(1),
                ledger: Mutex::new(Ledger::default()),
                released: Notify::new(),
            }),
            decompressions: Arc::new(Semaphore::new(max_decompressions)),
            running: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Bytes of the budget granted to messages in progress now.
    pub(crate) fn budget_in_use_bytes(&self) -> u64 {
        self.budget.lock().used
    }

    /// Decompressions running on blocking threads now.
    pub(crate) fn decompressions_in_flight(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Opens the account of a message that declares `need` bytes: nothing is granted yet, and
    /// opening never waits.
    pub(crate) fn open(&self, need: u64) -> Grant {
        let need = need.min(self.budget.bytes);
        let mut ledger = self.budget.lock();
        let id = ledger.next_id;
        ledger.next_id = ledger.next_id.wrapping_add(1);
        ledger.declared = ledger.declared.saturating_add(need);
        ledger.messages.insert(id, Account { need, granted: 0 });
        Grant {
            budget: self.budget.clone(),
            id,
            spare: 0,
            arrived: 0,
        }
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
            .field("budget_bytes", &self.budget.bytes)
            .field("budget_in_use_bytes", &self.budget_in_use_bytes())
            .field("decompressions_in_flight", &self.decompressions_in_flight())
            .finish()
    }
}

/// The budget and who holds what of it.
struct Budget {
    bytes: u64,
    ledger: Mutex<Ledger>,
    /// Woken whenever budget is given back.
    released: Notify,
}

#[derive(Default)]
struct Ledger {
    /// Bytes granted, all messages together: at most the budget.
    used: u64,
    /// What the messages in progress declare, together (each at most the budget).
    declared: u64,
    messages: HashMap<u64, Account>,
    next_id: u64,
}

#[derive(Clone, Copy)]
struct Account {
    /// What the message declares, at most the whole budget.
    need: u64,
    granted: u64,
}

impl Budget {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Grants message `id` up to `step` more bytes if that keeps the ledger safe: how many, or
    /// `None` to wait. Past what it declared, a message is given `step` without counting it
    /// (the bytes after a message's last frame, or a message that declared more than the
    /// budget, once it holds all of it).
    fn try_grant(&self, id: u64, step: u64) -> Option<u64> {
        let mut ledger = self.lock();
        let account = *ledger.messages.get(&id)?;
        let more = step.min(account.need.saturating_sub(account.granted));
        if more == 0 {
            return Some(step);
        }
        let used = ledger.used.checked_add(more).filter(|&u| u <= self.bytes)?;
        if ledger.declared > self.bytes && !safe(&ledger, self.bytes, used, id, more) {
            return None;
        }
        ledger.used = used;
        if let Some(account) = ledger.messages.get_mut(&id) {
            account.granted += more;
        }
        Some(more)
    }
}

/// The banker's rule: whether, with `more` granted to `id` (so `used` in all), every message
/// could still get what it declared, in the order of what each still lacks (for one kind of
/// resource that order finishes whenever any order does). When what all declare fits the
/// budget at once the ledger is always safe; callers skip this then.
///
/// The common answers take one pass and no sort: safe when what is free covers what any
/// message lacks (each could finish now), unsafe when it covers what none lacks. Only between
/// the two are the messages sorted, and the walk stops once what is free covers the most any
/// remaining message lacks.
fn safe(ledger: &Ledger, budget: u64, used: u64, id: u64, more: u64) -> bool {
    let after = |key: u64, account: &Account| {
        let granted = account.granted + if key == id { more } else { 0 };
        (account.need.saturating_sub(granted), granted)
    };
    let free = budget.saturating_sub(used);
    let (mut least, mut most) = (u64::MAX, 0);
    for (&key, account) in &ledger.messages {
        let (lacks, _) = after(key, account);
        least = least.min(lacks);
        most = most.max(lacks);
    }
    if free >= most {
        return true;
    }
    if free < least {
        return false;
    }
    let mut lacking = Vec::new();
    if lacking.try_reserve_exact(ledger.messages.len()).is_err() {
        return false;
    }
    lacking.extend(
        ledger
            .messages
            .iter()
            .map(|(&key, account)| after(key, account)),
    );
    lacking.sort_unstable();
    let mut free = free;
    for (lacks, granted) in lacking {
        if free >= most {
            return true;
        }
        if lacks > free {
            return false;
        }
        free = free.saturating_add(granted);
    }
    true
}

/// The least a message is granted at a time: one read's worth.
const STEP_MIN: u64 = 64 << 10;

/// The most a message is granted at a time.
const STEP_MAX: u64 = 1 << 20;

/// The budget one message in progress holds, granted a step at a time; given back, all of it,
/// when dropped (when the message is handed over, or the comm is).
pub(crate) struct Grant {
    budget: Arc<Budget>,
    id: u64,
    /// Granted bytes that have not arrived yet: what may be read now.
    spare: u64,
    /// Bytes that have arrived under this grant.
    arrived: u64,
}

impl Grant {
    /// Bytes that may be read now without more budget.
    pub(crate) fn spare(&self) -> u64 {
        self.spare
    }

    /// `n` bytes arrived.
    pub(crate) fn arrived(&mut self, n: u64) {
        self.spare = self.spare.saturating_sub(n);
        self.arrived = self.arrived.saturating_add(n);
    }

    /// Waits until the next step for reading is granted: as much as has arrived so far, from
    /// one read's worth ([`STEP_MIN`]) up to [`STEP_MAX`]. Steps grow with what the peer
    /// actually sends, so one that sends a head and stops holds one read's worth, not a step.
    pub(crate) async fn more_to_read(&mut self) {
        let step = self.arrived.clamp(STEP_MIN, STEP_MAX);
        self.more(step).await;
    }

    /// Waits until up to `step` more bytes are granted. Cancel safe: a grant is made and
    /// recorded at once, never half.
    pub(crate) async fn more(&mut self, step: u64) {
        loop {
            let released = self.budget.released.notified();
            let mut released = std::pin::pin!(released);
            released.as_mut().enable();
            if let Some(granted) = self.budget.try_grant(self.id, step) {
                self.spare = self.spare.saturating_add(granted);
                return;
            }
            released.await;
        }
    }

    /// Waits until all the message declared is granted (before it decompresses). Cancel safe.
    pub(crate) async fn all(&mut self) {
        loop {
            let lacking = {
                let ledger = self.budget.lock();
                ledger
                    .messages
                    .get(&self.id)
                    .map_or(0, |a| a.need.saturating_sub(a.granted))
            };
            if lacking == 0 {
                return;
            }
            self.more(lacking).await;
        }
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        let mut ledger = self.budget.lock();
        if let Some(account) = ledger.messages.remove(&self.id) {
            ledger.used = ledger.used.saturating_sub(account.granted);
            ledger.declared = ledger.declared.saturating_sub(account.need);
        }
        drop(ledger);
        self.budget.released.notify_waiters();
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant").field("spare", &self.spare).finish()
    }
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

    fn with_codec(codec: Codec) -> EncodeOptions {
        let mut options = EncodeOptions::default();
        options.codec = codec;
        options
    }

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
        let packed = wire(&message, with_codec(Codec::Lz4));
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
        let mut packed = wire(&message, with_codec(Codec::Lz4));
        let wire_len = u64::from_le_bytes(packed[24..32].try_into().unwrap());
        packed[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            declared_need(&packed, &limits),
            Some(wire_len + limits.max_expansion(wire_len))
        );
    }

    /// What the checked head says the message needs: the reference `declared_need` must match.
    fn need_from_head(wire: &[u8], limits: &Limits) -> Option<u64> {
        let mut buf = bytes::BytesMut::from(wire);
        let head = pontoon_wire::MessageHead::parse(&mut buf, limits).ok()??;
        Some(head.frames().iter().fold(0u64, |need, frame| {
            let need = need.saturating_add(frame.wire_len);
            match frame.codec {
                Codec::None => need,
                _ => need.saturating_add(frame.raw_len.min(limits.max_expansion(frame.wire_len))),
            }
        }))
    }

    proptest::proptest! {
        /// Heads with bytes overwritten anywhere (lengths, counts, codecs): reading the
        /// declaration never panics, and wherever the reader still accepts the head, the
        /// declaration is what the checked head says.
        #[test]
        fn damaged_heads_declare_what_the_checked_head_says(
            lens in proptest::collection::vec(0usize..5000, 1..4),
            damage in proptest::collection::vec((0usize..120, proptest::num::u8::ANY), 1..6),
        ) {
            let limits = Limits::default();
            let frames = lens.iter().map(|&len| Bytes::from(vec![0u8; len])).collect();
            let message = Message::new(Header::empty(), frames);
            let mut encoded = wire(&message, with_codec(Codec::Lz4));
            for (at, byte) in damage {
                if let Some(b) = encoded.get_mut(at) {
                    *b = byte;
                }
            }
            let declared = declared_need(&encoded, &limits);
            if let Some(checked) = need_from_head(&encoded, &limits) {
                proptest::prop_assert_eq!(declared, Some(checked));
            }
        }

        /// Messages of any frames, compressed or not: the declaration read from the frame
        /// table is what the checked head says.
        #[test]
        fn encoded_messages_declare_their_frames(
            lens in proptest::collection::vec(0usize..200_000, 0..6),
            lz4 in proptest::bool::ANY,
        ) {
            let limits = Limits::default();
            let frames = lens.iter().map(|&len| Bytes::from(vec![3u8; len])).collect();
            let message = Message::new(Header::empty(), frames);
            let codec = if lz4 { Codec::Lz4 } else { Codec::None };
            let encoded = wire(&message, with_codec(codec));
            let checked = need_from_head(&encoded, &limits);
            proptest::prop_assert!(checked.is_some());
            proptest::prop_assert_eq!(declared_need(&encoded, &limits), checked);
        }
    }

    fn receiving(budget: u64) -> Arc<Receiving> {
        let mut config = Config::new("t");
        config.receive_budget_bytes = budget;
        Receiving::new(&config)
    }

    #[tokio::test]
    async fn a_message_over_the_budget_gets_all_of_it_then_goes_on_alone() {
        let receiving = receiving(10 << 10);
        let mut huge = receiving.open(u64::MAX);
        huge.more(1 << 20).await;
        assert_eq!(huge.spare(), 10 << 10, "granted no more than the budget");
        assert_eq!(receiving.budget_in_use_bytes(), 10 << 10);
        huge.arrived(10 << 10);
        // Holding all of it, it goes on past the budget, uncounted.
        huge.more(4096).await;
        assert_eq!(huge.spare(), 4096);
        assert_eq!(receiving.budget_in_use_bytes(), 10 << 10);
        // Nothing else is granted meanwhile.
        let other = receiving.open(1);
        assert_eq!(receiving.budget.try_grant(other.id, 1), None);
        drop(huge);
        assert_eq!(receiving.budget_in_use_bytes(), 0);
        assert_eq!(receiving.budget.try_grant(other.id, 1), Some(1));
    }

    #[test]
    fn grants_that_could_leave_every_message_short_are_refused() {
        let receiving = receiving(100);
        let budget = &receiving.budget;
        let (a, b) = (receiving.open(90), receiving.open(90));
        // Together they declare more than the budget: each may go on while one can finish.
        assert_eq!(budget.try_grant(a.id, 40), Some(40));
        assert_eq!(budget.try_grant(b.id, 10), Some(10));
        // 40 + 20 would leave 40 free: a lacks 50, b lacks 70; neither could finish.
        assert_eq!(budget.try_grant(b.id, 10), None);
        // a can take the rest and finish; then b can.
        assert_eq!(budget.try_grant(a.id, 50), Some(50));
        drop(a);
        assert_eq!(budget.try_grant(b.id, 80), Some(80));
        assert_eq!(receiving.budget_in_use_bytes(), 90);
        drop(b);
        // A message that declares little is never held up by the ledger's safety.
        let (mut small, big) = (receiving.open(10), receiving.open(100));
        assert_eq!(budget.try_grant(big.id, 5), Some(5));
        assert_eq!(budget.try_grant(small.id, 10), Some(10));
        small.spare = 10;
        small.arrived(4);
        assert_eq!(small.spare(), 6);
        // Past what it declared, it is not counted.
        assert_eq!(budget.try_grant(small.id, 7), Some(7));
        assert_eq!(receiving.budget_in_use_bytes(), 15);
    }
}
