//! Where a remote-spill test spills (a `file://` directory or a prefix on the test's SeaweedFS)
//! and what is under it, for the embedded and the daemon tests; each includes it by path next
//! to the `seaweed` support module.

use std::path::Path;

use pontoon_persist::Remote;
use pontoon_store::SpillRemote;

use crate::seaweed::Seaweed;

/// A remote's URL and options.
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) options: Vec<(String, String)>,
}

impl Target {
    pub(crate) fn file(dir: &Path) -> Target {
        Target {
            url: format!("file://{}", dir.display()),
            options: Vec::new(),
        }
    }

    pub(crate) fn seaweed(server: &Seaweed, prefix: &str) -> Target {
        Target {
            url: server.url(prefix),
            options: server.good_options(),
        }
    }

    pub(crate) fn spill_remote(&self) -> SpillRemote {
        let mut remote = SpillRemote::new(&self.url);
        for (k, v) in &self.options {
            remote = remote.option(k, v);
        }
        remote
    }

    /// The names under the prefix, straight from the remote.
    pub(crate) fn listed(&self) -> Vec<(String, u64)> {
        let prefix = self.url.rsplit('/').next().unwrap_or_default().to_owned();
        // On a thread of its own: the remote's runtime cannot be entered from a tokio worker.
        let listed = std::thread::scope(|s| {
            s.spawn(|| {
                Remote::open(&self.url, self.options.clone())
                    .unwrap()
                    .list()
                    .unwrap()
            })
            .join()
            .unwrap()
        });
        listed
            .into_iter()
            // SeaweedFS lists a directory emptied by deletes as a zero-length object of the
            // prefix's own name: not something the store put.
            .filter(|(name, size)| !(*name == prefix && *size == 0))
            .collect()
    }
}
