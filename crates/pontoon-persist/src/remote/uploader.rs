//! The background uploader: one thread that owns the [`Remote`] (and its runtime) and uploads a
//! state's directory whenever asked, so that no append or snapshot waits for the network
//! unless remote durability asks it to; what its rounds did is kept in a [`RemoteStatus`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use super::{Closer, Holder, Published, Remote, RemoteError, RemoteManifest, Tail, TailState};

/// Where an upload's outcome goes: nowhere (a background round), or back to a waiting caller.
type Reply = Option<mpsc::Sender<Result<RemoteManifest, RemoteError>>>;

/// One request for a round: the tail it must at least upload, who waits for it, and when it
/// is answered.
struct Request {
    tail: Option<Tail>,
    reply: Reply,
    answer: Answer,
}

/// When a waiting caller gets a published round's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Once the manifest is published, before the round deletes what it made unneeded: an
    /// acknowledgement waits for no more than it needs.
    Published,
    /// Once the round has deleted what it made unneeded too (a failed delete is the answer).
    Finished,
}

/// What a state's (or a log's) upload rounds have done since it was opened, from
/// [`Durable::remote_status`](crate::Durable::remote_status) or
/// [`Log::remote_status`](crate::Log::remote_status). A background round that fails
/// is retried whole by the next one; this is where its failure shows (and in a
/// `tracing` warning).
///
/// ```
/// let status = pontoon_persist::RemoteStatus::default();
/// assert_eq!((status.rounds, status.failed_rounds), (0, 0));
/// assert!(status.last_error.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteStatus {
    /// Rounds finished, published or failed.
    pub rounds: u64,
    /// Rounds that failed (background ones and those a caller waited for).
    pub failed_rounds: u64,
    /// The generation of the last manifest this state published (0: none yet).
    pub generation: u64,
    /// The last round's error with its causes, if the last round failed, or if deleting what
    /// it made unneeded did (`None` once a round succeeds again).
    pub last_error: Option<String>,
}

/// A running uploader; dropping it lets the round under way finish for up to the remote's
/// close timeout (then abandons it), and stops the thread.
pub(crate) struct Uploader {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Mutex<RemoteStatus>>,
    closer: Closer,
}

impl Uploader {
    /// Starts the thread for the state (or bare log, per `holder`) in `dir`, whose writer
    /// last published `generation`.
    pub(crate) fn start(
        remote: Remote,
        dir: PathBuf,
        holder: Holder,
        generation: u64,
    ) -> std::io::Result<Uploader> {
        let (requests, received) = mpsc::channel::<Request>();
        let status = Arc::new(Mutex::new(RemoteStatus {
            generation,
            ..RemoteStatus::default()
        }));
        let closer = remote.closer();
        let shared = Arc::clone(&status);
        let thread = std::thread::Builder::new()
            .name("pontoon-persist-upload".into())
            .spawn(move || {
                let mut generation = generation;
                let mut tail = TailState::new();
                let mut round = |background: bool, tail: &mut TailState| {
                    let outcome = remote.upload_dir(&dir, holder, &mut generation, tail);
                    let mut status = shared.lock().unwrap_or_else(|p| p.into_inner());
                    status.rounds += 1;
                    status.generation = generation;
                    match &outcome {
                        Ok(_) => status.last_error = None,
                        Err(error) => {
                            let text = crate::error::describe(error);
                            status.failed_rounds += 1;
                            if background {
                                tracing::warn!(
                                    remote = remote.url(),
                                    dir = %dir.display(),
                                    error = %text,
                                    "a background upload round failed; the next round retries it"
                                );
                            }
                            status.last_error = Some(text);
                        }
                    }
                    outcome
                };
                while let Ok(first) = received.recv() {
                    // Background requests that arrived during a round are all served by the
                    // next one; each waiting caller gets a round (and its error) of its own.
                    let mut pending: Vec<Request> = vec![first];
                    pending.extend(received.try_iter());
                    let mut waiting = Vec::new();
                    for request in pending {
                        if let Some(asked) = request.tail {
                            tail.ask(asked);
                        }
                        waiting.extend(request.reply.map(|reply| (reply, request.answer)));
                    }
                    let clean_up = |published: &Published| {
                        let deleted = remote.delete_all(&published.unnamed);
                        if let Err(error) = &deleted {
                            let text = crate::error::describe(error);
                            tracing::warn!(
                                remote = remote.url(),
                                dir = %dir.display(),
                                error = %text,
                                "deleting what an upload round made unneeded failed; the next round retries it"
                            );
                            let mut status = shared.lock().unwrap_or_else(|p| p.into_inner());
                            status.last_error = Some(text);
                        }
                        deleted
                    };
                    if waiting.is_empty()
                        && let Ok(published) = round(true, &mut tail)
                    {
                        let _ = clean_up(&published);
                    }
                    for (reply, answer) in waiting {
                        let published = match round(false, &mut tail) {
                            Ok(published) => published,
                            Err(error) => {
                                let _ = reply.send(Err(error));
                                continue;
                            }
                        };
                        if answer == Answer::Published {
                            let _ = reply.send(Ok(published.manifest.clone()));
                            let _ = clean_up(&published);
                        } else {
                            let finished = clean_up(&published).map(|()| published.manifest);
                            let _ = reply.send(finished);
                        }
                    }
                }
            })?;
        Ok(Uploader {
            requests: Some(requests),
            thread: Some(thread),
            status,
            closer,
        })
    }

    /// Asks for an upload round and returns at once.
    pub(crate) fn request(&self) {
        if let Some(requests) = &self.requests {
            let _ = requests.send(Request {
                tail: None,
                reply: None,
                answer: Answer::Finished,
            });
        }
    }

    /// Asks for an upload round that starts after this call, uploads at least `tail` of the
    /// active segment, and waits for its outcome, as far as `answer` says.
    pub(crate) fn upload_now(
        &self,
        tail: Option<Tail>,
        answer: Answer,
    ) -> Result<RemoteManifest, RemoteError> {
        let (reply, outcome) = mpsc::channel();
        let stopped = || RemoteError::Manifest {
            object: String::new(),
            reason: "the uploader thread has stopped".into(),
        };
        self.requests
            .as_ref()
            .ok_or_else(stopped)?
            .send(Request {
                tail,
                reply: Some(reply),
                answer,
            })
            .map_err(|_| stopped())?;
        outcome.recv().map_err(|_| stopped())?
    }

    /// What the rounds have done so far.
    pub(crate) fn status(&self) -> RemoteStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        drop(self.requests.take());
        // Rounds still queued or under way get the close timeout, then their requests fail.
        self.closer.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
