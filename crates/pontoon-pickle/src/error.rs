//! The errors of decoding ([`LoadError`]) and encoding ([`DumpError`]) pickles.

use pontoon_array::ArrayError;

/// Why a pickle could not be decoded. Every variant names the byte offset of the opcode at
/// fault (from the start of the pickle) and what was wrong there.
///
/// ```
/// use pontoon_pickle::{LoadError, LoadOptions, loads};
/// let data = bytes::Bytes::from_static(b"cos\nsystem\n(S'echo hi'\ntR.");
/// let error = loads(&data, &[], &LoadOptions::default()).unwrap_err();
/// assert!(matches!(error, LoadError::Refused { offset: 0, .. }));
/// assert_eq!(error.to_string(), "refusing to load os.system (not on the allow-list) at byte 0");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The input ends inside an opcode or its argument.
    #[error("the pickle ends inside {opcode} at byte {offset}")]
    Truncated {
        /// Where the opcode starts.
        offset: usize,
        /// The opcode's name.
        opcode: String,
    },
    /// The input ends without a `STOP`.
    #[error("the pickle ends at byte {offset} without STOP")]
    NoStop {
        /// The input's length.
        offset: usize,
    },
    /// A byte that is no pickle opcode.
    #[error("unknown opcode 0x{opcode:02x} at byte {offset}")]
    UnknownOpcode {
        /// Where it is.
        offset: usize,
        /// The byte.
        opcode: u8,
    },
    /// A `PROTO` above 5.
    #[error("unsupported pickle protocol {protocol} at byte {offset}")]
    UnsupportedProtocol {
        /// Where the `PROTO` is.
        offset: usize,
        /// The protocol it names.
        protocol: u8,
    },
    /// An opcode needs more values on the stack (or after the mark) than there are.
    #[error("{opcode} at byte {offset} needs a value the stack does not have")]
    StackUnderflow {
        /// Where the opcode is.
        offset: usize,
        /// The opcode's name.
        opcode: String,
    },
    /// An opcode that works on the items since the last mark found no mark.
    #[error("{opcode} at byte {offset} has no MARK before it")]
    NoMark {
        /// Where the opcode is.
        offset: usize,
        /// The opcode's name.
        opcode: String,
    },
    /// A `GET` of a memo entry that was never `PUT`.
    #[error("memo entry {index} read at byte {offset} was never stored")]
    MemoMissing {
        /// Where the `GET` is.
        offset: usize,
        /// The memo index.
        index: u64,
    },
    /// A length longer than what remains of the input, or than the buffers given.
    #[error("length {length} at byte {offset} is more than the {available} bytes there are")]
    TooLong {
        /// Where the opcode is.
        offset: usize,
        /// The length the opcode declares.
        length: u64,
        /// What remains.
        available: u64,
    },
    /// A global not on the allow-list (and not let through as opaque).
    #[error("refusing to load {global} (not on the allow-list) at byte {offset}")]
    Refused {
        /// Where the `GLOBAL`, `STACK_GLOBAL` or `INST` is.
        offset: usize,
        /// `module.name`.
        global: String,
    },
    /// An opcode applied to a value it cannot apply to (`APPEND` onto a tuple, `REDUCE` of a
    /// known constructor with arguments it does not take, ...).
    #[error("{opcode} at byte {offset}: {what}")]
    Invalid {
        /// Where the opcode is.
        offset: usize,
        /// The opcode's name.
        opcode: String,
        /// What was wrong.
        what: String,
    },
    /// Marks nested deeper than [`LoadOptions::max_depth`](crate::LoadOptions::max_depth).
    #[error("nesting deeper than {limit} at byte {offset}")]
    TooDeep {
        /// Where the mark that went too deep is.
        offset: usize,
        /// The limit.
        limit: usize,
    },
    /// The values would take more than the input's size times
    /// [`LoadOptions::max_expansion_ratio`](crate::LoadOptions::max_expansion_ratio).
    #[error("the pickle makes more than {limit} items and bytes from its input at byte {offset}")]
    TooLarge {
        /// Where the opcode that went over is.
        offset: usize,
        /// The budget.
        limit: u64,
    },
    /// An integer longer than [`LoadOptions::max_int_bytes`](crate::LoadOptions::max_int_bytes).
    #[error("an integer of {bytes} bytes at byte {offset} is over the limit of {limit}")]
    IntTooLarge {
        /// Where the opcode is.
        offset: usize,
        /// How many bytes (or decimal digits) it has.
        bytes: u64,
        /// The limit.
        limit: usize,
    },
    /// `NEXT_BUFFER` with no out-of-band buffer left.
    #[error("NEXT_BUFFER at byte {offset} wants buffer {index} but only {given} were given")]
    NoBuffer {
        /// Where the opcode is.
        offset: usize,
        /// The buffer it wants (from 0).
        index: usize,
        /// How many buffers there are.
        given: usize,
    },
    /// A numpy array or dtype pontoon-array cannot hold, or whose parts do not fit together.
    #[error("a numpy array at byte {offset}")]
    Array {
        /// Where the opcode that builds it is.
        offset: usize,
        /// What pontoon-array said.
        #[source]
        source: ArrayError,
    },
    /// An opcode this crate never honours (`PERSID`, `BINPERSID`, `EXT1`, `EXT2`, `EXT4`): they
    /// ask for objects from the loader's own tables.
    #[error("{opcode} at byte {offset} is not supported: {why}")]
    Unsupported {
        /// Where it is.
        offset: usize,
        /// The opcode's name.
        opcode: String,
        /// Why.
        why: &'static str,
    },
    /// Memory for the values could not be had.
    #[error("out of memory at byte {offset}")]
    OutOfMemory {
        /// Where the opcode is.
        offset: usize,
    },
}

impl LoadError {
    /// The byte offset the error names.
    ///
    /// ```
    /// let data = bytes::Bytes::from_static(b"\x80\x02]");
    /// let error = pontoon_pickle::loads(&data, &[], &Default::default()).unwrap_err();
    /// assert_eq!(error.offset(), 3);
    /// ```
    pub fn offset(&self) -> usize {
        match self {
            LoadError::Truncated { offset, .. }
            | LoadError::NoStop { offset }
            | LoadError::UnknownOpcode { offset, .. }
            | LoadError::UnsupportedProtocol { offset, .. }
            | LoadError::StackUnderflow { offset, .. }
            | LoadError::NoMark { offset, .. }
            | LoadError::MemoMissing { offset, .. }
            | LoadError::TooLong { offset, .. }
            | LoadError::Refused { offset, .. }
            | LoadError::Invalid { offset, .. }
            | LoadError::TooDeep { offset, .. }
            | LoadError::TooLarge { offset, .. }
            | LoadError::IntTooLarge { offset, .. }
            | LoadError::NoBuffer { offset, .. }
            | LoadError::Array { offset, .. }
            | LoadError::Unsupported { offset, .. }
            | LoadError::OutOfMemory { offset } => *offset,
        }
    }
}

/// Why a [`Graph`](crate::Graph) could not be encoded.
///
/// ```
/// use pontoon_pickle::{DumpError, DumpOptions, Graph, Node, dumps};
/// let mut graph = Graph::new();
/// let tuple = graph.push(Node::Tuple(vec![]));
/// *graph.node_mut(tuple) = Node::Tuple(vec![tuple]); // t = (t,): impossible in Python
/// graph.set_root(tuple);
/// assert!(matches!(dumps(&graph, &DumpOptions::default()), Err(DumpError::ImmutableCycle { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    /// A node refers to an id the graph does not have.
    #[error("node {node} refers to node {missing}, which the graph does not have")]
    Dangling {
        /// The referring node's index.
        node: usize,
        /// The missing index.
        missing: usize,
    },
    /// A tuple, frozenset or object's arguments reach the node itself through immutable nodes
    /// only, which no pickle can express.
    #[error("node {node} contains itself through tuples or frozensets only")]
    ImmutableCycle {
        /// The node's index.
        node: usize,
    },
    /// An array that could not be made contiguous, or a dtype numpy has no code for.
    #[error("the array at node {node}")]
    Array {
        /// The node's index.
        node: usize,
        /// What pontoon-array said.
        #[source]
        source: ArrayError,
    },
    /// Memory for the output could not be had.
    #[error("out of memory writing the pickle")]
    OutOfMemory,
}
