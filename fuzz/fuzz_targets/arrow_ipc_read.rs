//! Fuzz target: Arrow IPC stream and file reading on arbitrary bytes. Anything may be refused
//! with an error; nothing may panic, abort or allocate past the limits. libFuzzer's panic hook
//! aborts on a panic before pontoon's `catch_unwind` backstop sees it, so what still reaches the
//! backstop is found as a crash.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pontoon_array::arrow::{IpcReadError, from_arrow, read_ipc_file, read_ipc_stream};
use pontoon_wire::Limits;

fn exercise(read: Result<Vec<arrow_array::RecordBatch>, IpcReadError>) {
    match read {
        Ok(batches) => {
            for batch in &batches {
                for column in batch.columns() {
                    let _ = from_arrow(column.as_ref(), &Limits::DEFAULT);
                }
            }
        }
        Err(IpcReadError::Panicked) => panic!("arrow-rs panicked behind the backstop"),
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    exercise(read_ipc_stream(bytes.clone(), &Limits::DEFAULT));
    exercise(read_ipc_file(bytes, &Limits::DEFAULT));
});
