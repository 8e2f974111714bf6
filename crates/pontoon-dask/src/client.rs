//! [`Client`]: remote calls to a Dask scheduler over one [`Comm`], as
//! `distributed.core.rpc` makes them (`{"op": ..., "reply": True, ...}`, one reply each):
//! `identity`, `scatter`, `gather`, `who_has`, and any other op.

use crate::comm::{Comm, CommError};
use crate::value::Value;

/// Why a call to the scheduler failed.
///
/// ```
/// let err = pontoon_dask::ClientError::MissingKeys(vec!["x".into()]);
/// assert_eq!(err.to_string(), "the scheduler could not gather the keys [\"x\"]");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The comm failed.
    #[error("the comm to the scheduler failed")]
    Comm(#[from] CommError),
    /// The handler raised (`status: uncaught-error`): Python's `repr` of the exception.
    #[error("the scheduler's `{op}` handler raised {exception}")]
    Remote {
        /// The op called.
        op: String,
        /// `exception_text`: the exception's `repr`.
        exception: String,
        /// `traceback_text`.
        traceback: String,
    },
    /// `gather` answered `status: error`: no worker holds these keys.
    #[error("the scheduler could not gather the keys {0:?}")]
    MissingKeys(Vec<String>),
    /// A reply of a shape the op does not give.
    #[error("the scheduler's reply to `{op}` is not what it sends: {reply}")]
    Unexpected {
        /// The op called.
        op: String,
        /// The reply, as JSON (cut to 200 bytes).
        reply: String,
    },
}

/// An RPC client to a Dask scheduler.
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn run() -> Result<(), pontoon_dask::ClientError> {
/// use pontoon_dask::{Client, NdArray};
/// let mut client = Client::connect("tcp://127.0.0.1:8786").await?;
/// let array = NdArray::from(pontoon_array::Array::from_vec(vec![1.0f64, 2.0]));
/// client.scatter(vec![("x".into(), array.into())]).await?;
/// let data = client.gather(&["x"]).await?;
/// assert_eq!(data[0].1.as_ndarray().unwrap().shape(), [2]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Client {
    comm: Comm,
    id: String,
}

fn keys_value(keys: &[&str]) -> Value {
    Value::List(keys.iter().map(|&k| Value::from(k)).collect())
}

fn unexpected(op: &str, reply: &Value) -> ClientError {
    let mut text = crate::to_json(reply, 1 << 16).unwrap_or_else(|e| e.to_string());
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    ClientError::Unexpected {
        op: op.to_owned(),
        reply: text,
    }
}

impl Client {
    /// Connects to the scheduler at `address` (`tcp://host:port`) and shakes hands. The client
    /// names itself `pontoon-<pid>-<n>`, the name the keys it scatters are held for.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe (see [`Comm::connect`]).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::ClientError> {
    /// let client = pontoon_dask::Client::connect("tcp://127.0.0.1:8786").await?;
    /// assert!(client.id().starts_with("pontoon-"));
    /// # Ok(()) }
    /// ```
    pub async fn connect(address: &str) -> Result<Client, ClientError> {
        Ok(Client::over(Comm::connect(address).await?))
    }

    /// A client over a comm that has shaken hands.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::ClientError> {
    /// let comm = pontoon_dask::Comm::connect("127.0.0.1:8786").await?;
    /// let client = pontoon_dask::Client::over(comm);
    /// # let _ = client; Ok(()) }
    /// ```
    pub fn over(comm: Comm) -> Client {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = format!(
            "pontoon-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Client { comm, id }
    }

    /// The client's name, sent with `scatter`.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::ClientError> {
    /// let client = pontoon_dask::Client::connect("127.0.0.1:8786").await?;
    /// println!("{}", client.id());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The comm, for messages of one's own.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::ClientError> {
    /// let mut client = pontoon_dask::Client::connect("127.0.0.1:8786").await?;
    /// let _ = client.comm().handshake();
    /// # Ok(()) }
    /// ```
    pub fn comm(&mut self) -> &mut Comm {
        &mut self.comm
    }

    /// Calls `op` with `args` and returns the reply; a reply with `status: uncaught-error` is
    /// a [`ClientError::Remote`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: cancelled between the send and the reply, the reply would be taken by
    /// the next call. Drop the client instead.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::ClientError> {
    /// let mut client = pontoon_dask::Client::connect("127.0.0.1:8786").await?;
    /// let n = client.call("ncores", vec![]).await?;
    /// # let _ = n; Ok(()) }
    /// ```
    pub async fn call(&mut self, op: &str, args: Vec<(&str, Value)>) -> Result<Value, ClientError> {
        let mut items = vec![(Value::from("op"), Value::from(op))];
        items.extend(args.into_iter().map(|(k, v)| (Value::from(k), v)));
        items.push((Value::from("reply"), Value::Bool(true)));
        self.comm.send(&Value::Map(items)).await?;
        let reply = self.comm.recv().await?;
        if reply.get("status").and_then(Value::as_str) == Some("uncaught-error") {
            let text = |k| {
                reply
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            return Err(ClientError::Remote {
                op: op.to_owned(),
                exception: text("exception_text"),
                traceback: text("traceback_text"),
            });
        }
        Ok(reply)
    }

    /// The scheduler's `identity`: a map with its `type`, `id`, `address` and `workers`.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe (see [`Client::call`]).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::ClientError> {
    /// let mut client = pontoon_dask::Client::connect("127.0.0.1:8786").await?;
    /// let id = client.identity().await?;
    /// assert_eq!(id.get("type").and_then(pontoon_dask::Value::as_str), Some("Scheduler"));
    /// # Ok(()) }
    /// ```
    pub async fn identity(&mut self) -> Result<Value, ClientError> {
        self.call("identity", vec![]).await
    }

    /// Sends values to the workers through the scheduler (its `scatter` op), to be held under
    /// their keys for this client; returns the keys. Values are usually [`Value::Serialized`]
    /// (arrays go as the `dask` family, their data frames not copied).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe (see [`Client::call`]).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::ClientError> {
    /// let mut client = pontoon_dask::Client::connect("127.0.0.1:8786").await?;
    /// let keys = client.scatter(vec![("k".into(), pontoon_dask::Object::Bytes(b"hi"[..].into()).into())]).await?;
    /// assert_eq!(keys, ["k"]);
    /// # Ok(()) }
    /// ```
    pub async fn scatter(
        &mut self,
        data: Vec<(String, Value)>,
    ) -> Result<Vec<String>, ClientError> {
        let data = Value::Map(data.into_iter().map(|(k, v)| (Value::Str(k), v)).collect());
        let client = Value::from(self.id.as_str());
        let reply = self
            .call(
                "scatter",
                vec![
                    ("data", data),
                    ("workers", Value::Nil),
                    ("client", client),
                    ("broadcast", Value::Bool(false)),
                    ("timeout", Value::Int(2)),
                ],
            )
            .await?;
        reply
            .as_list()
            .and_then(|keys| {
                keys.iter()
                    .map(|k| k.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| unexpected("scatter", &reply))
    }

    /// Fetches the values of `keys` from the workers that hold them, through the scheduler:
    /// `(key, value)` pairs; arrays are views of the received frames. Keys no worker holds are
    /// a [`ClientError::MissingKeys`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe (see [`Client::call`]).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::ClientError> {
    /// let mut client = pontoon_dask::Client::connect("127.0.0.1:8786").await?;
    /// let err = client.gather(&["no-such-key"]).await.unwrap_err();
    /// assert!(matches!(err, pontoon_dask::ClientError::MissingKeys(_)));
    /// # Ok(()) }
    /// ```
    pub async fn gather(&mut self, keys: &[&str]) -> Result<Vec<(String, Value)>, ClientError> {
        let reply = self
            .call("gather", vec![("keys", keys_value(keys))])
            .await?;
        match reply.get("status").and_then(Value::as_str) {
            Some("OK") => {}
            Some("error") => {
                let missing = reply
                    .get("keys")
                    .and_then(Value::as_list)
                    .map(|ks| {
                        ks.iter()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                return Err(ClientError::MissingKeys(missing));
            }
            _ => return Err(unexpected("gather", &reply)),
        }
        match reply {
            Value::Map(items) => items
                .into_iter()
                .find(|(k, _)| k.as_str() == Some("data"))
                .and_then(|(_, data)| match data {
                    Value::Map(pairs) => pairs
                        .into_iter()
                        .map(|(k, v)| Some((k.as_str()?.to_owned(), v)))
                        .collect::<Option<Vec<_>>>(),
                    _ => None,
                })
                .ok_or_else(|| ClientError::Unexpected {
                    op: "gather".into(),
                    reply: "no `data` map of str keys".into(),
                }),
            other => Err(unexpected("gather", &other)),
        }
    }

    /// Which workers hold each key: `(key, worker addresses)`, empty for a key none holds.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe (see [`Client::call`]).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn run() -> Result<(), pontoon_dask::ClientError> {
    /// let mut client = pontoon_dask::Client::connect("127.0.0.1:8786").await?;
    /// for (key, workers) in client.who_has(&["x"]).await? {
    ///     println!("{key}: {workers:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn who_has(
        &mut self,
        keys: &[&str],
    ) -> Result<Vec<(String, Vec<String>)>, ClientError> {
        let reply = self
            .call("who_has", vec![("keys", keys_value(keys))])
            .await?;
        let Value::Map(items) = &reply else {
            return Err(unexpected("who_has", &reply));
        };
        items
            .iter()
            .map(|(k, v)| {
                let workers = v
                    .as_list()
                    .or(match v {
                        Value::Set(s) => Some(s.as_slice()),
                        _ => None,
                    })?
                    .iter()
                    .map(|w| w.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()?;
                Some((k.as_str()?.to_owned(), workers))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| unexpected("who_has", &reply))
    }
}
