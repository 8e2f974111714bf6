//! The daemon's requests that may reach its spill remote (creates, gets, takes), each served on
//! a blocking thread: the state plans a spill round or a read under its lock, the remote's I/O
//! runs with the lock released, and the state finishes it under the lock again.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::ObjectId;
use crate::daemon::Shared;
use crate::error::ObjectError;
use crate::protocol::{Request, Response};
use crate::state::{ClientId, State};

/// At most this many spill rounds for one request: each frees at least one object, so more
/// means other clients fill the memory as fast as it is freed.
const MAX_ROUNDS: usize = 16;

/// Whether `request` may need the remote (the rest is served as without one).
pub(crate) fn reaches_remote(request: &Request) -> bool {
    matches!(
        request,
        Request::Create { .. } | Request::Get { .. } | Request::Take { .. }
    )
}

/// Serves `request` (blocking), with the descriptor of a copy read from the remote, if any.
pub(crate) fn handle(
    shared: &Shared,
    client: ClientId,
    request: Request,
) -> Option<(Response, Option<OwnedFd>)> {
    let answer = |result: Result<Response, ObjectError>| {
        Some((result.unwrap_or_else(Response::Error), None))
    };
    match request {
        Request::Create { size } => answer(with_room(shared, size, |state| {
            state
                .create(client, size)
                .map(|(id, range)| Response::Created {
                    id,
                    offset: range.offset,
                    len: size,
                })
        })),
        Request::Get { id } => Some(get(shared, client, id)),
        Request::Take { id } => answer(take(shared, client, id)),
        other => crate::daemon::handle(shared, client, other).map(|response| (response, None)),
    }
}

/// Runs `op` (which allocates), spilling to the remote first if an object of `size` bytes
/// would take the memory past the high-water mark, and again while `op` finds no room. A
/// failed spill is the error only if `op` then fails for want of room.
pub(crate) fn with_room<T>(
    shared: &Shared,
    size: u64,
    mut op: impl FnMut(&mut State) -> Result<T, ObjectError>,
) -> Result<T, ObjectError> {
    let mut state = shared.lock();
    let mut spill_error: Option<ObjectError> = None;
    let mut need = state.remote_goal(size);
    let mut rounds = 0;
    loop {
        if need > 0 && spill_error.is_none() && rounds < MAX_ROUNDS {
            rounds += 1;
            match state.plan_remote_spill(need) {
                Ok(Some(round)) => {
                    drop(state);
                    let results = round.put();
                    state = shared.lock();
                    let (_, error) = state.finish_remote_spill(round, results);
                    shared.spill_done.notify_all();
                    spill_error = error;
                }
                Ok(None) => {}
                Err(e) => spill_error = Some(e),
            }
        }
        let full = match op(&mut state) {
            Err(full @ ObjectError::StoreFull { .. }) => full,
            done => return done,
        };
        if let Some(error) = spill_error {
            return Err(error);
        }
        // Another request's spill is under way and may free the room: wait for it.
        if state.remote_in_flight() > 0 {
            state = shared.wait_spill(state);
            need = state.remote_goal(size);
            continue;
        }
        match full {
            ObjectError::StoreFull { need: short, .. } if rounds < MAX_ROUNDS => {
                need = short.max(1);
            }
            full => return Err(full),
        }
    }
}

/// A get: as without a remote, except that an object on the remote is read (with the lock
/// released) into memory of the client's own, sent as a file of its own.
fn get(shared: &Shared, client: ClientId, id: ObjectId) -> (Response, Option<OwnedFd>) {
    let (read, layout) = {
        let mut state = shared.lock();
        match state.get_remote(client, &id) {
            Some(got) => got,
            None => return (state.get(client, &id).unwrap_or_else(Response::Error), None),
        }
    };
    let len = read.len;
    match read.read().and_then(|bytes| copy_fd(&bytes)) {
        Ok(fd) => (
            Response::Spilled {
                id,
                file: shared.next_copy.fetch_add(1, Ordering::Relaxed),
                offset: 0,
                len,
                layout,
            },
            Some(fd),
        ),
        Err(error) => {
            // The get pinned it for this client; the client never hears of that pin.
            shared.lock().release(client, &id);
            (Response::Error(error), None)
        }
    }
}

/// `bytes` in a sealed memfd of their own (at least one byte long, as a client maps it).
fn copy_fd(bytes: &Bytes) -> Result<OwnedFd, ObjectError> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let oom = |_| ObjectError::OutOfMemory {
        bytes: bytes.len() as u64,
    };
    let fd = rustix::fs::memfd_create(
        "pontoon-store-remote-copy",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| oom(std::io::Error::from(e)))?;
    let mut file = File::from(fd);
    file.write_all(bytes).map_err(oom)?;
    if bytes.is_empty() {
        file.set_len(1).map_err(oom)?;
    }
    // Nobody may change the copy the client maps (a shrink would make its views fault).
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
    )
    .map_err(|e| oom(std::io::Error::from(e)))?;
    Ok(OwnedFd::from(file))
}

/// A take: of an object in memory, as without a remote (room for a copy made by spilling); of
/// one on the remote, read with the lock released, then copied into memory.
fn take(shared: &Shared, client: ClientId, id: ObjectId) -> Result<Response, ObjectError> {
    let take = loop {
        if let Some(take) = shared.lock().begin_remote_take(&id)? {
            break take;
        }
        let in_memory = with_room(shared, 0, |state| {
            if state.remote_read(&id).is_some() {
                // Spilled by another request since it was looked at: read it from there.
                return Ok(None);
            }
            crate::daemon::take_in_memory(shared, state, client, &id).map(Some)
        });
        if let Some(response) = in_memory? {
            return Ok(response);
        }
    };
    let result = take.read.read().and_then(|bytes| {
        with_room(shared, bytes.len() as u64, |state| {
            state.take_remote_copy(client, &id, &bytes)
        })
    });
    let mut state = shared.lock();
    if take.marked {
        state.end_flight(&id);
    }
    match result {
        // Taken or deleted by another request while it was read.
        Err(ObjectError::SpillRemoteFailed { .. }) if !state.contains(&id) => {
            Err(ObjectError::Unknown { id })
        }
        result => result,
    }
}
