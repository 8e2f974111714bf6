//! Shared fixtures for ferry's benchmarks: the messages each bench encodes, built the same way
//! for ferry and for its peers.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A small administrative message of six fields, the kind a scheduler and its workers exchange
/// thousands of times a second.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TaskFinished {
    /// The operation.
    pub op: String,
    /// The task's key.
    pub key: String,
    /// The worker's address.
    pub worker: String,
    /// Size of the result.
    pub nbytes: u64,
    /// Element type of the result.
    pub dtype: String,
    /// Shape of the result.
    pub shape: Vec<u64>,
}

impl TaskFinished {
    /// A typical instance.
    pub fn sample() -> TaskFinished {
        TaskFinished {
            op: "task-finished".into(),
            key: "('array-sum', 0, 3)".into(),
            worker: "tcp://127.0.0.1:40471".into(),
            nbytes: 8_000_000,
            dtype: "<f8".into(),
            shape: vec![1000, 1000],
        }
    }
}

/// A payload of `len` bytes whose pages are written (so they are real memory, not the shared
/// zero page) and whose content does not compress to nothing.
pub fn payload(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}
