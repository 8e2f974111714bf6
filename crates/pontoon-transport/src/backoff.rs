//! Which accept errors pass (out of file descriptors, out of buffers, a connection aborted
//! before it was accepted), and how long a listener waits before it tries again.

use std::time::Duration;

/// The first wait after a transient accept error; it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(5);
/// The longest wait between two tries: short enough that a freed descriptor is used soon.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Whether an accept error says nothing about the listener itself: the process or system is
/// out of descriptors or memory for now, or one connection went away before it was accepted.
/// Any of these passes, so the accept loop must go on rather than end.
pub(crate) fn is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
            | ErrorKind::OutOfMemory
    ) {
        return true;
    }
    matches!(
        error.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::EINTR
        )
    )
}

/// Waits that double from [`FIRST_WAIT`] to [`MAX_WAIT`], starting over after a success.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// The wait before the next try.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.next.unwrap_or(FIRST_WAIT);
        self.next = Some(wait.saturating_mul(2).min(MAX_WAIT));
        wait
    }

    /// An accept succeeded: the next error waits [`FIRST_WAIT`] again.
    pub(crate) fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_descriptors_passes_and_a_bad_listener_does_not() {
        assert!(is_transient(&std::io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(is_transient(&std::io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(is_transient(&std::io::Error::from_raw_os_error(
            libc::ENOBUFS
        )));
        assert!(is_transient(&std::io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
        assert!(!is_transient(&std::io::Error::from_raw_os_error(
            libc::EBADF
        )));
        assert!(!is_transient(&std::io::Error::from_raw_os_error(
            libc::EINVAL
        )));
    }

    #[test]
    fn waits_double_up_to_the_cap_and_start_over() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.next_wait(), FIRST_WAIT);
        assert_eq!(backoff.next_wait(), FIRST_WAIT * 2);
        for _ in 0..20 {
            assert!(backoff.next_wait() <= MAX_WAIT);
        }
        assert_eq!(backoff.next_wait(), MAX_WAIT);
        backoff.reset();
        assert_eq!(backoff.next_wait(), FIRST_WAIT);
    }
}
