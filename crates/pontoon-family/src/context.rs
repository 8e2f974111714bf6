//! [`Context`]: what a family knows about the connection a value crosses.

/// What a family knows about where a value is going or coming from: the sender's and the
/// recipient's addresses, whether the peer shares this machine's memory (so a family may pass
/// a handle to shared memory instead of the bytes), and the peer's identity as its verified TLS
/// certificate states it. Empty when there is no connection, as when a value is written to disk.
///
/// This is Dask's `context=` argument, typed.
///
/// ```
/// use pontoon_family::Context;
/// let context = Context::new()
///     .sender("tcp://10.0.0.1:8786")
///     .recipient("tcp://10.0.0.2:40000")
///     .shares_memory(false);
/// assert_eq!(context.recipient.as_deref(), Some("tcp://10.0.0.2:40000"));
/// assert_eq!(Context::default(), Context::new()); // no connection
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Context {
    /// The address of the side that serializes, if any.
    pub sender: Option<String>,
    /// The address of the side that deserializes, if any.
    pub recipient: Option<String>,
    /// Whether the peer is on this machine and can map this process's shared memory.
    pub shares_memory: bool,
    /// The peer's identity from the certificate its TLS handshake verified (its first subject
    /// alternative name, or its subject), if the connection is TLS and the peer presented one.
    /// Only a verified certificate gets here, so a family may decide on it.
    pub peer_identity: Option<String>,
}

impl Context {
    /// The empty context: no connection.
    ///
    /// ```
    /// assert!(pontoon_family::Context::new().sender.is_none());
    /// ```
    pub fn new() -> Context {
        Context::default()
    }

    /// With this sender address.
    ///
    /// ```
    /// let context = pontoon_family::Context::new().sender("inproc://a");
    /// assert_eq!(context.sender.as_deref(), Some("inproc://a"));
    /// ```
    #[must_use = "sender returns the changed context"]
    pub fn sender(mut self, address: impl Into<String>) -> Context {
        self.sender = Some(address.into());
        self
    }

    /// With this recipient address.
    ///
    /// ```
    /// let context = pontoon_family::Context::new().recipient("inproc://b");
    /// assert_eq!(context.recipient.as_deref(), Some("inproc://b"));
    /// ```
    pub fn recipient(mut self, address: impl Into<String>) -> Context {
        self.recipient = Some(address.into());
        self
    }

    /// Whether the peer shares this machine's memory.
    ///
    /// ```
    /// assert!(pontoon_family::Context::new().shares_memory(true).shares_memory);
    /// ```
    pub fn shares_memory(mut self, shares: bool) -> Context {
        self.shares_memory = shares;
        self
    }

    /// With this peer identity (a verified certificate's name; `None` for none).
    ///
    /// ```
    /// let context = pontoon_family::Context::new().peer_identity(Some("worker-1.cluster".into()));
    /// assert_eq!(context.peer_identity.as_deref(), Some("worker-1.cluster"));
    /// ```
    #[must_use = "peer_identity returns the changed context"]
    pub fn peer_identity(mut self, identity: Option<String>) -> Context {
        self.peer_identity = identity;
        self
    }
}
