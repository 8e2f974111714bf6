//! The metrics pontoon-transport records: their names and descriptions in one place, and the
//! handles a connection registers once when it opens, so that a message builds no metric key.
//!
//! Recording goes through the [`metrics`] facade: the application installs a recorder (a
//! Prometheus exporter, say) and calls [`describe`]. A connection opened while no recorder is
//! installed counts nothing per message. The table of every pontoon metric is
//! `docs/observability.md`.

use metrics::{Counter, Gauge, Recorder, Unit, counter, gauge};
use pontoon_wire::CloseCode;

use crate::{Address, TransportError};

/// Bytes of messages, as encoded on the wire (labels `family`, `direction`).
pub const BYTES_TOTAL: &str = "pontoon_transport_bytes_total";
/// Messages (labels `family`, `direction`).
pub const MESSAGES_TOTAL: &str = "pontoon_transport_messages_total";
/// Connections whose handshake finished (label `transport`).
pub const CONNECTIONS_OPENED_TOTAL: &str = "pontoon_transport_connections_opened_total";
/// Connections closed: both halves of their comm dropped (label `transport`).
pub const CONNECTIONS_CLOSED_TOTAL: &str = "pontoon_transport_connections_closed_total";
/// Connections open now (label `transport`).
pub const CONNECTIONS_OPEN: &str = "pontoon_transport_connections_open";
/// Handshakes that failed, by why (label `reason`).
pub const HANDSHAKE_FAILURES_TOTAL: &str = "pontoon_transport_handshake_failures_total";
/// Connections refused with a close message, by its code (labels `code`, `direction`: `sent`
/// when this side refused the peer, `received` when the peer refused this side).
pub const REFUSALS_TOTAL: &str = "pontoon_transport_refusals_total";
/// Bytes of receive buffers the pools hold for reuse now, all listeners together.
pub const RECEIVE_POOL_BYTES: &str = "pontoon_transport_receive_pool_bytes";
/// Receive buffers the pools hold for reuse now, all listeners together.
pub const RECEIVE_POOL_BUFFERS: &str = "pontoon_transport_receive_pool_buffers";

/// The `family` label of a message whose header names no family (not written by a registry).
pub const FAMILY_NONE: &str = "none";
/// The `family` label of a received message whose family this side did not announce, and of
/// families past the first [`MAX_FAMILY_LABELS`] a connection sends: a peer cannot make
/// series without bound.
pub const FAMILY_OTHER: &str = "other";
/// The most families a connection counts under their own names, per direction.
pub const MAX_FAMILY_LABELS: usize = 16;

/// Describes this crate's metrics to the installed recorder (units and help text, as a
/// Prometheus exporter prints them). Call it once after installing the recorder.
///
/// ```
/// pontoon_transport::metrics::describe(); // with no recorder installed, does nothing
/// assert_eq!(pontoon_transport::metrics::BYTES_TOTAL, "pontoon_transport_bytes_total");
/// ```
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        BYTES_TOTAL,
        Unit::Bytes,
        "Bytes of messages sent and received, as encoded, per family and direction."
    );
    describe_counter!(
        MESSAGES_TOTAL,
        Unit::Count,
        "Messages sent and received, per family and direction."
    );
    describe_counter!(
        CONNECTIONS_OPENED_TOTAL,
        Unit::Count,
        "Connections whose handshake finished, per transport."
    );
    describe_counter!(
        CONNECTIONS_CLOSED_TOTAL,
        Unit::Count,
        "Connections closed, per transport."
    );
    describe_gauge!(
        CONNECTIONS_OPEN,
        Unit::Count,
        "Connections open now, per transport."
    );
    describe_counter!(
        HANDSHAKE_FAILURES_TOTAL,
        Unit::Count,
        "Handshakes that failed, per reason."
    );
    describe_counter!(
        REFUSALS_TOTAL,
        Unit::Count,
        "Connections refused with a close message, per code and direction."
    );
    describe_gauge!(
        RECEIVE_POOL_BYTES,
        Unit::Bytes,
        "Bytes of receive buffers held for reuse."
    );
    describe_gauge!(
        RECEIVE_POOL_BUFFERS,
        Unit::Count,
        "Receive buffers held for reuse."
    );
}

/// Whether a recorder is installed for this thread (local or global): the facade's own
/// no-op recorder is the only zero-sized one it hands out, so its size says so without a
/// registration. A zero-sized recorder of the application's own is taken for none; every
/// real recorder keeps state.
pub(crate) fn recording() -> bool {
    metrics::with_recorder(|recorder: &dyn Recorder| std::mem::size_of_val(recorder) != 0)
}

/// The `transport` label of an address.
fn transport(address: &Address) -> &'static str {
    match address {
        Address::Tcp(_) => "tcp",
        Address::Tls(_) => "tls",
        Address::Unix(_) => "unix",
        Address::Inproc(_) => "inproc",
    }
}

/// The `code` label of a close code: a fixed set, whatever number a peer sends.
pub(crate) fn code_label(code: CloseCode) -> &'static str {
    match code {
        CloseCode::GoingAway => "going_away",
        CloseCode::TooLarge => "too_large",
        CloseCode::Malformed => "malformed",
        CloseCode::NotAccepted => "not_accepted",
        CloseCode::Internal => "internal",
        _ => "other",
    }
}

/// The `reason` label of a failed handshake.
pub(crate) fn handshake_reason(error: &TransportError) -> &'static str {
    use crate::HandshakeError;
    match error {
        TransportError::Timeout { .. } => "timeout",
        TransportError::Tls { .. } => "tls",
        TransportError::Auth { .. } => "auth",
        TransportError::VersionMismatch { .. } => "version",
        TransportError::Handshake(HandshakeError::PeerClosed) => "closed",
        TransportError::Handshake(_) | TransportError::Decode { .. } => "malformed",
        TransportError::Io { .. } => "io",
        _ => "other",
    }
}

/// Counts a failed handshake.
pub(crate) fn handshake_failed(reason: &'static str) {
    counter!(HANDSHAKE_FAILURES_TOTAL, "reason" => reason).increment(1);
}

/// Which way a refusal went.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Refusal {
    /// This side refused the peer.
    Sent,
    /// The peer refused this side.
    Received,
}

/// Counts a refusal (at most one per connection and direction).
pub(crate) fn refused(code: CloseCode, way: Refusal) {
    let direction = match way {
        Refusal::Sent => "sent",
        Refusal::Received => "received",
    };
    counter!(REFUSALS_TOTAL, "code" => code_label(code), "direction" => direction).increment(1);
}

/// One open connection's place in the connection counts: counted open when made, closed when
/// dropped.
pub(crate) struct OpenConnection {
    closed: Counter,
    open: Gauge,
}

impl OpenConnection {
    pub(crate) fn new(remote: &Address) -> OpenConnection {
        let transport = transport(remote);
        counter!(CONNECTIONS_OPENED_TOTAL, "transport" => transport).increment(1);
        let open = gauge!(CONNECTIONS_OPEN, "transport" => transport);
        open.increment(1.0);
        OpenConnection {
            closed: counter!(CONNECTIONS_CLOSED_TOTAL, "transport" => transport),
            open,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.closed.increment(1);
        self.open.decrement(1.0);
    }
}

/// Which way messages go.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Direction {
    Sent,
    Received,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// One connection's message and byte counters in one direction, per family: each family's
/// pair is registered the first time the connection sees it, then found by name.
pub(crate) struct Traffic {
    direction: Direction,
    families: Vec<(Box<str>, Counter, Counter)>,
}

impl Traffic {
    /// The counters of a connection opened now: `None` when no recorder is installed, so that
    /// such a connection spends nothing per message.
    pub(crate) fn new(direction: Direction) -> Option<Traffic> {
        recording().then(|| Traffic {
            direction,
            families: Vec::new(),
        })
    }

    /// Counts one message of `bytes` with this header. `announced` is the list of families a
    /// received message's family must be on to be counted under its own name.
    pub(crate) fn count(&mut self, header: &[u8], bytes: u64, announced: Option<&[String]>) {
        let label = match pontoon_family::family_name(header) {
            None => FAMILY_NONE,
            Some(family) if announced.is_none_or(|list| list.iter().any(|f| f == family)) => family,
            Some(_) => FAMILY_OTHER,
        };
        let (_, messages, bytes_counter) = self.counters(label);
        messages.increment(1);
        bytes_counter.increment(bytes);
    }

    fn counters(&mut self, label: &str) -> &(Box<str>, Counter, Counter) {
        let found = self.families.iter().position(|(f, ..)| &**f == label);
        let index = match found {
            Some(index) => index,
            None if self.families.len() < MAX_FAMILY_LABELS || label == FAMILY_OTHER => {
                let direction = self.direction.label();
                let family = metrics::SharedString::from_owned(label.to_string());
                self.families.push((
                    label.into(),
                    counter!(MESSAGES_TOTAL, "family" => family.clone(), "direction" => direction),
                    counter!(BYTES_TOTAL, "family" => family, "direction" => direction),
                ));
                self.families.len() - 1
            }
            None => return self.counters(FAMILY_OTHER),
        };
        &self.families[index]
    }
}

/// The receive pool's gauges: moved by what one pool adds and drops, so that the pools of
/// several listeners add up.
pub(crate) struct PoolGauges {
    bytes: Gauge,
    buffers: Gauge,
}

impl PoolGauges {
    pub(crate) fn new() -> PoolGauges {
        PoolGauges {
            bytes: gauge!(RECEIVE_POOL_BYTES),
            buffers: gauge!(RECEIVE_POOL_BUFFERS),
        }
    }

    /// The pool took in one buffer of `bytes`.
    pub(crate) fn kept(&self, bytes: usize) {
        self.bytes.increment(bytes as f64);
        self.buffers.increment(1.0);
    }

    /// The pool handed out one buffer of `bytes`.
    pub(crate) fn handed_out(&self, bytes: usize) {
        self.bytes.decrement(bytes as f64);
        self.buffers.decrement(1.0);
    }

    /// The pool went from holding `before` (bytes, buffers) to `after`.
    pub(crate) fn moved(&self, before: (usize, usize), after: (usize, usize)) {
        let delta = |a: usize, b: usize| b as f64 - a as f64;
        if before != after {
            self.bytes.increment(delta(before.0, after.0));
            self.buffers.increment(delta(before.1, after.1));
        }
    }
}
