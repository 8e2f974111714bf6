//! The remote: a state's (and a bare log's) round trip through it onto a fresh directory, a
//! second writer refused by the conditional manifest, refused credentials and an unreachable
//! endpoint as typed errors, pruning that leaves nothing behind; each against a real SeaweedFS
//! server (S3) and against a `file://` directory.
#![cfg(feature = "remote")]

mod support {
    pub(crate) mod scratch;
    pub(crate) mod seaweed;
}

use std::path::{Path, PathBuf};

use pontoon_persist::{
    AppendError, Durable, DurableOptions, Log, LogOptions, OpenError, Remote, RemoteDurability,
    RemoteError, RemoteTimeouts, StateError,
};
use support::scratch::Scratch;
use support::seaweed::Seaweed;

fn scratch(test: &str) -> Scratch {
    Scratch::at(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("remote-{test}-{}", std::process::id())),
    )
}

/// Where a test's remote lives: a local directory, or a SeaweedFS server.
enum Target {
    File(PathBuf),
    S3(Seaweed),
}

impl Target {
    fn file(base: &Path) -> Target {
        let dir = base.join("remote");
        std::fs::create_dir_all(&dir).unwrap();
        Target::File(dir)
    }

    fn remote(&self, prefix: &str) -> Remote {
        match self {
            Target::File(dir) => {
                let dir = dir.join(prefix);
                std::fs::create_dir_all(&dir).unwrap();
                Remote::open(
                    &format!("file://{}", dir.display()),
                    Vec::<(String, String)>::new(),
                )
                .unwrap()
            }
            Target::S3(server) => Remote::open(&server.url(prefix), server.good_options()).unwrap(),
        }
    }
}

fn add(total: &mut u64, n: &u64) {
    *total += n;
}

/// The state after events 1..=n, where event i adds i.
fn expected(n: u64) -> u64 {
    n * (n + 1) / 2
}

fn options(remote: Remote) -> DurableOptions {
    let mut options = DurableOptions::default();
    options
        .registry
        .register_type::<u64>("test.Amount")
        .unwrap();
    // Small segments, so that a few hundred events seal several.
    options.log.segment_bytes = 4096;
    options.remote = Some(remote);
    options
}

fn open(dir: &Path, remote: Remote) -> Durable<u64, u64> {
    Durable::open(dir, || 0, add, options(remote)).unwrap()
}

/// The first sequence number of the directory's active (newest) segment.
fn active_first_seq(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .max()
        .unwrap()
}

fn round_trip(target: Target, base: &Path) {
    let first_dir = base.join("first");
    let mut state = open(&first_dir, target.remote("state"));
    for n in 1..=150 {
        state.apply(&n).unwrap();
    }
    state.snapshot().unwrap();
    for n in 151..=400 {
        state.apply(&n).unwrap();
    }
    let manifest = state.sync_remote().unwrap();
    // The snapshot asked for a round in the background; this one may have been served with it.
    assert!(manifest.generation >= 1);
    assert!(!manifest.segments.is_empty());
    // What the remote holds: the snapshot and the sealed segments, up to the active one.
    let uploaded_up_to = active_first_seq(&first_dir) - 1;
    assert!(
        uploaded_up_to > 150 && uploaded_up_to < 400,
        "{uploaded_up_to}"
    );
    drop(state);

    let second_dir = base.join("second");
    let mut restored = open(&second_dir, target.remote("state"));
    assert_eq!(restored.last_seq(), uploaded_up_to);
    assert_eq!(*restored.state(), expected(uploaded_up_to));
    assert_eq!(
        restored
            .recovery()
            .snapshots
            .snapshot
            .as_ref()
            .unwrap()
            .last_seq,
        150
    );
    // It goes on from there, and its uploads continue the same prefix's generations.
    let next = restored.apply(&(uploaded_up_to + 1)).unwrap();
    assert_eq!(next, uploaded_up_to + 1);
    restored.snapshot().unwrap();
    let manifest = restored.sync_remote().unwrap();
    assert!(manifest.generation >= 3);
    drop(restored);
    let third = open(&base.join("third"), target.remote("state"));
    assert_eq!(*third.state(), expected(uploaded_up_to + 1));
}

fn second_writer_refused(target: Target, base: &Path) {
    let mut first = open(&base.join("a"), target.remote("shared"));
    first.apply(&1).unwrap();
    first.snapshot().unwrap();
    let taken = first.sync_remote().unwrap().generation;

    // A second machine restores the same prefix and takes it over.
    let mut second = open(&base.join("b"), target.remote("shared"));
    assert_eq!(*second.state(), 1);
    second.apply(&2).unwrap();
    assert_eq!(second.sync_remote().unwrap().generation, taken + 1);

    // The first writer's next manifest would be that generation too: refused, typed.
    first.apply(&3).unwrap();
    let err = first.sync_remote().unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Remote(RemoteError::OtherWriter { generation }) if generation == taken + 1
        ),
        "{err:?}"
    );
    // The remote still holds the second writer's state.
    let remote = target.remote("shared");
    assert_eq!(
        remote.newest_manifest().unwrap().unwrap().generation,
        taken + 1
    );

    // A directory with state of its own but no upload record cannot claim a used prefix.
    let third_dir = base.join("c");
    drop(
        Durable::open(&third_dir, || 0, add, {
            let mut o = options(target.remote("elsewhere"));
            o.remote = None;
            o
        })
        .unwrap(),
    );
    let third = open(&third_dir, target.remote("shared"));
    assert!(matches!(
        third.sync_remote(),
        Err(StateError::Remote(RemoteError::OtherWriter {
            generation: 1
        }))
    ));
}

fn pruning_leaves_nothing(target: Target, base: &Path) {
    let dir = base.join("state");
    let mut state = open(&dir, target.remote("pruned"));
    for n in 1..=300 {
        state.apply(&n).unwrap();
    }
    let first = state.sync_remote().unwrap();
    assert!(
        first.snapshot.is_none() && first.segments.len() >= 3,
        "{first:?}"
    );
    state.snapshot().unwrap();
    for n in 301..=320 {
        state.apply(&n).unwrap();
    }
    let manifest = state.sync_remote().unwrap();
    let remote = target.remote("pruned");
    let mut named: Vec<String> = manifest
        .snapshot
        .iter()
        .chain(&manifest.segments)
        .map(|(name, _)| name.clone())
        .collect();
    named.push(format!("manifest-{:020}", manifest.generation));
    named.sort();
    let listed: Vec<String> = remote.list().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        listed, named,
        "the remote holds exactly what its manifest names"
    );
    // Every segment the snapshot covers is gone from the remote as from the disk.
    for (name, _) in &first.segments {
        assert_eq!(listed.contains(name), dir.join(name).exists(), "{name}");
    }
    assert!(
        first
            .segments
            .iter()
            .any(|(name, _)| !listed.contains(name))
    );
}

/// With no snapshot and no `sync_remote`, sealing a segment is enough for it to go up.
fn sealed_segments_go_up_in_the_background(target: Target, base: &Path) {
    let dir = base.join("state");
    let state = {
        let mut state = open(&dir, target.remote("background"));
        for n in 1..=300 {
            state.apply(&n).unwrap();
        }
        state
    };
    let remote = target.remote("background");
    // The uploader runs on its own; this waits for it, and fails (never passes) if it never comes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let manifest = loop {
        if let Some(manifest) = remote.newest_manifest().unwrap()
            && manifest.next_seq == active_first_seq(&dir)
        {
            break manifest;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no manifest naming every sealed segment appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(manifest.segments.len() >= 3 && manifest.snapshot.is_none());
    drop(state);
    let restored = open(&base.join("restored"), target.remote("background"));
    assert_eq!(restored.last_seq(), manifest.next_seq - 1);
    assert_eq!(*restored.state(), expected(manifest.next_seq - 1));
}

#[test]
fn file_sealed_segments_go_up_in_the_background() {
    let base = scratch("file-background");
    sealed_segments_go_up_in_the_background(Target::file(&base), &base);
}

#[test]
fn seaweedfs_sealed_segments_go_up_in_the_background() {
    let base = scratch("s3-background");
    sealed_segments_go_up_in_the_background(Target::S3(Seaweed::start("background")), &base);
}

/// A reader asking for the newest manifest while a writer publishes round after round (each
/// deleting the manifest before it) always gets one, never one older than it got before, and
/// at the end the one naming every event.
fn newest_manifest_while_a_writer_publishes(target: Target, base: &Path, rounds: u64) {
    let mut state = open(&base.join("state"), target.remote("racing"));
    state.apply(&1).unwrap();
    state.sync_remote().unwrap();
    let reader = target.remote("racing");
    let done = std::sync::atomic::AtomicBool::new(false);
    let reads = std::thread::scope(|scope| {
        let reading = scope.spawn(|| {
            let (mut reads, mut newest) = (0u64, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let manifest = reader.newest_manifest().unwrap().expect("a manifest");
                assert!(
                    manifest.generation >= newest,
                    "{} after {newest}",
                    manifest.generation
                );
                newest = manifest.generation;
                reads += 1;
            }
            reads
        });
        for n in 2..=rounds {
            state.apply(&n).unwrap();
            // With its tail, so that every round publishes (and then deletes) something new.
            state.wait_remote(state.last_seq()).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reading.join().unwrap()
    });
    assert!(reads > 0);
    let newest = reader.newest_manifest().unwrap().unwrap();
    assert_eq!(newest.next_seq, state.last_seq() + 1);
}

#[test]
fn file_newest_manifest_is_read_while_a_writer_publishes() {
    let base = scratch("file-racing");
    newest_manifest_while_a_writer_publishes(Target::file(&base), &base, 400);
}

#[test]
fn seaweedfs_newest_manifest_is_read_while_a_writer_publishes() {
    let base = scratch("s3-racing");
    newest_manifest_while_a_writer_publishes(Target::S3(Seaweed::start("racing")), &base, 100);
}

/// A prefix holding a segment but no manifest (a first upload that never published) has no
/// newest manifest: the listings it takes again find none, and it gives `None`, not an error.
#[test]
fn file_a_segment_without_a_manifest_is_no_manifest() {
    let base = scratch("file-no-manifest");
    let remote = Target::file(&base).remote("unpublished");
    remote
        .put(
            "00000000000000000001.log",
            vec![bytes::Bytes::from_static(b"x")],
        )
        .unwrap();
    assert!(remote.newest_manifest().unwrap().is_none());
}

/// A snapshot larger than one part goes up as a multipart upload and comes back whole.
fn large_snapshot_round_trip(target: Target, base: &Path) {
    let options = || {
        let mut options = DurableOptions::default();
        options
            .registry
            .register_type::<Vec<u8>>("test.Blob")
            .unwrap();
        options.remote = Some(target.remote("large"));
        options
    };
    let append = |blob: &mut Vec<u8>, more: &Vec<u8>| blob.extend_from_slice(more);
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut state = Durable::open(base.join("a"), Vec::new, append, options()).unwrap();
    for _ in 0..20 {
        state.apply(&chunk).unwrap();
    }
    state.snapshot().unwrap();
    let manifest = state.sync_remote().unwrap();
    let (_, len) = manifest.snapshot.clone().unwrap();
    assert!(len > 16 << 20, "{len}: more than two 8 MiB parts");
    let uploaded = state.state().clone();
    drop(state);
    let restored = Durable::open(base.join("b"), Vec::new, append, options()).unwrap();
    assert_eq!(restored.state().len(), 20 << 20);
    assert!(restored.state() == &uploaded);
}

#[test]
fn file_large_snapshot_goes_up_in_parts_and_comes_back() {
    let base = scratch("file-large");
    large_snapshot_round_trip(Target::file(&base), &base);
}

#[test]
fn seaweedfs_large_snapshot_goes_up_in_parts_and_comes_back() {
    let base = scratch("s3-large");
    large_snapshot_round_trip(Target::S3(Seaweed::start("large")), &base);
}

#[test]
fn file_round_trip_onto_a_fresh_directory() {
    let base = scratch("file-round-trip");
    round_trip(Target::file(&base), &base);
}

#[test]
fn file_second_writer_is_refused() {
    let base = scratch("file-second-writer");
    second_writer_refused(Target::file(&base), &base);
}

#[test]
fn file_pruning_leaves_nothing_behind() {
    let base = scratch("file-pruning");
    pruning_leaves_nothing(Target::file(&base), &base);
}

#[test]
fn file_bad_url_is_a_typed_error() {
    let err = Remote::open("ftp://example/x", Vec::<(String, String)>::new()).unwrap_err();
    assert!(matches!(err, RemoteError::Url { .. }), "{err:?}");
}

#[test]
fn seaweedfs_round_trip_onto_a_fresh_directory() {
    let base = scratch("s3-round-trip");
    round_trip(Target::S3(Seaweed::start("round-trip")), &base);
}

#[test]
fn seaweedfs_second_writer_is_refused() {
    let base = scratch("s3-second-writer");
    second_writer_refused(Target::S3(Seaweed::start("second-writer")), &base);
}

#[test]
fn seaweedfs_pruning_leaves_nothing_behind() {
    let base = scratch("s3-pruning");
    pruning_leaves_nothing(Target::S3(Seaweed::start("pruning")), &base);
}

#[test]
fn seaweedfs_refused_credentials_and_unreachable_endpoint_are_typed_errors() {
    let server = Seaweed::start("credentials");
    let wrong = Remote::open(
        &server.url("x"),
        server.options(support::seaweed::ACCESS_KEY, "wrong"),
    )
    .unwrap();
    let err = wrong.list().unwrap_err();
    assert!(matches!(err, RemoteError::Refused { .. }), "{err:?}");
    let unknown = Remote::open(&server.url("x"), server.options("nobody", "nothing")).unwrap();
    assert!(matches!(
        unknown.list().unwrap_err(),
        RemoteError::Refused { .. }
    ));

    // Restoring through refused credentials fails the open, typed, and creates nothing.
    let base = scratch("s3-credentials");
    let dir = base.join("state");
    let err = Durable::open(&dir, || 0u64, add, options(wrong)).unwrap_err();
    assert!(
        matches!(err, StateError::Remote(RemoteError::Refused { .. })),
        "{err:?}"
    );

    drop(server);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options: Vec<(String, String)> = Seaweed::options_for_port(port);
    let unreachable = Remote::open("s3://pontoon/x", options).unwrap();
    let err = unreachable.list().unwrap_err();
    assert!(matches!(err, RemoteError::Store { .. }), "{err:?}");
}

/// What the manifest's exclusion rests on: the server refuses a second create of one object
/// (`If-None-Match: *`), as object_store's `PutMode::Create` sends it.
#[test]
fn seaweedfs_refuses_a_second_create_of_one_object() {
    use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
    let server = Seaweed::start("if-none-match");
    let mut builder =
        object_store::aws::AmazonS3Builder::new().with_bucket_name(support::seaweed::BUCKET);
    for (key, value) in server.good_options() {
        builder = builder.with_config(key.parse().unwrap(), value);
    }
    let store = builder.build().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = object_store::path::Path::from("exclusive/manifest-00000000000000000001");
    let create = || {
        runtime.block_on(store.put_opts(
            &path,
            PutPayload::from_static(b"one"),
            PutOptions::from(PutMode::Create),
        ))
    };
    let first = create().unwrap();
    let err = create().unwrap_err();
    assert!(
        matches!(
            err,
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
        ),
        "{err:?}"
    );
    let kept = runtime
        .block_on(async { store.get(&path).await?.bytes().await })
        .unwrap();
    assert_eq!(&kept[..], b"one");

    // If-Match too (PutMode::Update), which the manifest does not rely on: a stale e-tag is
    // refused, the current one accepted.
    let update = |e_tag: Option<String>| {
        let version = object_store::UpdateVersion {
            e_tag,
            version: None,
        };
        runtime.block_on(store.put_opts(
            &path,
            PutPayload::from_static(b"two"),
            PutOptions::from(PutMode::Update(version)),
        ))
    };
    let err = update(Some("\"not-the-e-tag\"".into())).unwrap_err();
    assert!(
        matches!(err, object_store::Error::Precondition { .. }),
        "{err:?}"
    );
    update(first.e_tag).unwrap();
}

/// A remote's manifest is hostile input: a length past what the log would ever write, or text
/// that is not a manifest, fails the restore, typed, before anything is downloaded.
#[test]
fn file_hostile_manifests_fail_the_restore() {
    let base = scratch("file-hostile");
    let target = Target::file(&base);
    let cases: [(&str, &[u8]); 3] = [
        (
            "huge",
            b"pontoon-remote-manifest 1\ngeneration 1\nnext_seq 5\nsegment 00000000000000000001.log 99999999999999999\n",
        ),
        ("garbage", b"\x00\xffnot a manifest"),
        (
            "escape",
            b"pontoon-remote-manifest 1\ngeneration 1\nnext_seq 5\nsnapshot ../../x.snap 10\n",
        ),
    ];
    for (prefix, bytes) in cases {
        target.remote(prefix); // creates the directory
        let Target::File(root) = &target else {
            unreachable!()
        };
        std::fs::write(
            root.join(prefix).join("manifest-00000000000000000001"),
            bytes,
        )
        .unwrap();
        let dir = base.join(format!("state-{prefix}"));
        let err = Durable::open(&dir, || 0, add, options(target.remote(prefix))).unwrap_err();
        assert!(
            matches!(err, StateError::Remote(RemoteError::Manifest { .. })),
            "{prefix}: {err:?}"
        );
        let restored: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.collect())
            .unwrap_or_default();
        assert!(restored.is_empty(), "{prefix}: nothing downloaded");
    }
}

fn acknowledged_options(remote: Remote) -> DurableOptions {
    let mut options = options(remote);
    options.remote_durability = RemoteDurability::Acknowledged;
    options
}

/// Restores the remote's newest state onto a fresh directory: what a new machine would get.
fn restore_fresh(base: &Path, target: &Target, prefix: &str, name: &str) -> Durable<u64, u64> {
    Durable::open(base.join(name), || 0, add, options(target.remote(prefix))).unwrap()
}

/// Under `Acknowledged`, every event `apply` returned is on the remote: a machine lost right
/// after any `apply` (the first state is never closed here) is restored exactly to it,
/// sealed segments, tail parts of the active segment and a snapshot alike; the parts stay few.
fn acknowledged_applies_are_on_the_remote(target: Target, base: &Path) {
    let mut state = Durable::open(
        base.join("writer"),
        || 0,
        add,
        acknowledged_options(target.remote("acked")),
    )
    .unwrap();
    let mut restores = 0;
    for n in 1..=260u64 {
        assert_eq!(state.apply(&n).unwrap(), n);
        if [1, 2, 37, 100, 200, 260].contains(&n) {
            let manifest = target.remote("acked").newest_manifest().unwrap().unwrap();
            assert_eq!(manifest.next_seq, n + 1, "{manifest:?}");
            assert!(
                manifest.tail.len() <= 12,
                "{} tail parts",
                manifest.tail.len()
            );
            restores += 1;
            let restored = restore_fresh(base, &target, "acked", &format!("restored-{n}"));
            assert_eq!((restored.last_seq(), *restored.state()), (n, expected(n)));
        }
        if n == 150 {
            state.snapshot().unwrap();
        }
    }
    assert_eq!(restores, 6);
    // A background round (the snapshot's) never takes the acknowledged tail back.
    state.snapshot().unwrap();
    let manifest = state.sync_remote().unwrap();
    assert_eq!(manifest.next_seq, 261);
    let status = state.remote_status().unwrap();
    assert_eq!(status.failed_rounds, 0, "{status:?}");
    assert!(status.rounds >= 260);
    // The remote holds exactly what its manifest names: replaced parts are deleted.
    let mut named: Vec<String> = manifest
        .snapshot
        .iter()
        .chain(&manifest.segments)
        .chain(&manifest.tail)
        .map(|(name, _)| name.clone())
        .collect();
    named.push(format!("manifest-{:020}", manifest.generation));
    named.sort();
    let listed: Vec<String> = target
        .remote("acked")
        .list()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(listed, named);
    let restored = restore_fresh(base, &target, "acked", "restored-end");
    assert_eq!(*restored.state(), expected(260));
    drop((state, restored));
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn file_acknowledged_applies_are_on_the_remote() {
    let base = scratch("file-acked");
    acknowledged_applies_are_on_the_remote(Target::file(&base), &base);
}

#[test]
fn seaweedfs_acknowledged_applies_are_on_the_remote() {
    let base = scratch("s3-acked");
    acknowledged_applies_are_on_the_remote(Target::S3(Seaweed::start("acked")), &base);
}

/// `wait_remote` puts every event submitted before it on the remote in one round, and from
/// then on no round takes them back, not even after the writer is reopened.
fn wait_remote_shares_one_round(target: Target, base: &Path) {
    let dir = base.join("writer");
    // One segment: no background round (a sealed segment's) joins in.
    let open = |dir: &Path, remote: Remote| {
        let mut options = options(remote);
        options.log.segment_bytes = 1 << 20;
        Durable::open(dir, || 0, add, options).unwrap()
    };
    {
        let mut state = open(&dir, target.remote("batched"));
        let mut last = 0;
        for n in 1..=50 {
            last = state.submit(&n).unwrap();
        }
        let rounds = state.remote_status().unwrap().rounds;
        let manifest = state.wait_remote(last).unwrap();
        assert_eq!(manifest.next_seq, 51);
        assert!(!manifest.tail.is_empty());
        assert_eq!(state.remote_status().unwrap().rounds, rounds + 1);
        assert_eq!(state.sync_remote().unwrap().next_seq, 51);
    }
    // Reopened, its first round still names the tail it published before.
    let state = open(&dir, target.remote("batched"));
    assert_eq!(state.sync_remote().unwrap().next_seq, 51);
    let restored = restore_fresh(base, &target, "batched", "restored");
    assert_eq!((restored.last_seq(), *restored.state()), (50, expected(50)));
}

#[test]
fn file_wait_remote_shares_one_round() {
    let base = scratch("file-batched");
    wait_remote_shares_one_round(Target::file(&base), &base);
}

#[test]
fn seaweedfs_wait_remote_shares_one_round() {
    let base = scratch("s3-batched");
    wait_remote_shares_one_round(Target::S3(Seaweed::start("batched")), &base);
}

/// Two opens racing for one empty directory restore it once: one opens, the other finds the
/// directory restored and held (`Locked`), never a half-restored or doubly-restored one.
#[test]
fn file_racing_restores_restore_once() {
    let base = scratch("file-race");
    let target = Target::file(&base);
    {
        let mut state = open(&base.join("writer"), target.remote("race"));
        for n in 1..=100 {
            state.apply(&n).unwrap();
        }
        state.snapshot().unwrap();
        state.sync_remote().unwrap();
    }
    for round in 0..8 {
        let dir = base.join(format!("restored-{round}"));
        let barrier = std::sync::Barrier::new(2);
        let outcomes: Vec<Result<u64, StateError>> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        let remote = target.remote("race");
                        barrier.wait();
                        Durable::open(&dir, || 0, add, options(remote)).map(|s| *s.state())
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for outcome in &outcomes {
            match outcome {
                Ok(state) => assert_eq!(*state, expected(100)),
                Err(StateError::Log(pontoon_persist::LogError::Open(
                    pontoon_persist::OpenError::Locked { .. },
                ))) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        assert!(outcomes.iter().any(Result::is_ok), "round {round}");
        let restored = Durable::open(&dir, || 0, add, options(target.remote("race"))).unwrap();
        assert_eq!(*restored.state(), expected(100));
    }
}

/// A background round that fails is counted and its error kept; dropping the state returns
/// although the server never answers (its request is abandoned after the close timeout).
#[test]
fn failed_background_rounds_are_reported_and_drop_is_bounded() {
    // Accepts connections (the kernel does, into the backlog) and never answers one.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut timeouts = RemoteTimeouts::default();
    timeouts.request = std::time::Duration::from_secs(3600);
    timeouts.retry = std::time::Duration::from_secs(3600);
    timeouts.close = std::time::Duration::from_millis(200);
    let remote = Remote::open_with(
        "s3://pontoon/silent",
        Seaweed::options_for_port(port),
        timeouts,
    )
    .unwrap();
    let base = scratch("silent");
    let dir = base.join("state");
    // The directory holds state already, so opening does not try to restore.
    drop(
        Durable::open(&dir, || 0, add, {
            let mut o = options(target_less());
            o.remote = None;
            o
        })
        .unwrap(),
    );
    let mut state = Durable::open(&dir, || 0, add, options(remote)).unwrap();
    state.apply(&1).unwrap();
    state.snapshot().unwrap(); // asks for a background round, which hangs
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(state);
        done.send(()).unwrap();
    });
    dropped
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("dropping the state did not return: its uploader waits on a silent server");

    // An endpoint that refuses connections: the round fails, and says so.
    drop(silent);
    let mut timeouts = RemoteTimeouts::default();
    timeouts.max_retries = 0;
    let remote = Remote::open_with(
        "s3://pontoon/refused",
        Seaweed::options_for_port(port),
        timeouts,
    )
    .unwrap();
    let mut state = Durable::open(&dir, || 0, add, options(remote)).unwrap();
    state.apply(&2).unwrap();
    state.snapshot().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        let status = state.remote_status().unwrap();
        if status.failed_rounds > 0 {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the background round never failed: {status:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.generation, 0);
    let error = status.last_error.unwrap();
    assert!(error.contains("listing"), "{error}");
}

/// A remote nobody uses (for options that are then cleared).
fn target_less() -> Remote {
    Remote::open("s3://unused/x", Seaweed::options_for_port(9)).unwrap()
}

/// The server killed in the middle of a large (multipart) upload and restarted on its data and
/// ports: nothing acknowledged is lost, nothing half-written is read, and uploads resume.
#[test]
fn seaweedfs_killed_mid_upload_and_restarted() {
    let base = scratch("s3-killed");
    let server = std::sync::Arc::new(std::sync::Mutex::new(Seaweed::start("killed")));
    let (url, good) = {
        let server = server.lock().unwrap();
        (server.url("killed"), server.good_options())
    };
    let remote = || {
        let mut timeouts = RemoteTimeouts::default();
        // A dead server fails a round quickly.
        timeouts.max_retries = 3;
        timeouts.retry = std::time::Duration::from_secs(5);
        timeouts.request = std::time::Duration::from_secs(60);
        Remote::open_with(&url, good.clone(), timeouts).unwrap()
    };
    let options = |remote: Remote| {
        let mut options = DurableOptions::default();
        options
            .registry
            .register_type::<Vec<u8>>("test.Blob")
            .unwrap();
        options.remote = Some(remote);
        options.remote_durability = RemoteDurability::Acknowledged;
        options
    };
    let append = |blob: &mut Vec<u8>, more: &Vec<u8>| blob.extend_from_slice(more);
    let restore =
        |name: &str| Durable::open(base.join(name), Vec::new, append, options(remote())).unwrap();
    let mut state =
        Durable::open(base.join("writer"), Vec::new, append, options(remote())).unwrap();
    for n in 0..3u8 {
        state.apply(&vec![n; 100]).unwrap();
    }
    let acknowledged = state.state().clone();
    let acknowledged_seq = state.last_seq();

    // 40 MiB submitted (logged, not acknowledged), then put on the remote by one round: a
    // multipart upload of 8 MiB parts, during which the server is killed.
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut last = 0;
    for _ in 0..40 {
        last = state.submit(&chunk).unwrap();
    }
    let baseline = server.lock().unwrap().data_bytes();
    let killer = {
        let server = std::sync::Arc::clone(&server);
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                let mut server = server.lock().unwrap();
                // More than a part has reached the server's disk: the upload is under way.
                if server.data_bytes() > baseline + (12 << 20) {
                    server.kill();
                    return true;
                }
                drop(server);
                if std::time::Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let err = state.wait_remote(last).unwrap_err();
    assert!(
        killer.join().unwrap(),
        "the upload never reached the server's disk"
    );
    assert!(
        matches!(err, StateError::Remote(RemoteError::Store { .. })),
        "{err:?}"
    );
    // While the server is down, an acknowledged apply fails, typed, and stands locally.
    let err = state.apply(&vec![9; 10]).unwrap_err();
    assert!(
        matches!(err, StateError::NotOnRemote { seq, .. } if seq == last + 1),
        "{err:?}"
    );

    server.lock().unwrap().restart();
    // A reader sees the last published state: exactly what was acknowledged, no part of the
    // killed upload (it is named by no manifest, and no object of it is complete).
    let manifest = remote().newest_manifest().unwrap().unwrap();
    assert_eq!(manifest.next_seq, acknowledged_seq + 1);
    let listed: std::collections::HashMap<String, u64> =
        remote().list().unwrap().into_iter().collect();
    for (name, len) in manifest
        .snapshot
        .iter()
        .chain(&manifest.segments)
        .chain(&manifest.tail)
    {
        assert_eq!(listed.get(name), Some(len), "{name}");
    }
    let reader = restore("reader");
    assert_eq!(reader.last_seq(), acknowledged_seq);
    assert!(reader.state() == &acknowledged);
    drop(reader);

    // Uploads resume: the next round puts everything logged on the remote.
    let manifest = state
        .wait_remote(last + 1)
        .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert_eq!(manifest.next_seq, last + 2);
    state.apply(&vec![10; 10]).unwrap();
    state.snapshot().unwrap();
    let manifest = state.sync_remote().unwrap();
    assert!(manifest.snapshot.is_some());
    let everything = state.state().clone();
    let restored = restore("restored");
    assert_eq!(restored.last_seq(), last + 2);
    assert!(restored.state() == &everything);
    assert_eq!(state.remote_status().unwrap().last_error, None);
    drop((state, restored));
    std::fs::remove_dir_all(&base).unwrap();
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

// A bare `Log` with a remote.

fn log_options() -> LogOptions {
    let mut options = LogOptions::default();
    // Small segments, so that a few hundred records seal several.
    options.segment_bytes = 4096;
    options
}

fn open_log(dir: &Path, remote: Remote, durability: RemoteDurability) -> Log {
    Log::open_remote(dir, log_options(), remote, durability)
        .unwrap()
        .0
}

/// Record `i`'s message: its number in the header and a frame of bytes that differ per record.
fn log_message(i: u64) -> pontoon_wire::Message {
    let frame: Vec<u8> = (0..(i % 97) as usize + 1)
        .map(|b| (b as u64 * 31 + i) as u8)
        .collect();
    pontoon_wire::Message::new(
        pontoon_wire::Header::from_serde(&i).unwrap(),
        vec![pontoon_wire::Frame::from(frame)],
    )
}

fn append_log(log: &Log, range: std::ops::RangeInclusive<u64>) {
    for i in range {
        assert_eq!(log.append((i % 5) as u32, &log_message(i)).unwrap(), i);
    }
}

/// The names of the segment objects (`<first seq>.log`) under a prefix.
fn segment_objects(remote: &Remote) -> Vec<String> {
    remote
        .list()
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.ends_with(".log"))
        .collect()
}

/// A log's sealed segments go up in the background and come back onto a fresh directory byte
/// for byte: every record, the same kinds and messages, and the log goes on numbering after
/// them.
fn log_round_trip(target: Target, base: &Path) {
    let first_dir = base.join("first");
    let log = open_log(
        &first_dir,
        target.remote("log"),
        RemoteDurability::Background,
    );
    append_log(&log, 1..=300);
    let manifest = log.sync_remote().unwrap();
    assert!(manifest.snapshot.is_none(), "{manifest:?}");
    assert!(manifest.segments.len() >= 2, "{manifest:?}");
    let uploaded_up_to = active_first_seq(&first_dir) - 1;
    assert_eq!(manifest.next_seq, uploaded_up_to + 1);
    assert!(
        uploaded_up_to > 100 && uploaded_up_to < 300,
        "{uploaded_up_to}"
    );
    let written = log.read_all().unwrap();
    drop(log);

    let second_dir = base.join("second");
    let restored = open_log(
        &second_dir,
        target.remote("log"),
        RemoteDurability::Background,
    );
    assert_eq!(restored.next_seq(), uploaded_up_to + 1);
    let read = restored.read_all().unwrap();
    assert_eq!(read.len() as u64, uploaded_up_to);
    for (got, want) in read.iter().zip(&written) {
        assert_eq!(
            (got.seq, got.kind, &got.message),
            (want.seq, want.kind, &want.message)
        );
    }
    // The sealed segment files themselves are the same bytes.
    for (name, _) in &manifest.segments {
        assert_eq!(
            std::fs::read(second_dir.join(name)).unwrap(),
            std::fs::read(first_dir.join(name)).unwrap(),
            "{name}"
        );
    }
    // It goes on where the remote's copy ends, and uploads as its writer now.
    append_log(&restored, uploaded_up_to + 1..=uploaded_up_to + 200);
    let manifest = restored.sync_remote().unwrap();
    assert!(manifest.next_seq > uploaded_up_to + 1, "{manifest:?}");
    assert_eq!(restored.remote_status().unwrap().failed_rounds, 0);
    drop(restored);
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn file_log_round_trip_onto_a_fresh_directory() {
    let base = scratch("file-log-round-trip");
    log_round_trip(Target::file(&base), &base);
}

#[test]
fn seaweedfs_log_round_trip_onto_a_fresh_directory() {
    let base = scratch("s3-log-round-trip");
    log_round_trip(Target::S3(Seaweed::start("log-round-trip")), &base);
}

/// Under `Acknowledged`, every record `append` returned is on the remote: the writer is never
/// closed, and a fresh directory restored after any append has every record up to it.
fn log_acknowledged_appends_are_on_the_remote(target: Target, base: &Path) {
    let log = open_log(
        &base.join("writer"),
        target.remote("acked-log"),
        RemoteDurability::Acknowledged,
    );
    for n in 1..=120u64 {
        append_log(&log, n..=n);
        if [1, 2, 50, 120].contains(&n) {
            let restored = open_log(
                &base.join(format!("restored-{n}")),
                target.remote("acked-log"),
                RemoteDurability::Background,
            );
            let read = restored.read_all().unwrap();
            assert_eq!(read.len() as u64, n);
            assert_eq!(read.last().unwrap().message, log_message(n));
            assert_eq!(restored.next_seq(), n + 1);
        }
    }
    let status = log.remote_status().unwrap();
    assert_eq!(status.failed_rounds, 0, "{status:?}");
    assert!(status.rounds >= 120, "{status:?}");
    drop(log);
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn file_log_acknowledged_appends_are_on_the_remote() {
    let base = scratch("file-log-acked");
    log_acknowledged_appends_are_on_the_remote(Target::file(&base), &base);
}

#[test]
fn seaweedfs_log_acknowledged_appends_are_on_the_remote() {
    let base = scratch("s3-log-acked");
    log_acknowledged_appends_are_on_the_remote(Target::S3(Seaweed::start("log-acked")), &base);
}

/// Pruning a log deletes its pruned segments from the remote at the next round: the prefix
/// lists exactly the segments still kept locally (sealed), and a restore starts where the
/// pruned log does.
fn log_pruning_deletes_remote_segments(target: Target, base: &Path) {
    let dir = base.join("log");
    let log = open_log(
        &dir,
        target.remote("pruned-log"),
        RemoteDurability::Background,
    );
    append_log(&log, 1..=300);
    log.sync_remote().unwrap();
    let before = segment_objects(&target.remote("pruned-log"));
    assert!(before.len() >= 3, "{before:?}");
    let removed = log.prune_before(150).unwrap();
    assert!(!removed.is_empty());
    let manifest = log.sync_remote().unwrap();
    let after = segment_objects(&target.remote("pruned-log"));
    for path in &removed {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(before.contains(&name), "{name} was on the remote");
        assert!(!after.contains(&name), "{name} is still on the remote");
    }
    let named: Vec<String> = manifest.segments.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(after, named);
    assert_eq!(after.len() + removed.len(), before.len());
    let first_seq = log.first_seq();
    drop(log);
    let restored = open_log(
        &base.join("restored"),
        target.remote("pruned-log"),
        RemoteDurability::Background,
    );
    assert_eq!(restored.first_seq(), first_seq);
    assert_eq!(
        restored.read_all().unwrap()[0].message,
        log_message(first_seq)
    );
    drop(restored);
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn file_log_pruning_deletes_remote_segments() {
    let base = scratch("file-log-pruning");
    log_pruning_deletes_remote_segments(Target::file(&base), &base);
}

#[test]
fn seaweedfs_log_pruning_deletes_remote_segments() {
    let base = scratch("s3-log-pruning");
    log_pruning_deletes_remote_segments(Target::S3(Seaweed::start("log-pruning")), &base);
}

/// Two writers on one prefix: the second (restored from it) publishes, and the first one's
/// next acknowledged append is `NotOnRemote` with `OtherWriter` (the record stands locally),
/// as is its `sync_remote`; a log that never uploaded there is refused too.
fn log_second_writer_refused(target: Target, base: &Path) {
    let first = open_log(
        &base.join("first"),
        target.remote("shared-log"),
        RemoteDurability::Acknowledged,
    );
    append_log(&first, 1..=5);
    let taken = target
        .remote("shared-log")
        .newest_manifest()
        .unwrap()
        .unwrap()
        .generation;
    let second = open_log(
        &base.join("second"),
        target.remote("shared-log"),
        RemoteDurability::Acknowledged,
    );
    assert_eq!(second.next_seq(), 6);
    append_log(&second, 6..=6);
    let err = first.append(0, &log_message(6)).unwrap_err();
    match &err {
        AppendError::NotOnRemote { seq: 6, source } => assert!(
            matches!(**source, RemoteError::OtherWriter { generation } if generation == taken + 1),
            "{source:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(first.next_seq(), 7, "the record stands locally");
    assert!(matches!(
        first.sync_remote(),
        Err(AppendError::Remote(e)) if matches!(*e, RemoteError::OtherWriter { .. })
    ));
    // A log with a history of its own, never uploaded to this prefix.
    let (stranger, _) = Log::open(base.join("stranger"), log_options()).unwrap();
    append_log(&stranger, 1..=3);
    drop(stranger);
    let stranger = open_log(
        &base.join("stranger"),
        target.remote("shared-log"),
        RemoteDurability::Background,
    );
    assert!(matches!(
        stranger.sync_remote(),
        Err(AppendError::Remote(e)) if matches!(*e, RemoteError::OtherWriter { generation: 1 })
    ));
    // The second writer's state is what the remote holds.
    let manifest = target
        .remote("shared-log")
        .newest_manifest()
        .unwrap()
        .unwrap();
    assert_eq!((manifest.generation, manifest.next_seq), (taken + 1, 7));
    drop((first, second, stranger));
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn file_log_second_writer_is_refused() {
    let base = scratch("file-log-second-writer");
    log_second_writer_refused(Target::file(&base), &base);
}

#[test]
fn seaweedfs_log_second_writer_is_refused() {
    let base = scratch("s3-log-second-writer");
    log_second_writer_refused(Target::S3(Seaweed::start("log-second-writer")), &base);
}

/// A `Durable`'s prefix is not a log's: a bare log refuses to restore from a manifest naming a
/// snapshot (`NotALog`, nothing written), and refuses to upload to it from a directory that
/// was the state's. A log's prefix is a `Durable` state with no snapshot yet: one whose
/// records are its events opens from it; one whose records are not is refused by the replay.
#[test]
fn file_log_and_durable_prefixes_are_not_confused() {
    let base = scratch("file-confused");
    let target = Target::file(&base);
    let mut state = open(&base.join("state"), target.remote("durable"));
    for n in 1..=50 {
        state.apply(&n).unwrap();
    }
    state.snapshot().unwrap();
    assert!(state.sync_remote().unwrap().snapshot.is_some());
    drop(state);
    let err = Log::open_remote(
        base.join("as-log"),
        log_options(),
        target.remote("durable"),
        RemoteDurability::Background,
    )
    .unwrap_err();
    assert!(
        matches!(&err, OpenError::Remote(e) if matches!(**e, RemoteError::NotALog { .. })),
        "{err:?}"
    );
    assert!(!base.join("as-log").exists());
    // The state's own directory, opened as a bare log: its first upload is refused.
    let log = open_log(
        &base.join("state"),
        target.remote("durable"),
        RemoteDurability::Background,
    );
    assert!(matches!(
        log.sync_remote(),
        Err(AppendError::Remote(e)) if matches!(*e, RemoteError::NotALog { .. })
    ));
    drop(log);
    let restored = open(&base.join("state-again"), target.remote("durable"));
    assert_eq!(*restored.state(), expected(50));
    drop(restored);

    // A log of events, as a Durable writes them.
    let registry = options(target.remote("events")).registry;
    let log = open_log(
        &base.join("events"),
        target.remote("events"),
        RemoteDurability::Acknowledged,
    );
    for n in 1..=40u64 {
        log.append(
            pontoon_persist::KIND_EVENT,
            &registry.serialize(&n).unwrap(),
        )
        .unwrap();
    }
    drop(log);
    let mut state = open(&base.join("events-state"), target.remote("events"));
    assert_eq!((state.last_seq(), *state.state()), (40, expected(40)));
    state.apply(&41).unwrap();
    state.snapshot().unwrap();
    assert!(state.sync_remote().unwrap().snapshot.is_some());
    drop(state);

    // A log of other records: the replay refuses them, by kind or by content.
    let log = open_log(
        &base.join("other"),
        target.remote("other"),
        RemoteDurability::Acknowledged,
    );
    log.append(7, &log_message(1)).unwrap();
    drop(log);
    let err = Durable::open(
        base.join("other-state"),
        || 0,
        add,
        options(target.remote("other")),
    )
    .unwrap_err();
    assert!(
        matches!(err, StateError::UnexpectedKind { seq: 1, kind: 7 }),
        "{err:?}"
    );
    let log = open_log(
        &base.join("not-events"),
        target.remote("not-events"),
        RemoteDurability::Acknowledged,
    );
    log.append(pontoon_persist::KIND_EVENT, &log_message(1))
        .unwrap();
    drop(log);
    let err = Durable::open(
        base.join("not-events-state"),
        || 0,
        add,
        options(target.remote("not-events")),
    )
    .unwrap_err();
    assert!(
        matches!(err, StateError::DeserializeEvent { seq: 1, .. }),
        "{err:?}"
    );
    std::fs::remove_dir_all(&base).unwrap();
}

/// A bare log's rounds take every sealed segment and no snapshot: a snapshot the application
/// wrote beside its log covers records the log still holds, and neither it nor they are left
/// off the remote. Without a remote, the remote calls are `NoRemote`.
#[test]
fn file_log_uploads_every_sealed_segment_and_no_snapshot() {
    let base = scratch("file-log-no-snapshot");
    let target = Target::file(&base);
    let dir = base.join("log");
    let log = open_log(&dir, target.remote("log"), RemoteDurability::Background);
    append_log(&log, 1..=300);
    log.sync().unwrap();
    pontoon_persist::write_snapshot(&dir, 250, &log_message(0)).unwrap();
    let manifest = log.sync_remote().unwrap();
    assert!(manifest.snapshot.is_none(), "{manifest:?}");
    assert_eq!(manifest.segments[0].0, format!("{:020}.log", 1));
    assert_eq!(manifest.next_seq, active_first_seq(&dir));
    let listed = target.remote("log").list().unwrap();
    assert!(
        !listed.iter().any(|(name, _)| name.ends_with(".snap")),
        "{listed:?}"
    );
    drop(log);

    let (plain, _) = Log::open(base.join("plain"), log_options()).unwrap();
    assert!(matches!(plain.sync_remote(), Err(AppendError::NoRemote)));
    assert!(matches!(plain.wait_remote(1), Err(AppendError::NoRemote)));
    assert!(plain.remote_status().is_none());
    drop(plain);
    std::fs::remove_dir_all(&base).unwrap();
}
