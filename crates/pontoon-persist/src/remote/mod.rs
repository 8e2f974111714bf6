//! The remote (feature `remote`): a state's (or a bare log's) sealed segments, snapshots and (for remote
//! durability) the active segment's tail uploaded to S3-compatible object storage (or a
//! `file://` directory standing in for it) through `object_store`, each upload published by a
//! manifest written last with a conditional put, and an empty directory restored from the
//! newest manifest.

pub(crate) mod uploader;

use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart};

use crate::RemoteManifest;
use crate::manifest::{
    MAX_MANIFEST_LEN, manifest_name, parse_manifest_name, parse_snapshot_name, parse_tail_name,
    tail_name,
};

use crate::error::IoError;
use crate::files::{io, sync_dir};
use crate::recovery::parse_segment_name;

/// Files up to this size go up in one put; larger ones as multipart uploads of parts this big.
const PART_LEN: usize = 8 << 20;

/// A tail of more parts than this is uploaded anew as one part, so that a manifest stays small
/// however many acknowledged rounds a segment sees.
const MAX_TAIL_PARTS: usize = 32;

/// How many listings [`Remote::newest_manifest`] takes at most when a writer publishing
/// meanwhile made one inconsistent (its newest manifest gone before it is read, or no manifest
/// listed beside the objects of a state).
const MANIFEST_READ_ATTEMPTS: u32 = 8;

/// The file in a state's directory that holds the generation of the last manifest this
/// directory's writer put on the remote (the next one must be this plus one).
pub(crate) const GENERATION_FILE: &str = "REMOTE-GENERATION";

/// What went wrong with a [`Remote`].
///
/// ```
/// let err = pontoon_persist::RemoteError::OtherWriter { generation: 4 };
/// assert!(err.to_string().contains("another writer"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The URL is not one a remote can be made of (`s3://bucket/prefix`, `file:///dir`), or
    /// an option is not one `object_store` knows.
    #[error("cannot use `{url}` as a remote")]
    Url {
        /// The URL given.
        url: String,
        /// Why not.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The remote refused the request's credentials (HTTP 401 or 403).
    #[error("the remote refused the credentials while {what} `{object}`")]
    Refused {
        /// What was being done.
        what: &'static str,
        /// The object (or prefix).
        object: String,
        /// What `object_store` said.
        #[source]
        source: object_store::Error,
    },
    /// Another request to the remote failed (unreachable, full, an object missing).
    #[error("the remote failed while {what} `{object}`")]
    Store {
        /// What was being done.
        what: &'static str,
        /// The object (or prefix).
        object: String,
        /// What `object_store` said.
        #[source]
        source: object_store::Error,
    },
    /// The manifest this writer was about to publish exists already: another writer owns the
    /// prefix (or took it over since this directory last uploaded). Nothing of this upload
    /// is named by any manifest.
    #[error("another writer owns the remote: its manifest generation {generation} exists already")]
    OtherWriter {
        /// The generation this writer tried to create.
        generation: u64,
    },
    /// A manifest read back is malformed or names objects the remote does not hold as named.
    #[error("the remote's manifest `{object}` is unusable: {reason}")]
    Manifest {
        /// The manifest object.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The state was closed (dropped) while a request was in flight, and the request did not
    /// finish within [`RemoteTimeouts::close`]: it was abandoned. Nothing it uploaded is named
    /// by a manifest.
    #[error("the remote request was abandoned: the state closed and its close timeout passed")]
    Closed,
    /// A bare [`Log`](crate::Log) was opened on a prefix whose manifest names a snapshot:
    /// the prefix holds a [`Durable`](crate::Durable)'s state, whose records before the
    /// snapshot are gone. Restoring it as a log would give a log without its first records,
    /// and uploading to it would delete the snapshot; nothing is restored or uploaded.
    #[error(
        "the remote's manifest `{object}` names a snapshot: the prefix holds a Durable state, not a bare log"
    )]
    NotALog {
        /// The manifest object.
        object: String,
    },
    /// A local file could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl RemoteError {
    /// Whether the remote said the object is not there.
    fn is_not_found(&self) -> bool {
        matches!(
            self,
            RemoteError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }
}

/// When an [`apply`](crate::Durable::apply) of a [`Durable`](crate::Durable) state with a
/// remote returns: before or after its event is on the remote. Set in
/// [`DurableOptions::remote_durability`](crate::DurableOptions::remote_durability). The same
/// holds for [`Log::append`](crate::Log::append) of a log opened with
/// [`Log::open_remote`](crate::Log::open_remote) (read *record* for *event*).
///
/// | policy | `apply` returns | a lost machine loses |
/// | --- | --- | --- |
/// | `Background` | per the local [`Durability`](crate::Durability), never waiting for the network | what the last finished upload round had not published: at least the active segment's records |
/// | `Acknowledged` | once the event is durable locally **and** published on the remote | nothing `apply` acknowledged |
///
/// ```
/// let mut options = pontoon_persist::DurableOptions::default();
/// assert_eq!(options.remote_durability, pontoon_persist::RemoteDurability::Background);
/// options.remote_durability = pontoon_persist::RemoteDurability::Acknowledged;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteDurability {
    /// Uploads run in the background (after a segment is sealed, after a snapshot, and when
    /// asked with [`Durable::sync_remote`](crate::Durable::sync_remote) or
    /// [`Durable::wait_remote`](crate::Durable::wait_remote)); no `apply` waits for one.
    #[default]
    Background,
    /// `apply` makes its event durable locally (an `fdatasync` unless the local policy did it
    /// already), then uploads what the remote lacks of the active segment as a tail part and
    /// publishes a new manifest naming it, and returns only then. One round per `apply`;
    /// [`submit`](crate::Durable::submit) many events, then one
    /// [`wait_remote`](crate::Durable::wait_remote), to share a round among them.
    Acknowledged,
}

/// How long a [`Remote`] waits for the network: per request, per connection, for retries of
/// one request, and for the request in flight when its state is closed. Given to
/// [`Remote::open_with`]; [`Remote::open`] takes the defaults.
///
/// ```
/// use std::time::Duration;
/// let mut timeouts = pontoon_persist::RemoteTimeouts::default();
/// assert_eq!(timeouts.close, Duration::from_secs(10));
/// timeouts.retry = Duration::from_secs(5);
/// let dir = std::env::temp_dir();
/// let url = format!("file://{}", dir.display());
/// let remote = pontoon_persist::Remote::open_with(&url, Vec::<(String, String)>::new(), timeouts)?;
/// # drop(remote);
/// # Ok::<(), pontoon_persist::RemoteError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteTimeouts {
    /// The longest one HTTP request may take (S3; 30 s).
    pub request: Duration,
    /// The longest a connection may take to open (S3; 5 s).
    pub connect: Duration,
    /// After this long since a request first failed, it is not retried again (S3; 15 s;
    /// object_store's own default is 3 minutes).
    pub retry: Duration,
    /// At most this many retries of one request (S3; 3).
    pub max_retries: usize,
    /// Dropping the state waits at most this long for the request in flight, then abandons
    /// it ([`RemoteError::Closed`]) and every later one, so that a drop never hangs on an
    /// unreachable remote (10 s).
    pub close: Duration,
}

impl Default for RemoteTimeouts {
    fn default() -> RemoteTimeouts {
        RemoteTimeouts {
            request: Duration::from_secs(30),
            connect: Duration::from_secs(5),
            retry: Duration::from_secs(15),
            max_retries: 3,
            close: Duration::from_secs(10),
        }
    }
}

/// Where the log's durable records end: the active segment's first sequence number, its
/// length (every byte of it durable) and the last record in it (below `first_seq` if none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tail {
    pub(crate) first_seq: u64,
    pub(crate) len: u64,
    pub(crate) last_seq: u64,
}

/// What one writer knows of the tail it has on the remote, kept across its rounds.
#[derive(Debug)]
pub(crate) struct TailState {
    /// Whether `published` was read from this writer's last manifest yet.
    known: bool,
    /// The furthest tail asked for: every round uploads at least this much of it while it is
    /// the active segment (the remote never goes back on what it acknowledged).
    target: Option<Tail>,
    /// The parts the last published manifest named: name, offset, length.
    published: Vec<(String, u64, u64)>,
    /// A token of this writer's own in its part names.
    writer: u64,
}

impl TailState {
    pub(crate) fn new() -> TailState {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.write_u32(std::process::id());
        TailState {
            known: false,
            target: None,
            published: Vec::new(),
            writer: hasher.finish(),
        }
    }

    /// Asks for at least `tail` from now on.
    pub(crate) fn ask(&mut self, tail: Tail) {
        if self.target.is_none_or(|t| t.last_seq < tail.last_seq) {
            self.target = Some(tail);
        }
    }
}

/// A remote for a [`Durable`](crate::Durable) state or a bare [`Log`](crate::Log): a bucket and prefix on S3-compatible object
/// storage, or a local directory standing in for one. It owns a small tokio runtime that
/// drives `object_store`, so the state and its log stay plain threads.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("pontoon-doc-remote-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let url = format!("file://{}", dir.display());
/// let remote = pontoon_persist::Remote::open(&url, Vec::<(String, String)>::new())?;
/// assert!(remote.newest_manifest()?.is_none()); // nothing uploaded yet
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), pontoon_persist::RemoteError>(())
/// ```
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    runtime: tokio::runtime::Runtime,
    /// When requests in flight are abandoned: set once the state closes.
    closing: Arc<tokio::sync::watch::Sender<Option<Instant>>>,
    close_after: Duration,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Maps `object_store`'s error to a [`RemoteError`], telling refused credentials apart.
fn store_error(
    what: &'static str,
    object: &ObjectPath,
) -> impl FnOnce(object_store::Error) -> RemoteError {
    let object = object.to_string();
    move |source| match source {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => RemoteError::Refused {
            what,
            object,
            source,
        },
        // Listing wraps the HTTP status in `Error::Generic` around object_store's
        // `RetryError`, whose module is private in object_store 0.12 (it cannot be named to
        // downcast to): its message is all there is to tell a refusal by.
        source if refused_status(&source) => RemoteError::Refused {
            what,
            object,
            source,
        },
        source => RemoteError::Store {
            what,
            object,
            source,
        },
    }
}

/// Whether an error's chain holds an HTTP 401 or 403 response.
fn refused_status(error: &object_store::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        if text.starts_with("Server returned non-2xx status code: 401")
            || text.starts_with("Server returned non-2xx status code: 403")
        {
            return true;
        }
        next = error.source();
    }
    false
}

impl Remote {
    /// Makes a remote of `url`: `s3://bucket/prefix` (credentials, region and endpoint from
    /// `options`, with `object_store`'s `AmazonS3ConfigKey` names such as `aws_endpoint`,
    /// `aws_access_key_id`, `aws_allow_http`, then from the usual `AWS_*` environment
    /// variables), or `file:///dir` (which must exist). Makes no request yet. Waits for the
    /// network as [`RemoteTimeouts::default`] says; [`open_with`](Remote::open_with) takes
    /// others.
    ///
    /// ```
    /// let err = pontoon_persist::Remote::open("nope://x", Vec::<(String, String)>::new()).unwrap_err();
    /// assert!(matches!(err, pontoon_persist::RemoteError::Url { .. }));
    /// ```
    pub fn open<K, V>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Remote, RemoteError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        Remote::open_with(url, options, RemoteTimeouts::default())
    }

    /// [`open`](Remote::open) with the given timeouts. For S3 they become object_store's
    /// request, connect and retry settings (an option given in `options`, such as `timeout`,
    /// wins); [`RemoteTimeouts::close`] holds for every remote.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut timeouts = pontoon_persist::RemoteTimeouts::default();
    /// timeouts.retry = Duration::from_secs(2);
    /// let remote = pontoon_persist::Remote::open_with(
    ///     "s3://bucket/prefix",
    ///     [("aws_endpoint", "http://127.0.0.1:9"), ("aws_allow_http", "true"), ("aws_region", "us-east-1")],
    ///     timeouts,
    /// )?;
    /// assert_eq!(remote.url(), "s3://bucket/prefix");
    /// # Ok::<(), pontoon_persist::RemoteError>(())
    /// ```
    pub fn open_with<K, V>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
        timeouts: RemoteTimeouts,
    ) -> Result<Remote, RemoteError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let bad = |source: Box<dyn std::error::Error + Send + Sync>| RemoteError::Url {
            url: url.to_owned(),
            source,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.into()))?;
        let (store, prefix): (Arc<dyn ObjectStore>, ObjectPath) = if parsed.scheme() == "s3" {
            // The environment first, then the options given, which win.
            use object_store::ClientConfigKey;
            use object_store::aws::AmazonS3ConfigKey;
            let millis = |d: Duration| format!("{}ms", d.as_millis());
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .with_retry(object_store::RetryConfig {
                    backoff: object_store::BackoffConfig::default(),
                    max_retries: timeouts.max_retries,
                    retry_timeout: timeouts.retry,
                })
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                    millis(timeouts.request),
                )
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    millis(timeouts.connect),
                );
            for (key, value) in options {
                let key = key
                    .as_ref()
                    .parse()
                    .map_err(|e: object_store::Error| bad(e.into()))?;
                builder = builder.with_config(key, value);
            }
            let store = builder.build().map_err(|e| bad(e.into()))?;
            let prefix = ObjectPath::from_url_path(parsed.path()).map_err(|e| bad(e.into()))?;
            (Arc::new(store), prefix)
        } else {
            let (store, prefix) =
                object_store::parse_url_opts(&parsed, options).map_err(|e| bad(e.into()))?;
            (Arc::from(store), prefix)
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| bad(e.into()))?;
        Ok(Remote {
            url: url.to_owned(),
            store,
            prefix,
            runtime,
            closing: Arc::new(tokio::sync::watch::channel(None).0),
            close_after: timeouts.close,
        })
    }

    /// What closes this remote: [`Closer::close`] gives the request in flight, and every later
    /// one, until [`RemoteTimeouts::close`] from then.
    pub(crate) fn closer(&self) -> Closer {
        Closer {
            closing: Arc::clone(&self.closing),
            after: self.close_after,
        }
    }

    /// Runs one request on the remote's runtime, abandoned ([`RemoteError::Closed`]) once the
    /// close deadline passes.
    fn run<T>(&self, work: impl Future<Output = Result<T, RemoteError>>) -> Result<T, RemoteError> {
        let mut closing = self.closing.subscribe();
        self.runtime.block_on(async move {
            let deadline = async move {
                loop {
                    let at = *closing.borrow_and_update();
                    if let Some(at) = at {
                        tokio::time::sleep_until(at.into()).await;
                        return;
                    }
                    if closing.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            let mut work = std::pin::pin!(work);
            let mut deadline = std::pin::pin!(deadline);
            std::future::poll_fn(|cx| {
                if let Poll::Ready(out) = work.as_mut().poll(cx) {
                    return Poll::Ready(out);
                }
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(RemoteError::Closed)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        })
    }

    /// The URL the remote was made of.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(remote: &pontoon_persist::Remote) { println!("{}", remote.url()); }
    /// ```
    pub fn url(&self) -> &str {
        &self.url
    }

    fn object(&self, name: &str) -> ObjectPath {
        self.prefix.child(name)
    }

    /// The names and sizes of every object under the prefix (one level; a state's objects
    /// are all there).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(remote: &pontoon_persist::Remote) -> Result<(), pontoon_persist::RemoteError> {
    /// for (name, size) in remote.list()? { println!("{name} {size}"); }
    /// # Ok(()) }
    /// ```
    pub fn list(&self) -> Result<Vec<(String, u64)>, RemoteError> {
        let listed = self.run(async {
            self.store
                .list_with_delimiter(Some(&self.prefix))
                .await
                .map_err(store_error("listing", &self.prefix))
        })?;
        let mut names: Vec<(String, u64)> = listed
            .objects
            .into_iter()
            .filter_map(|meta| Some((meta.location.filename()?.to_owned(), meta.size)))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The newest manifest on the remote (highest generation), or `None` if nothing was ever
    /// uploaded under the prefix.
    ///
    /// A writer may publish while this reads. It deletes the older manifests once a newer one
    /// is published, so the newest one listed can be gone when it is read; and a listing is
    /// not a snapshot of the prefix (a directory walk, or a store's paged listing), so one taken
    /// while a manifest is replaced can hold neither the old nor the new one. Either way the
    /// prefix is listed again, up to 8 listings in all: a listed manifest still missing then is
    /// an error, and a prefix still holding segments, snapshots or tail parts but no manifest
    /// (a first upload under way, or one that never finished) gives `None`.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(remote: &pontoon_persist::Remote) -> Result<(), pontoon_persist::RemoteError> {
    /// if let Some(manifest) = remote.newest_manifest()? { println!("generation {}", manifest.generation); }
    /// # Ok(()) }
    /// ```
    pub fn newest_manifest(&self) -> Result<Option<RemoteManifest>, RemoteError> {
        for attempt in 1.. {
            let last = attempt >= MANIFEST_READ_ATTEMPTS;
            let listed = self.list()?;
            let newest = listed
                .iter()
                .filter_map(|(name, _)| parse_manifest_name(name))
                .max();
            let Some(generation) = newest else {
                let holds_state = listed.iter().any(|(name, _)| is_state_object(name));
                if holds_state && !last {
                    continue;
                }
                return Ok(None);
            };
            match self.manifest(generation) {
                Err(error) if error.is_not_found() && !last => continue,
                read => return read.map(Some),
            }
        }
        unreachable!("the attempts are counted without end")
    }

    /// The manifest of `generation`, read and checked.
    fn manifest(&self, generation: u64) -> Result<RemoteManifest, RemoteError> {
        let name = manifest_name(generation);
        let object = self.object(&name);
        let bytes = self.get_bounded(&object, MAX_MANIFEST_LEN)?;
        let manifest = RemoteManifest::decode(&bytes).map_err(|reason| RemoteError::Manifest {
            object: object.to_string(),
            reason: reason.to_owned(),
        })?;
        if manifest.generation != generation {
            return Err(RemoteError::Manifest {
                object: object.to_string(),
                reason: format!("it says generation {}", manifest.generation),
            });
        }
        Ok(manifest)
    }

    /// Reads a whole object whose size is at most `limit` (checked before its body is read).
    fn get_bounded(&self, object: &ObjectPath, limit: u64) -> Result<bytes::Bytes, RemoteError> {
        self.run(async {
            let got = self
                .store
                .get(object)
                .await
                .map_err(store_error("reading", object))?;
            if got.meta.size > limit {
                return Err(RemoteError::Manifest {
                    object: object.to_string(),
                    reason: format!(
                        "it is {} bytes, more than the {limit} allowed",
                        got.meta.size
                    ),
                });
            }
            got.bytes().await.map_err(store_error("reading", object))
        })
    }

    /// Uploads one local file as `name` (multipart if it is larger than one part): the bytes
    /// from `start`, `len` of them (`None`: to its end). `false` if the file is gone.
    fn put_file(
        &self,
        path: &Path,
        name: &str,
        start: u64,
        len: Option<u64>,
    ) -> Result<bool, RemoteError> {
        let object = self.object(name);
        let file = match File::open(path) {
            Ok(file) => file,
            // Pruned locally in the meantime: the caller starts the round again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io("opening for upload", path)(e).into()),
        };
        let len = match len {
            Some(len) => len,
            None => file
                .metadata()
                .map_err(io("reading the size of", path))?
                .len()
                .saturating_sub(start),
        };
        let mut file = file;
        file.seek(SeekFrom::Start(start))
            .map_err(io("seeking for upload", path))?;
        // Never more than asked for: a tail's segment grows while it is read.
        let mut file = file.take(len);
        self.run(async {
            if len <= PART_LEN as u64 {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)
                    .map_err(io("reading for upload", path))?;
                if bytes.len() as u64 != len {
                    return Err(io("reading for upload", path)(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file is shorter than its durable length",
                    ))
                    .into());
                }
                self.store
                    .put(&object, PutPayload::from(bytes))
                    .await
                    .map_err(store_error("uploading", &object))?;
            } else {
                let upload = self
                    .store
                    .put_multipart(&object)
                    .await
                    .map_err(store_error("starting the multipart upload of", &object))?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_LEN);
                let mut part = vec![0u8; PART_LEN];
                let mut sent = 0u64;
                loop {
                    let n = file
                        .read(&mut part)
                        .map_err(io("reading for upload", path))?;
                    if n == 0 {
                        break;
                    }
                    writer
                        .wait_for_capacity(2)
                        .await
                        .map_err(store_error("uploading", &object))?;
                    writer.write(&part[..n]);
                    sent += n as u64;
                }
                if sent != len {
                    // Never completed: no object of the wrong length appears.
                    writer
                        .abort()
                        .await
                        .map_err(store_error("aborting", &object))?;
                    return Err(io("reading for upload", path)(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file is shorter than its durable length",
                    ))
                    .into());
                }
                writer
                    .finish()
                    .await
                    .map_err(store_error("finishing the multipart upload of", &object))?;
            }
            Ok::<(), RemoteError>(())
        })?;
        Ok(true)
    }

    /// Puts `chunks`, in order, as the object `name` under the prefix (replacing one of that
    /// name): in one put up to one part's size, as a multipart upload of parts sliced from
    /// the chunks (no copy) above. For callers that keep objects of their own on the remote
    /// (the object store's spill).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("pontoon-doc-remote-put-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let remote = pontoon_persist::Remote::open(&format!("file://{}", dir.display()), Vec::<(String, String)>::new())?;
    /// remote.put("a", vec![bytes::Bytes::from_static(b"he"), bytes::Bytes::from_static(b"llo")])?;
    /// assert_eq!(&remote.get_range("a", 1..4)?[..], b"ell");
    /// remote.delete("a")?;
    /// assert!(remote.list()?.is_empty());
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), pontoon_persist::RemoteError>(())
    /// ```
    pub fn put(&self, name: &str, chunks: Vec<bytes::Bytes>) -> Result<(), RemoteError> {
        let object = self.object(name);
        let len: usize = chunks.iter().map(bytes::Bytes::len).sum();
        self.runtime.block_on(async {
            if len <= PART_LEN {
                self.store
                    .put(&object, PutPayload::from_iter(chunks))
                    .await
                    .map_err(store_error("uploading", &object))?;
                return Ok(());
            }
            let mut upload = self
                .store
                .put_multipart(&object)
                .await
                .map_err(store_error("starting the multipart upload of", &object))?;
            let mut part: Vec<bytes::Bytes> = Vec::new();
            let mut part_len = 0;
            let mut sent = Ok(());
            for mut chunk in chunks {
                while !chunk.is_empty() && sent.is_ok() {
                    let take = chunk.len().min(PART_LEN - part_len);
                    part.push(chunk.split_to(take));
                    part_len += take;
                    if part_len == PART_LEN {
                        sent = upload.put_part(PutPayload::from_iter(part.drain(..))).await;
                        part_len = 0;
                    }
                }
            }
            if sent.is_ok() && part_len > 0 {
                sent = upload.put_part(PutPayload::from_iter(part)).await;
            }
            let done = match sent {
                Ok(()) => upload.complete().await.map(drop),
                Err(e) => {
                    // Parts already sent cost storage until aborted.
                    let _ = upload.abort().await;
                    Err(e)
                }
            };
            done.map_err(store_error("uploading", &object))
        })
    }

    /// The bytes `range` of the object `name` under the prefix, in one range read (so a
    /// caller bounds what it reads by the range it asks for). Fewer bytes than asked for is
    /// an error, [`RemoteError::Manifest`] naming the object.
    ///
    /// See [`put`](Self::put) for an example.
    pub fn get_range(
        &self,
        name: &str,
        range: std::ops::Range<u64>,
    ) -> Result<bytes::Bytes, RemoteError> {
        let object = self.object(name);
        let want = range.end.saturating_sub(range.start);
        let bytes = self
            .runtime
            .block_on(self.store.get_range(&object, range))
            .map_err(store_error("reading", &object))?;
        if bytes.len() as u64 != want {
            return Err(RemoteError::Manifest {
                object: object.to_string(),
                reason: format!("a range read of {want} bytes returned {}", bytes.len()),
            });
        }
        Ok(bytes)
    }

    /// Deletes the object `name` under the prefix (one that does not exist is no error).
    ///
    /// See [`put`](Self::put) for an example.
    pub fn delete(&self, name: &str) -> Result<(), RemoteError> {
        let object = self.object(name);
        match self.runtime.block_on(self.store.delete(&object)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("deleting", &object)(e)),
        }
    }

    /// Uploads what `dir` holds that the remote lacks (the newest snapshot, the sealed
    /// segments it does not cover, and the active segment's tail up to the furthest one
    /// asked for in `tail`), then publishes it as manifest `generation + 1`, created only if
    /// it does not exist yet, then deletes the objects no manifest names any more. Returns the
    /// manifest published. `generation` is the one this writer published last (0: none), and
    /// is updated, as is `tail`. `holder` says whose directory it is: a bare log's uploads
    /// every sealed segment and no snapshot.
    pub(crate) fn upload_dir(
        &self,
        dir: &Path,
        holder: Holder,
        generation: &mut u64,
        tail: &mut TailState,
    ) -> Result<Published, RemoteError> {
        'round: loop {
            let wanted = self::wanted_files(dir, holder)?;
            let listed = self.list()?;
            // A writer that is behind the newest manifest lost the prefix to another one.
            let newest = listed
                .iter()
                .filter_map(|(name, _)| parse_manifest_name(name))
                .max()
                .unwrap_or(0);
            if newest != *generation {
                return Err(RemoteError::OtherWriter {
                    generation: *generation + 1,
                });
            }
            if !tail.known {
                // What this writer acknowledged before it was reopened stays on the remote.
                if *generation > 0 {
                    let last = self.manifest(*generation)?;
                    if holder == Holder::Log && last.snapshot.is_some() {
                        return Err(RemoteError::NotALog {
                            object: self.object(&manifest_name(*generation)).to_string(),
                        });
                    }
                    tail.published = published_parts(&last.tail);
                    if let Some((name, _)) = last.tail.first()
                        && let Some((first_seq, _)) = parse_tail_name(name)
                    {
                        tail.ask(Tail {
                            first_seq,
                            len: tail.published.iter().map(|(_, _, len)| len).sum(),
                            last_seq: last.next_seq - 1,
                        });
                    }
                }
                tail.known = true;
            }
            let remote: std::collections::HashMap<&str, u64> = listed
                .iter()
                .map(|(name, len)| (name.as_str(), *len))
                .collect();
            for (name, len) in wanted.snapshot.iter().chain(&wanted.segments) {
                if remote.get(name.as_str()) != Some(len)
                    && !self.put_file(&dir.join(name), name, 0, None)?
                {
                    continue 'round;
                }
            }
            let mut next_seq = wanted.next_seq;
            let mut parts = Vec::new();
            if let Some(target) = tail.target
                && target.first_seq == wanted.active_first
                && target.last_seq >= target.first_seq
                && target.last_seq > wanted.covered_up_to
            {
                let same_segment = |name: &str| {
                    parse_tail_name(name).is_some_and(|(first, _)| first == target.first_seq)
                };
                parts = tail.published.clone();
                parts.retain(|(name, _, _)| same_segment(name));
                let end = parts.last().map_or(0, |(_, offset, len)| offset + len);
                if target.len > end {
                    // The new bytes go up with the last parts no longer than them, so the
                    // parts' lengths fall geometrically: a few parts per segment, and each
                    // byte uploaded again only as often as the part it is in doubles.
                    let mut start = end;
                    while let Some((_, offset, len)) = parts.last()
                        && (*len <= target.len - start || parts.len() >= MAX_TAIL_PARTS)
                    {
                        start = *offset;
                        parts.pop();
                    }
                    let name = tail_name(target.first_seq, start, tail.writer);
                    let path = dir.join(crate::files::segment_name(target.first_seq));
                    if !self.put_file(&path, &name, start, Some(target.len - start))? {
                        continue 'round;
                    }
                    parts.push((name, start, target.len - start));
                }
                next_seq = next_seq.max(target.last_seq + 1);
            }
            let next = *generation + 1;
            let manifest = RemoteManifest {
                generation: next,
                snapshot: wanted.snapshot,
                segments: wanted.segments,
                tail: parts
                    .iter()
                    .map(|(name, _, len)| (name.clone(), *len))
                    .collect(),
                next_seq,
            };
            let object = self.object(&manifest_name(next));
            let put = self.run(async {
                self.store
                    .put_opts(
                        &object,
                        PutPayload::from(manifest.encode().into_bytes()),
                        PutOptions::from(PutMode::Create),
                    )
                    .await
                    .map_err(|e| match e {
                        object_store::Error::AlreadyExists { .. }
                        | object_store::Error::Precondition { .. } => {
                            RemoteError::OtherWriter { generation: next }
                        }
                        e => store_error("publishing", &object)(e),
                    })
            });
            put?;
            *generation = next;
            tail.published = parts;
            write_generation(dir, next)?;
            let unnamed = unnamed(&manifest, &listed);
            return Ok(Published { manifest, unnamed });
        }
    }

    /// Deletes `names` (a round's [`Published::unnamed`]), a few requests at a time.
    pub(crate) fn delete_all(&self, names: &[String]) -> Result<(), RemoteError> {
        /// Deletes in flight at once.
        const IN_FLIGHT: usize = 8;
        self.run(async {
            let mut deletes = tokio::task::JoinSet::new();
            let mut names = names.iter();
            loop {
                while deletes.len() < IN_FLIGHT
                    && let Some(name) = names.next()
                {
                    let (store, object) = (Arc::clone(&self.store), self.object(name));
                    deletes.spawn(async move {
                        store
                            .delete(&object)
                            .await
                            .map_err(store_error("deleting", &object))
                    });
                }
                match deletes.join_next().await {
                    None => return Ok(()),
                    Some(Ok(deleted)) => deleted?,
                    Some(Err(panicked)) => std::panic::resume_unwind(panicked.into_panic()),
                }
            }
        })
    }

    /// Downloads the state the newest manifest names into `dir`, which must be missing or
    /// empty, as a restore does (the snapshot, the segments, the tail joined into its segment,
    /// an empty active segment at the manifest's `next_seq`, each length checked against what
    /// the log would write under `options` before it is read), and returns that manifest, or
    /// `None` if the remote holds none. Only reads the remote: the way to look at what a
    /// remote holds (`pontoon log verify s3://...`) without a writer's side effects.
    ///
    /// ```
    /// let base = std::env::temp_dir().join(format!("pontoon-doc-download-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&base);
    /// std::fs::create_dir_all(base.join("remote")).unwrap();
    /// let url = format!("file://{}", base.join("remote").display());
    /// let remote = pontoon_persist::Remote::open(&url, Vec::<(String, String)>::new())?;
    /// let got = remote.download(&base.join("copy"), &pontoon_persist::LogOptions::default())?;
    /// assert!(got.is_none()); // nothing uploaded there
    /// # std::fs::remove_dir_all(&base).unwrap();
    /// # Ok::<(), pontoon_persist::RemoteError>(())
    /// ```
    pub fn download(
        &self,
        dir: &Path,
        options: &crate::LogOptions,
    ) -> Result<Option<RemoteManifest>, RemoteError> {
        let empty = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(io("listing", dir)(e).into()),
        };
        if !empty {
            return Err(io("downloading into", dir)(std::io::Error::new(
                std::io::ErrorKind::DirectoryNotEmpty,
                "the directory is not empty",
            ))
            .into());
        }
        self.restore_into(dir, options, Holder::Durable)
    }

    /// Restores the newest manifest's snapshot, segments and tail into `dir` (which must hold
    /// no state), each file written under a temporary name, synced, then renamed; returns the
    /// manifest, or `None` if the remote holds nothing.
    ///
    /// The lengths come from the remote, so each object must also fit what the log would
    /// write or read under `options` (a segment, or a snapshot of the largest message), checked
    /// before anything is read or allocated.
    pub(crate) fn restore_into(
        &self,
        dir: &Path,
        options: &crate::LogOptions,
        holder: Holder,
    ) -> Result<Option<RemoteManifest>, RemoteError> {
        let Some(manifest) = self.newest_manifest()? else {
            return Ok(None);
        };
        if holder == Holder::Log && manifest.snapshot.is_some() {
            return Err(RemoteError::NotALog {
                object: self.object(&manifest_name(manifest.generation)).to_string(),
            });
        }
        // Everything goes into a staging directory beside `dir`, renamed onto it (missing or
        // empty) only once whole: a restore that fails halfway leaves `dir` as it was, and
        // the next open restores again instead of opening a part of the state.
        let (parent, staging) = beside(dir, "restoring");
        std::fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io("removing", &staging))?;
        }
        std::fs::create_dir(&staging).map_err(io("creating", &staging))?;
        let final_dir = dir;
        let dir = staging.as_path();
        let max_snapshot =
            (crate::SNAPSHOT_HEADER_LEN as u64).saturating_add(options.limits.max_message_bytes);
        let max_segment = crate::options::max_segment_bytes(options);
        for (name, len) in manifest.snapshot.iter().chain(&manifest.segments) {
            let object = self.object(name);
            let limit = if parse_snapshot_name(name).is_some() {
                max_snapshot
            } else {
                max_segment
            };
            if *len > limit {
                return Err(RemoteError::Manifest {
                    object: manifest_name(manifest.generation),
                    reason: format!(
                        "it names `{name}` as {len} bytes, more than the {limit} allowed"
                    ),
                });
            }
            let bytes = self.get_bounded(&object, *len)?;
            if bytes.len() as u64 != *len {
                return Err(RemoteError::Manifest {
                    object: manifest_name(manifest.generation),
                    reason: format!(
                        "it names `{name}` as {len} bytes, the remote holds {}",
                        bytes.len()
                    ),
                });
            }
            let part = dir.join(format!("{name}.part"));
            let mut file = File::create(&part).map_err(io("creating", &part))?;
            file.write_all(&bytes).map_err(io("writing", &part))?;
            file.sync_all().map_err(io("syncing", &part))?;
            std::fs::rename(&part, dir.join(name)).map_err(io("renaming", &part))?;
        }
        // The tail's parts, joined, are the first bytes of the segment they are of.
        if let Some((first_part, _)) = manifest.tail.first() {
            let bad = |reason: String| RemoteError::Manifest {
                object: manifest_name(manifest.generation),
                reason,
            };
            let (first_seq, _) = parse_tail_name(first_part)
                .ok_or_else(|| bad(format!("`{first_part}` is not a tail part's name")))?;
            let total = manifest
                .tail
                .iter()
                .fold(0u64, |sum, (_, len)| sum.saturating_add(*len));
            if total > max_segment {
                return Err(bad(format!(
                    "its tail is {total} bytes, more than the {max_segment} a segment may hold"
                )));
            }
            let name = crate::files::segment_name(first_seq);
            let part = dir.join(format!("{name}.part"));
            let mut file = File::create(&part).map_err(io("creating", &part))?;
            for (object_name, len) in &manifest.tail {
                let bytes = self.get_bounded(&self.object(object_name), *len)?;
                if bytes.len() as u64 != *len {
                    return Err(bad(format!(
                        "it names `{object_name}` as {len} bytes, the remote holds {}",
                        bytes.len()
                    )));
                }
                file.write_all(&bytes).map_err(io("writing", &part))?;
            }
            file.sync_all().map_err(io("syncing", &part))?;
            std::fs::rename(&part, dir.join(&name)).map_err(io("renaming", &part))?;
        }
        // The log goes on at the manifest's next record, in a segment of its own.
        let active = dir.join(crate::files::segment_name(manifest.next_seq));
        if !active.exists() {
            let file = File::create(&active).map_err(io("creating", &active))?;
            crate::files::write_segment_header(&file, &active, manifest.next_seq)?;
        }
        write_generation(dir, manifest.generation)?;
        std::fs::rename(dir, final_dir).map_err(io("renaming the restored state to", final_dir))?;
        sync_dir(&parent)?;
        Ok(Some(manifest))
    }
}

/// Whose directory a remote holds, which decides what of it goes up: a [`Durable`](crate::Durable)
/// state's (the newest snapshot and the segments after it) or a bare [`Log`](crate::Log)'s
/// (every sealed segment; a snapshot file the application wrote there is its own, not the
/// log's, and a manifest naming one is refused with [`RemoteError::NotALog`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    Log,
    Durable,
}

/// Whether `dir` holds no state (missing, or empty).
fn is_empty(dir: &Path) -> Result<bool, IoError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io("listing", dir)(e)),
    }
}

/// Restores `dir` from `remote` if it holds no state (missing, or empty). The restore takes
/// an exclusive lock first, on `.<name>.restore-lock` beside the directory (the directory's
/// own `LOCK` would make it non-empty), and looks again under it: two opens racing for one
/// empty directory restore it once, the second finding it restored. The lock is returned, to
/// be held until the log holds the directory's `LOCK`. The lock file is never removed: an open
/// waiting on it would then hold a lock on a file that a third open no longer sees.
pub(crate) fn restore_if_empty(
    remote: &Remote,
    dir: &Path,
    options: &crate::LogOptions,
    holder: Holder,
) -> Result<Option<File>, RemoteError> {
    if !is_empty(dir)? {
        return Ok(None);
    }
    let (parent, path) = beside(dir, "restore-lock");
    std::fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("opening", &path))?;
    lock.lock().map_err(io("locking", &path))?;
    if is_empty(dir)? {
        remote.restore_into(dir, options, holder)?;
    }
    Ok(Some(lock))
}

/// What of a state's directory belongs on the remote.
struct Wanted {
    snapshot: Option<(String, u64)>,
    segments: Vec<(String, u64)>,
    next_seq: u64,
    /// The active segment's first sequence number.
    active_first: u64,
    /// The snapshot's last record (0: none).
    covered_up_to: u64,
}

/// The directory `dir` is in (`.` for a bare name), and the path `.<name of dir>.<suffix>` in
/// it: where a restore stages and locks, beside the state's directory rather than in it.
pub(crate) fn beside(dir: &Path, suffix: &str) -> (PathBuf, PathBuf) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let path = parent.join(format!(".{name}.{suffix}"));
    (parent, path)
}

/// The newest snapshot in `dir` and the sealed segments (all but the last, which is still
/// written to) holding records after it; for a bare log, every sealed segment and no snapshot.
fn wanted_files(dir: &Path, holder: Holder) -> Result<Wanted, IoError> {
    let mut segments: Vec<(u64, String, u64)> = Vec::new();
    let mut snapshot: Option<(u64, String, u64)> = None;
    for entry in std::fs::read_dir(dir).map_err(io("listing", dir))? {
        let entry = entry.map_err(io("listing", dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let len = match entry.metadata() {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("reading the size of", &entry.path())(e)),
        };
        if let Some(first) = parse_segment_name(&name) {
            segments.push((first, name, len));
        } else if holder == Holder::Durable
            && let Some(last) = parse_snapshot_name(&name)
            && snapshot
                .as_ref()
                .is_none_or(|(newest, _, _)| last > *newest)
        {
            snapshot = Some((last, name, len));
        }
    }
    segments.sort();
    let covered_up_to = snapshot.as_ref().map_or(0, |(last, _, _)| *last);
    // The sealed segments end where the active one starts; a snapshot may reach past that.
    let active_first = segments.pop().map_or(1, |(first, _, _)| first);
    let next_seq = active_first.max(covered_up_to.saturating_add(1));
    let mut kept = Vec::new();
    for (i, (_, name, len)) in segments.iter().enumerate() {
        // A segment ends where the next one starts; the last sealed one ends at the active one.
        let next_first = segments
            .get(i + 1)
            .map_or(active_first, |(first, _, _)| *first);
        if next_first <= covered_up_to.saturating_add(1) {
            continue;
        }
        kept.push((name.clone(), *len));
    }
    Ok(Wanted {
        snapshot: snapshot.map(|(_, name, len)| (name, len)),
        segments: kept,
        next_seq,
        active_first,
        covered_up_to,
    })
}

/// A manifest's tail as parts with their offsets.
fn published_parts(tail: &[(String, u64)]) -> Vec<(String, u64, u64)> {
    tail.iter()
        .filter_map(|(name, len)| Some((name.clone(), parse_tail_name(name)?.1, *len)))
        .collect()
}

/// Closes a [`Remote`] from another thread: its request in flight, and every later one, is
/// abandoned once the close timeout has passed.
pub(crate) struct Closer {
    closing: Arc<tokio::sync::watch::Sender<Option<Instant>>>,
    after: Duration,
}

impl Closer {
    pub(crate) fn close(&self) {
        self.closing.send_replace(Some(Instant::now() + self.after));
    }
}

/// Records `generation` in the directory's [`GENERATION_FILE`], atomically and durably.
/// A round that published its manifest: the manifest, and the objects it made unneeded.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) manifest: RemoteManifest,
    /// What the round's listing held that `manifest` does not name: the older manifests, and
    /// the segments, snapshots and tail parts it left out (pruned locally, joined into a
    /// larger part, or what a failed round left). The uploader deletes them after it has
    /// answered whoever waits for the round, so that an acknowledgement waits only for the
    /// manifest; a delete that fails is retried by the next round, whose listing still holds
    /// the object.
    pub(crate) unnamed: Vec<String>,
}

/// Whether `name` is one of the objects a manifest names: a segment, a snapshot or a tail part.
fn is_state_object(name: &str) -> bool {
    parse_segment_name(name).is_some()
        || parse_snapshot_name(name).is_some()
        || parse_tail_name(name).is_some()
}

/// [`Published::unnamed`]: from the round's own listing, taken before the manifest was put
/// (the conditional put then proved no other writer published meanwhile), so nothing
/// another writer may have put since is deleted.
fn unnamed(manifest: &RemoteManifest, listed: &[(String, u64)]) -> Vec<String> {
    let named: std::collections::HashSet<&str> = manifest
        .snapshot
        .iter()
        .chain(&manifest.segments)
        .chain(&manifest.tail)
        .map(|(name, _)| name.as_str())
        .collect();
    let old_manifest =
        |name: &str| parse_manifest_name(name).is_some_and(|g| g < manifest.generation);
    let unnamed_file = |name: &str| is_state_object(name) && !named.contains(name);
    // A reader reads only the newest manifest, so the order of the deletes does not matter.
    let mut names: Vec<String> = listed
        .iter()
        .filter(|(name, _)| old_manifest(name))
        .chain(listed.iter().filter(|(name, _)| unnamed_file(name)))
        .map(|(name, _)| name.clone())
        .collect();
    names.dedup();
    names
}

fn write_generation(dir: &Path, generation: u64) -> Result<(), IoError> {
    let tmp: PathBuf = dir.join(format!("{GENERATION_FILE}.tmp"));
    let mut file = File::create(&tmp).map_err(io("creating", &tmp))?;
    file.write_all(format!("{generation}\n").as_bytes())
        .map_err(io("writing", &tmp))?;
    file.sync_all().map_err(io("syncing", &tmp))?;
    std::fs::rename(&tmp, dir.join(GENERATION_FILE)).map_err(io("renaming", &tmp))?;
    sync_dir(dir)
}

/// The generation recorded in the directory's [`GENERATION_FILE`] (0 if there is none).
pub(crate) fn read_generation(dir: &Path) -> Result<u64, IoError> {
    let path = dir.join(GENERATION_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            io("parsing", &path)(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a generation number",
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io("reading", &path)(e)),
    }
}
