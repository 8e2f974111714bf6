//! A pull from a peer store as a state machine, sans-IO: what to ask next, within a cap on bytes
//! in flight, and whether each reply is the one asked for and inside the object. No clock, no
//! sockets; `peer.rs` does the I/O around it. Also [`PullOptions`] and [`PullError`].

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use crate::ObjectId;
use crate::error::ObjectError;
use crate::peer_protocol::{
    MAX_CHUNK_BYTES, PEER_PROTOCOL_VERSION, PeerProtocolError, PeerRefusal, PeerReply, PeerRequest,
};
use crate::protocol::Layout;

/// How a store pulls an object from a peer store.
///
/// ```
/// let mut options = pontoon_store::PullOptions::default();
/// options.chunk_bytes = 1 << 20;
/// assert_eq!(options.max_in_flight_bytes, 64 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullOptions {
    /// Bytes asked for in one chunk (at most [`MAX_CHUNK_BYTES`]). Default 4 MiB.
    pub chunk_bytes: u64,
    /// Most bytes asked for and not yet received, at once. Default 64 MiB.
    pub max_in_flight_bytes: u64,
    /// How long the connect and the handshake with the peer may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long the peer may take to answer before the pull fails. Default 30 s.
    pub reply_timeout: Duration,
}

impl Default for PullOptions {
    fn default() -> PullOptions {
        PullOptions {
            chunk_bytes: 4 << 20,
            max_in_flight_bytes: 64 << 20,
            connect_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a pull from a peer store failed. The local create is aborted in every case: nothing is
/// left of a failed pull.
///
/// ```
/// let id = pontoon_store::ObjectId::new(pontoon_store::StoreId(1), 2);
/// let err = pontoon_store::PullError::Closed { peer: "tcp://10.0.0.2:7000".into(), id, received: 4, len: 9 };
/// assert_eq!(
///     err.to_string(),
///     "the peer tcp://10.0.0.2:7000 closed the connection with 4 of 9 bytes of object 0000000000000001-0000000000000002 received"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The peer could not be connected to, or the connection failed.
    #[error("pulling from {peer}: the connection failed")]
    Transport {
        /// The peer's address.
        peer: String,
        /// Why.
        #[source]
        source: pontoon_transport::TransportError,
    },
    /// The peer closed the connection before the object was whole.
    #[error(
        "the peer {peer} closed the connection with {received} of {len} bytes of object {id} received"
    )]
    Closed {
        /// The peer's address.
        peer: String,
        /// The object.
        id: ObjectId,
        /// Bytes received.
        received: u64,
        /// The object's length (0 while it was not described yet).
        len: u64,
    },
    /// The peer did not answer in time ([`PullOptions::reply_timeout`]).
    #[error("the peer {peer} did not answer within {seconds} s while sending object {id}")]
    Timeout {
        /// The peer's address.
        peer: String,
        /// The object.
        id: ObjectId,
        /// The limit.
        seconds: f64,
    },
    /// The peer refused: it has no such object, it is not sealed there, or another reason.
    #[error("pulling from {peer}")]
    Refused {
        /// The peer's address.
        peer: String,
        /// What the peer said.
        #[source]
        refusal: PeerRefusal,
    },
    /// The peer sent something that is not a message of the peer protocol.
    #[error("the peer {peer} sent a bad message")]
    Protocol {
        /// The peer's address.
        peer: String,
        /// What was wrong with it.
        #[source]
        source: PeerProtocolError,
    },
    /// The peer sent a well-formed message that is not what was asked for: another object, a
    /// chunk never asked for, bytes outside the object, a layout outside its length.
    #[error("the peer {peer} sent object {id} wrong: {reason}")]
    Lying {
        /// The peer's address.
        peer: String,
        /// The object.
        id: ObjectId,
        /// What was wrong.
        reason: String,
    },
    /// The local store refused the object (it does not fit: [`ObjectError::StoreFull`]).
    #[error("the local store refused the pulled object")]
    Local(#[source] ObjectError),
    /// Another pull of this object into this store is under way.
    #[error("object {id} is being pulled into this store already")]
    InProgress {
        /// The object.
        id: ObjectId,
    },
}

/// Where a pull is: asking what the object is, or receiving its chunks.
#[derive(Debug)]
enum Phase {
    Describing,
    Receiving,
}

/// One pull of one object from one peer: the requests to send next and the checks on what
/// comes back. The caller sends [`Pull::first`], feeds the answer to [`Pull::described`],
/// reserves the object locally, then alternates [`Pull::next_request`] and [`Pull::chunk`]
/// until [`Pull::is_complete`].
#[derive(Debug)]
pub(crate) struct Pull {
    peer: String,
    id: ObjectId,
    chunk_bytes: u64,
    max_in_flight: u64,
    phase: Phase,
    len: u64,
    /// The next offset not yet asked for.
    next: u64,
    /// Chunks asked for and not yet received: offset -> length.
    asked: BTreeMap<u64, u64>,
    in_flight: u64,
    received: u64,
}

impl Pull {
    pub(crate) fn new(peer: String, id: ObjectId, options: &PullOptions) -> Pull {
        let chunk_bytes = options.chunk_bytes.clamp(1, MAX_CHUNK_BYTES);
        Pull {
            peer,
            id,
            chunk_bytes,
            // At least one chunk in flight, or nothing would ever be asked.
            max_in_flight: options.max_in_flight_bytes.max(chunk_bytes),
            phase: Phase::Describing,
            len: 0,
            next: 0,
            asked: BTreeMap::new(),
            in_flight: 0,
            received: 0,
        }
    }

    /// The first request: what is the object?
    pub(crate) fn first(&self) -> PeerRequest {
        PeerRequest::Pull {
            version: PEER_PROTOCOL_VERSION,
            id: self.id,
        }
    }

    fn lying(&self, reason: String) -> PullError {
        PullError::Lying {
            peer: self.peer.clone(),
            id: self.id,
            reason,
        }
    }

    fn unexpected(&self, reply: PeerReply) -> PullError {
        match reply {
            PeerReply::Error(refusal) => PullError::Refused {
                peer: self.peer.clone(),
                refusal,
            },
            PeerReply::Object { .. } => self.lying("a second description".to_owned()),
            PeerReply::Chunk { .. } => self.lying("a chunk before the description".to_owned()),
        }
    }

    /// The answer to [`Pull::first`]: the object's length and layout, checked (the layout's
    /// frames lie inside the length) before the caller reserves that much.
    pub(crate) fn described(&mut self, reply: PeerReply) -> Result<(u64, Layout), PullError> {
        let PeerReply::Object { id, len, layout } = reply else {
            return Err(self.unexpected(reply));
        };
        if id != self.id {
            return Err(self.lying(format!("described object {id} instead")));
        }
        layout
            .check(id, len)
            .map_err(|e| self.lying(e.to_string()))?;
        self.len = len;
        self.phase = Phase::Receiving;
        Ok((len, layout))
    }

    /// The next chunk to ask for, if the cap on bytes in flight allows one and any is left.
    pub(crate) fn next_request(&mut self) -> Option<PeerRequest> {
        if !matches!(self.phase, Phase::Receiving) || self.next >= self.len {
            return None;
        }
        let len = self.chunk_bytes.min(self.len - self.next);
        if self.in_flight > 0 && self.in_flight + len > self.max_in_flight {
            return None;
        }
        let offset = self.next;
        self.asked.insert(offset, len);
        self.next += len;
        self.in_flight += len;
        Some(PeerRequest::Chunk {
            id: self.id,
            offset,
            len,
        })
    }

    /// A reply while receiving: a chunk asked for (its offset and bytes, to write at that offset
    /// of the object; the decoder checked that the frames add up to its length), or an error.
    pub(crate) fn chunk(&mut self, reply: PeerReply) -> Result<(u64, Vec<Bytes>), PullError> {
        if !matches!(self.phase, Phase::Receiving) {
            return Err(self.unexpected(reply));
        }
        let len = reply.chunk_len();
        let PeerReply::Chunk { id, offset, frames } = reply else {
            return Err(self.unexpected(reply));
        };
        if id != self.id {
            return Err(self.lying(format!("sent a chunk of object {id}")));
        }
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(self.lying(format!(
                "a chunk at {offset}+{len} lies outside the object's {} bytes",
                self.len
            )));
        }
        match self.asked.get(&offset) {
            Some(&asked) if asked == len => {}
            Some(&asked) => {
                return Err(self.lying(format!(
                    "a chunk at {offset} of {len} bytes, {asked} were asked for"
                )));
            }
            None => {
                return Err(self.lying(format!(
                    "a chunk at {offset} that was not asked for (or came twice)"
                )));
            }
        }
        self.asked.remove(&offset);
        self.in_flight -= len;
        self.received += len;
        Ok((offset, frames))
    }

    /// Whether every byte of the object has come.
    pub(crate) fn is_complete(&self) -> bool {
        matches!(self.phase, Phase::Receiving) && self.received == self.len
    }

    /// Bytes received so far, and the object's length (for errors).
    pub(crate) fn progress(&self) -> (u64, u64) {
        (self.received, self.len)
    }

    pub(crate) fn id(&self) -> ObjectId {
        self.id
    }

    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreId;

    fn id() -> ObjectId {
        ObjectId::new(StoreId(3), 1)
    }

    fn options(chunk: u64, cap: u64) -> PullOptions {
        PullOptions {
            chunk_bytes: chunk,
            max_in_flight_bytes: cap,
            ..PullOptions::default()
        }
    }

    fn described(pull: &mut Pull, len: u64) {
        let layout = Layout {
            header: Bytes::from_static(b"\x90"),
            frames: vec![(0, len)],
        };
        pull.described(PeerReply::Object {
            id: id(),
            len,
            layout,
        })
        .unwrap();
    }

    fn chunk(offset: u64, len: usize) -> PeerReply {
        PeerReply::Chunk {
            id: id(),
            offset,
            frames: vec![Bytes::from(vec![7u8; len])],
        }
    }

    fn drain(pull: &mut Pull) -> Vec<(u64, u64)> {
        std::iter::from_fn(|| pull.next_request())
            .map(|r| match r {
                PeerRequest::Chunk { offset, len, .. } => (offset, len),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn asks_in_chunks_within_the_cap_until_complete() {
        let mut pull = Pull::new("p".into(), id(), &options(10, 25));
        assert!(matches!(pull.first(), PeerRequest::Pull { .. }));
        assert!(
            pull.next_request().is_none(),
            "nothing before the description"
        );
        described(&mut pull, 45);
        // 25 bytes of cap: two 10-byte chunks, not a third.
        assert_eq!(drain(&mut pull), vec![(0, 10), (10, 10)]);
        // Replies may come in any order.
        assert_eq!(pull.chunk(chunk(10, 10)).unwrap().0, 10);
        assert_eq!(drain(&mut pull), vec![(20, 10)]);
        pull.chunk(chunk(0, 10)).unwrap();
        pull.chunk(chunk(20, 10)).unwrap();
        assert_eq!(drain(&mut pull), vec![(30, 10), (40, 5)]);
        assert!(!pull.is_complete());
        pull.chunk(chunk(30, 10)).unwrap();
        pull.chunk(chunk(40, 5)).unwrap();
        assert!(pull.is_complete());
        assert_eq!(pull.progress(), (45, 45));
        assert!(pull.next_request().is_none());
    }

    #[test]
    fn an_empty_object_is_complete_at_once_and_a_tiny_cap_still_moves() {
        let mut pull = Pull::new("p".into(), id(), &options(10, 1));
        described(&mut pull, 0);
        assert!(pull.is_complete());
        let mut pull = Pull::new("p".into(), id(), &options(10, 1));
        described(&mut pull, 30);
        assert_eq!(drain(&mut pull), vec![(0, 10)]);
    }

    #[test]
    fn chunks_not_asked_for_or_outside_the_object_are_refused() {
        let mut pull = Pull::new("p".into(), id(), &options(10, 100));
        assert!(matches!(
            pull.chunk(chunk(0, 10)),
            Err(PullError::Lying { .. })
        ));
        described(&mut pull, 30);
        drain(&mut pull);
        for bad in [
            chunk(0, 9),         // shorter than asked
            chunk(5, 10),        // an offset never asked for
            chunk(25, 10),       // past the end
            chunk(u64::MAX, 10), // an offset that overflows
            PeerReply::Chunk {
                id: ObjectId::new(StoreId(4), 1),
                offset: 0,
                frames: vec![Bytes::from(vec![0u8; 10])],
            },
            PeerReply::Object {
                id: id(),
                len: 30,
                layout: Layout::raw(30),
            },
        ] {
            assert!(matches!(pull.chunk(bad), Err(PullError::Lying { .. })));
        }
        pull.chunk(chunk(0, 10)).unwrap();
        // The same chunk twice.
        assert!(matches!(
            pull.chunk(chunk(0, 10)),
            Err(PullError::Lying { .. })
        ));
        let refused = PeerReply::Error(PeerRefusal::Unknown { id: id() });
        assert!(matches!(
            pull.chunk(refused),
            Err(PullError::Refused { .. })
        ));
    }

    #[test]
    fn descriptions_are_checked() {
        let mut pull = Pull::new("p".into(), id(), &options(10, 100));
        let outside = PeerReply::Object {
            id: id(),
            len: 10,
            layout: Layout {
                header: Bytes::new(),
                frames: vec![(5, 6)],
            },
        };
        assert!(matches!(
            pull.described(outside),
            Err(PullError::Lying { .. })
        ));
        let other = PeerReply::Object {
            id: ObjectId::new(StoreId(9), 9),
            len: 10,
            layout: Layout::raw(10),
        };
        assert!(matches!(
            pull.described(other),
            Err(PullError::Lying { .. })
        ));
        let unknown = PeerReply::Error(PeerRefusal::Unknown { id: id() });
        assert!(matches!(
            pull.described(unknown),
            Err(PullError::Refused {
                refusal: PeerRefusal::Unknown { .. },
                ..
            })
        ));
    }
}
