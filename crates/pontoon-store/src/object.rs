//! A sealed object's frames in a client: views of the read-only mapping, each holding the pin
//! that keeps the daemon from freeing the memory under them.

use std::sync::Arc;

use crate::ObjectId;
use crate::arena::Mapping;
use crate::client::Inner;
use crate::protocol::Request;

/// One pin on one object: released (a `Release` request) when the last view drops it.
pub(crate) struct Pin {
    client: Arc<Inner>,
    id: ObjectId,
}

impl Pin {
    pub(crate) fn new(client: Arc<Inner>, id: ObjectId) -> Pin {
        Pin { client, id }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.client.send_only(&Request::Release { id: self.id });
    }
}

/// A frame's bytes in the read-only mapping (the owner of a `Bytes::from_owner`).
pub(crate) struct View {
    map: Arc<Mapping>,
    offset: usize,
    len: usize,
    _pin: Arc<Pin>,
}

impl View {
    /// A view of `offset..offset + len`, which the caller has checked lies inside `map`.
    pub(crate) fn new(map: Arc<Mapping>, offset: usize, len: usize, pin: Arc<Pin>) -> View {
        debug_assert!(offset.checked_add(len).is_some_and(|end| end <= map.len()));
        View {
            map,
            offset,
            len,
            _pin: pin,
        }
    }
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the range lies inside the mapping (checked by the client before `View::new`),
        // and `self.map` keeps it mapped. The object is sealed: no process writes it while a pin
        // holds it (the daemon frees, and so reuses, its range only after the last release).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.offset), self.len) }
    }
}
