//! The background uploader: one thread that owns the [`Remote`] (and its runtime) and uploads a
//! state's directory whenever asked, so that no append or snapshot waits for the network.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::{Remote, RemoteError, RemoteManifest};

/// Where an upload's outcome goes: nowhere (a background round), or back to a waiting caller.
type Reply = Option<mpsc::Sender<Result<RemoteManifest, RemoteError>>>;

/// A running uploader; dropping it lets the round under way finish, then stops the thread.
pub(crate) struct Uploader {
    requests: Option<mpsc::Sender<Reply>>,
    thread: Option<JoinHandle<()>>,
}

impl Uploader {
    /// Starts the thread for the state in `dir`, whose writer last published `generation`.
    pub(crate) fn start(
        remote: Remote,
        dir: PathBuf,
        generation: u64,
    ) -> std::io::Result<Uploader> {
        let (requests, received) = mpsc::channel::<Reply>();
        let thread = std::thread::Builder::new()
            .name("pontoon-persist-upload".into())
            .spawn(move || {
                let mut generation = generation;
                while let Ok(first) = received.recv() {
                    // Background requests that arrived during a round are all served by the
                    // next one; each waiting caller gets a round (and its error) of its own.
                    let mut pending: Vec<Reply> = vec![first];
                    pending.extend(received.try_iter());
                    let waiting: Vec<_> = pending.into_iter().flatten().collect();
                    if waiting.is_empty() {
                        // A background round's failure is retried whole by the next round.
                        let _ = remote.upload_dir(&dir, &mut generation);
                    }
                    for reply in waiting {
                        let _ = reply.send(remote.upload_dir(&dir, &mut generation));
                    }
                }
            })?;
        Ok(Uploader {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Asks for an upload round and returns at once.
    pub(crate) fn request(&self) {
        if let Some(requests) = &self.requests {
            let _ = requests.send(None);
        }
    }

    /// Asks for an upload round that starts after this call and waits for its outcome.
    pub(crate) fn upload_now(&self) -> Result<RemoteManifest, RemoteError> {
        let (reply, outcome) = mpsc::channel();
        let stopped = || RemoteError::Manifest {
            object: String::new(),
            reason: "the uploader thread has stopped".into(),
        };
        self.requests
            .as_ref()
            .ok_or_else(stopped)?
            .send(Some(reply))
            .map_err(|_| stopped())?;
        outcome.recv().map_err(|_| stopped())?
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
