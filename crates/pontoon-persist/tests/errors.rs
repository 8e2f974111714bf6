//! An error's `Display` says only its own context, never its source's, which `source()`
//! returns: walking a chain prints each cause once.

use std::error::Error;
use std::path::Path;

use pontoon_persist::format::{
    RECORD_ALIGN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEGMENT_VERSION,
};
use pontoon_persist::{
    Durable, DurableOptions, Log, LogError, LogOptions, OpenError, ReadError, StateError,
};

#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::unmade(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("errors-{test}-{}", std::process::id())),
    )
}

/// Every error in the chain starting at `error`, as text.
fn chain(error: &dyn Error) -> Vec<String> {
    let mut out = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(inner) = cause {
        out.push(inner.to_string());
        cause = inner.source();
    }
    out
}

/// No link of the chain repeats the text of the link after it.
fn assert_no_repeats(error: &dyn Error) -> Vec<String> {
    let links = chain(error);
    for pair in links.windows(2) {
        assert!(
            !pair[0].contains(&pair[1]),
            "{:?} repeats its source {:?}",
            pair[0],
            pair[1]
        );
    }
    links
}

#[test]
fn an_io_error_names_what_and_where_and_leaves_the_cause_to_source() {
    let dir = scratch("io");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::fs::write(&dir, b"a file, not a directory").unwrap();
    let error = Log::open(&dir, LogOptions::default()).unwrap_err();
    assert!(matches!(error, OpenError::Io(_)));
    let links = assert_no_repeats(&error);
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(links[0].contains(&dir.display().to_string()));
    assert!(
        error
            .source()
            .unwrap()
            .downcast_ref::<std::io::Error>()
            .is_some()
    );
    std::fs::remove_file(&dir).unwrap();
}

/// A record whose checksum is right but whose payload is not a pontoon message.
fn log_with_a_bad_payload(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let payload = b"not a message";
    let mut header = [0u8; RECORD_HEADER_LEN];
    header[4..8].copy_from_slice(&1u32.to_le_bytes());
    header[8..16].copy_from_slice(&1u64.to_le_bytes());
    header[16..24].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[4..]), payload);
    header[..4].copy_from_slice(&crc.to_le_bytes());
    let mut segment = SEGMENT_MAGIC.to_vec();
    segment.push(SEGMENT_VERSION);
    segment.extend_from_slice(&1u64.to_le_bytes());
    segment.resize(SEGMENT_HEADER_LEN, 0);
    segment.extend_from_slice(&header);
    segment.extend_from_slice(payload);
    segment.resize(segment.len().next_multiple_of(RECORD_ALIGN), 0);
    std::fs::write(dir.join(format!("{:020}.log", 1)), segment).unwrap();
}

#[test]
fn a_bad_payload_and_a_durable_state_over_it_chain_down_to_the_decoder() {
    let dir = scratch("payload");
    log_with_a_bad_payload(&dir);
    {
        let (log, _) = Log::open(&dir, LogOptions::default()).unwrap();
        let error = log.read_all().unwrap_err();
        assert!(matches!(error, ReadError::BadPayload { seq: 1, .. }));
        let links = assert_no_repeats(&error);
        assert!(links.len() >= 2, "{links:?}");
        assert!(
            error
                .source()
                .unwrap()
                .downcast_ref::<pontoon_wire::DecodeError>()
                .is_some()
        );
    }
    let mut options = DurableOptions::default();
    options
        .registry
        .register_type::<u64>("test.Counter")
        .unwrap();
    let error = Durable::open(&dir, || 0u64, |_: &mut u64, _: &u64| {}, options).unwrap_err();
    // A log error inside a state error is the log error itself (transparent): still no repeat.
    assert!(matches!(
        error,
        StateError::Log(LogError::Read(ReadError::BadPayload { .. }))
    ));
    let links = assert_no_repeats(&error);
    assert!(links.len() >= 2, "{links:?}");
}
