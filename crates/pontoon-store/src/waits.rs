//! Who waits for which objects in the daemon: an index from an object id to the waits that
//! name it, so that a seal wakes exactly the waits it completes. A seal costs the number of
//! waits on that one id, not the number of ids every client waits for (1,024 waits of 65,536
//! ids each would otherwise be rescanned at every seal).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::ObjectId;

/// One registered wait: the ids it still waits for, and how to tell it they are all sealed.
struct Entry {
    ids: Vec<ObjectId>,
    remaining: usize,
    done: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Index {
    next_key: u64,
    by_id: HashMap<ObjectId, HashSet<u64>>,
    waits: HashMap<u64, Entry>,
}

/// The daemon's waits; see the module docs.
#[derive(Default)]
pub(crate) struct Waits {
    index: Mutex<Index>,
}

/// A registered wait. Dropping it (done, timed out or cancelled) removes it from the index.
pub(crate) struct Registration<'a> {
    waits: &'a Waits,
    key: u64,
    done: Option<oneshot::Receiver<()>>,
}

impl Waits {
    fn lock(&self) -> MutexGuard<'_, Index> {
        // Every change to the index completes before anything can panic.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a wait for the ids `unsealed` returns. `unsealed` runs under this index's
    /// lock, so a seal that it does not see is one whose [`sealed`](Waits::sealed) call comes
    /// after the registration and finds it. `None` when nothing is left to wait for.
    pub(crate) fn register(
        &self,
        unsealed: impl FnOnce() -> Vec<ObjectId>,
    ) -> Option<Registration<'_>> {
        let mut index = self.lock();
        let mut ids = unsealed();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return None;
        }
        let key = index.next_key;
        index.next_key += 1;
        for id in &ids {
            index.by_id.entry(*id).or_default().insert(key);
        }
        let (tx, rx) = oneshot::channel();
        let remaining = ids.len();
        index.waits.insert(
            key,
            Entry {
                ids,
                remaining,
                done: Some(tx),
            },
        );
        Some(Registration {
            waits: self,
            key,
            done: Some(rx),
        })
    }

    /// `id` was sealed: every wait on it counts one id fewer, and those left with none are
    /// told.
    pub(crate) fn sealed(&self, id: &ObjectId) {
        let mut index = self.lock();
        let Some(keys) = index.by_id.remove(id) else {
            return;
        };
        for key in keys {
            if let Some(entry) = index.waits.get_mut(&key) {
                entry.remaining -= 1;
                if entry.remaining == 0
                    && let Some(done) = entry.done.take()
                {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Waits registered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().waits.len()
    }
}

impl Registration<'_> {
    /// Resolves when every id of the wait is sealed.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a wait dropped before the end is removed with its registration.
    pub(crate) async fn sealed(&mut self) {
        if let Some(done) = self.done.as_mut() {
            let _ = done.await;
            self.done = None;
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut index = self.waits.lock();
        let Some(entry) = index.waits.remove(&self.key) else {
            return;
        };
        for id in entry.ids {
            if let Some(keys) = index.by_id.get_mut(&id) {
                keys.remove(&self.key);
                if keys.is_empty() {
                    index.by_id.remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreId;

    fn id(n: u64) -> ObjectId {
        ObjectId::new(StoreId(1), n)
    }

    #[tokio::test]
    async fn a_wait_ends_at_the_seal_of_its_last_id_and_leaves_nothing_behind() {
        let waits = Waits::default();
        let mut both = waits.register(|| vec![id(1), id(2), id(2)]).unwrap();
        let mut one = waits.register(|| vec![id(2)]).unwrap();
        waits.sealed(&id(2));
        one.sealed().await;
        waits.sealed(&id(3));
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(10), both.sealed())
                .await
                .is_err(),
            "id 1 is not sealed yet"
        );
        waits.sealed(&id(1));
        both.sealed().await;
        drop((one, both));
        assert_eq!(waits.len(), 0);
        assert!(waits.lock().by_id.is_empty());
    }

    #[test]
    fn nothing_unsealed_registers_nothing_and_a_dropped_wait_is_removed() {
        let waits = Waits::default();
        assert!(waits.register(Vec::new).is_none());
        let pending = waits.register(|| vec![id(7)]).unwrap();
        assert_eq!(waits.len(), 1);
        drop(pending);
        assert_eq!(waits.len(), 0);
        assert!(waits.lock().by_id.is_empty());
        // A seal after the wait went away finds nobody.
        waits.sealed(&id(7));
    }

    #[test]
    fn a_seal_counts_only_against_the_waits_on_its_id() {
        let waits = Waits::default();
        let many: Vec<_> = (0..1000)
            .map(|n| {
                waits
                    .register(|| (n * 100..n * 100 + 100).map(id).collect())
                    .unwrap()
            })
            .collect();
        waits.sealed(&id(5));
        let index = waits.lock();
        let touched = index
            .waits
            .values()
            .filter(|entry| entry.remaining < entry.ids.len())
            .count();
        assert_eq!(touched, 1);
        drop(index);
        drop(many);
    }
}
