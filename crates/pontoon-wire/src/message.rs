//! [`Message`] and [`Frame`]: what crosses every boundary, a header plus payload frames.

use bytes::Bytes;

use crate::Header;

/// One payload frame: a reference-counted byte buffer that is never copied on its way through
/// pontoon-wire. After decoding, an uncompressed frame is a slice of the receive buffer.
///
/// ```
/// let frame: pontoon_wire::Frame = bytes::Bytes::from(vec![0u8; 4096]);
/// let view = frame.slice(1024..2048); // cheap: shares the same memory
/// assert_eq!(view.as_ptr(), frame[1024..].as_ptr());
/// ```
pub type Frame = Bytes;

/// A header and a list of frames: the unit pontoon sends, stores and persists.
///
/// The header carries small metadata as MessagePack; large payloads travel as frames of their own
/// and are never copied into it.
///
/// ```
/// use bytes::Bytes;
/// use pontoon_wire::{Header, Message};
///
/// let message = Message::new(
///     Header::from_serde(&("put", "x-1"))?,
///     vec![Bytes::from(vec![0u8; 1 << 20])],
/// );
/// assert_eq!(message.payload_len(), 1 << 20);
/// # Ok::<(), pontoon_wire::HeaderError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Self-describing metadata.
    pub header: Header,
    /// Payload frames, in order.
    pub frames: Vec<Frame>,
}

impl Message {
    /// A message from a header and its frames.
    ///
    /// ```
    /// let message = pontoon_wire::Message::new(pontoon_wire::Header::empty(), vec![]);
    /// assert!(message.frames.is_empty());
    /// ```
    pub fn new(header: Header, frames: Vec<Frame>) -> Message {
        Message { header, frames }
    }

    /// Total bytes in the frames (not counting the header).
    ///
    /// ```
    /// use bytes::Bytes;
    /// let message = pontoon_wire::Message::new(
    ///     pontoon_wire::Header::empty(),
    ///     vec![Bytes::from_static(b"abc"), Bytes::from_static(b"de")],
    /// );
    /// assert_eq!(message.payload_len(), 5);
    /// ```
    pub fn payload_len(&self) -> u64 {
        self.frames.iter().map(|f| f.len() as u64).sum()
    }
}
