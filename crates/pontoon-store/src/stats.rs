//! The store's counters, as `stats` reports them.

use serde::Serialize;

/// A store's counters at one moment.
///
/// ```
/// let store = pontoon_store::Store::new(pontoon_store::StoreOptions::default());
/// store.put_raw(pontoon_wire::Message::new(pontoon_wire::Header::empty(), vec![bytes::Bytes::from(vec![1u8; 100])]))?;
/// let stats = store.stats();
/// assert_eq!((stats.objects, stats.sealed_bytes), (1, 100));
/// # Ok::<(), pontoon_store::ObjectError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StoreStats {
    /// Sealed objects in the store.
    pub objects: u64,
    /// Bytes of sealed objects (their frames).
    pub sealed_bytes: u64,
    /// Objects being created (not sealed yet).
    pub creating: u64,
    /// Bytes of store memory in use: sealed, being created, and deleted but still pinned.
    pub used_bytes: u64,
    /// Sealed objects at least one client has pinned.
    pub pinned_objects: u64,
    /// Bytes of those objects.
    pub pinned_bytes: u64,
    /// The store's memory in bytes.
    pub capacity: u64,
    /// Above this many bytes in use, unpinned objects spill (with a spill directory).
    pub high_water_mark: u64,
    /// Objects on disk: spilled, or created there (counted in `objects` too).
    pub spilled_objects: u64,
    /// Spill files on disk.
    pub spill_files: u64,
    /// Connected clients (0 for an embedded store).
    pub clients: u64,
    /// Bytes of the objects on disk.
    pub spilled_bytes: u64,
}

impl StoreStats {
    /// The counters in the order the protocol sends them.
    pub(crate) fn fields(&self) -> [u64; 12] {
        [
            self.objects,
            self.sealed_bytes,
            self.creating,
            self.used_bytes,
            self.pinned_objects,
            self.pinned_bytes,
            self.capacity,
            self.high_water_mark,
            self.spilled_objects,
            self.spill_files,
            self.clients,
            self.spilled_bytes,
        ]
    }

    /// The counters from the protocol's list; counters a newer daemon adds are ignored, and
    /// counters an older one lacks are 0.
    pub(crate) fn from_fields(values: &[u64]) -> StoreStats {
        let at = |i: usize| values.get(i).copied().unwrap_or(0);
        StoreStats {
            objects: at(0),
            sealed_bytes: at(1),
            creating: at(2),
            used_bytes: at(3),
            pinned_objects: at(4),
            pinned_bytes: at(5),
            capacity: at(6),
            high_water_mark: at(7),
            spilled_objects: at(8),
            spill_files: at(9),
            clients: at(10),
            spilled_bytes: at(11),
        }
    }
}
