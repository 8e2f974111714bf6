//! Passing file descriptors over the Unix socket (SCM_RIGHTS): the daemon sends its memory's
//! descriptor with the hello, and a spill file's with each reply about an object on disk; the
//! client checks it got exactly the descriptors promised.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::Interest;
use tokio::net::UnixStream;

/// The most descriptors a client accepts with one read: more than the hello promises, so that
/// a peer sending extra ones is caught (and they are closed) rather than truncated silently.
pub(crate) const MAX_FDS: usize = 4;

/// Sends `bytes` (or a prefix of them; the count is returned) with `fd` attached.
pub(crate) async fn send_with_fd(
    stream: &UnixStream,
    bytes: &[u8],
    fd: BorrowedFd<'_>,
) -> io::Result<usize> {
    stream
        .async_io(Interest::WRITABLE, || {
            let fds = [fd];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(io::Error::other(
                    "no room for a descriptor in the control buffer",
                ));
            }
            Ok(rustix::net::sendmsg(
                stream,
                &[IoSlice::new(bytes)],
                &mut control,
                SendFlags::NOSIGNAL,
            )?)
        })
        .await
}

/// Sends what of `bytes` the socket takes now (the count; `WouldBlock` if none) with `fd`
/// attached to the first byte, without waiting: for replies written from the task that made
/// them.
pub(crate) fn try_send_with_fd(
    stream: &UnixStream,
    bytes: &[u8],
    fd: BorrowedFd<'_>,
) -> io::Result<usize> {
    stream.try_io(Interest::WRITABLE, || {
        let fds = [fd];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other(
                "no room for a descriptor in the control buffer",
            ));
        }
        Ok(rustix::net::sendmsg(
            stream,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
        )?)
    })
}

/// Reads some bytes into `buf` and the descriptors that came with them (each owned, so closed
/// on every error path). Fails if the kernel had to drop descriptors for want of room.
pub(crate) async fn recv_with_fds(
    stream: &UnixStream,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    stream
        .async_io(Interest::READABLE, || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = rustix::net::recvmsg(
                stream,
                &mut [IoSliceMut::new(buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            let mut fds = Vec::new();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = message {
                    fds.extend(received);
                }
            }
            if got.flags.contains(ReturnFlags::CTRUNC) {
                return Err(io::Error::other(format!(
                    "the store daemon sent more than {MAX_FDS} file descriptors"
                )));
            }
            Ok((got.bytes, fds))
        })
        .await
}
