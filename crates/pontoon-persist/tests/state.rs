//! [`Durable`]: reopening gives exactly the state after the last acknowledged event, with or
//! without snapshots and pruning, after a torn tail, and after a crash at any step of writing a
//! snapshot.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::num::NonZeroU64;
use std::path::Path;

use pontoon_family::Registry;
use pontoon_persist::{Durable, DurableOptions, StateError, encode_snapshot, snapshot_file_name};
use serde::{Deserialize, Serialize};

#[path = "support/scratch.rs"]
mod scratch;
use scratch::Scratch;

fn scratch(test: &str) -> Scratch {
    Scratch::unmade(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("state-{test}-{}", std::process::id())),
    )
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Account {
    balance: i64,
    history: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Event {
    Deposit(i64),
    Withdraw(i64),
    Note(String),
}

fn apply(account: &mut Account, event: &Event) {
    match event {
        Event::Deposit(n) => account.balance += n,
        Event::Withdraw(n) => account.balance -= n,
        Event::Note(s) => account.history.push(s.clone()),
    }
}

fn event(i: u64) -> Event {
    match i % 3 {
        0 => Event::Deposit(i as i64 * 10),
        1 => Event::Withdraw(i as i64),
        _ => Event::Note(format!("note {i}")),
    }
}

/// The state after events 1..=n, computed without any persistence.
fn expected(n: u64) -> Account {
    let mut account = Account::default();
    (1..=n).for_each(|i| apply(&mut account, &event(i)));
    account
}

fn open(dir: &Path, mut options: DurableOptions) -> Durable<Account, Event> {
    name_types(&mut options.registry);
    Durable::open(dir, Account::default, apply, options).unwrap()
}

/// Gives the state and event types their stable names, as every `Durable` needs.
fn name_types(registry: &mut Registry) {
    registry.register_type::<Account>("test.Account").unwrap();
    registry.register_type::<Event>("test.Event").unwrap();
}

fn segments(dir: &Path) -> Vec<u64> {
    let mut out: Vec<u64> = list(dir, ".log")
        .iter()
        .map(|n| n.strip_suffix(".log").unwrap().parse().unwrap())
        .collect();
    out.sort();
    out
}

fn list(dir: &Path, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(suffix))
        .collect();
    out.sort();
    out
}

#[test]
fn events_survive_a_drop_without_a_snapshot() {
    let dir = scratch("no-snapshot");
    {
        let mut durable = open(&dir, DurableOptions::default());
        for i in 1..=25 {
            assert_eq!(durable.apply(&event(i)).unwrap(), i);
        }
        assert_eq!(durable.state(), &expected(25));
    }
    let mut durable = open(&dir, DurableOptions::default());
    assert_eq!(durable.state(), &expected(25));
    assert_eq!(durable.last_seq(), 25);
    assert_eq!(durable.recovery().replayed, 25);
    assert!(durable.recovery().snapshots.snapshot.is_none());
    // It goes on from there.
    assert_eq!(durable.apply(&event(26)).unwrap(), 26);
    drop(durable);
    assert_eq!(open(&dir, DurableOptions::default()).state(), &expected(26));
}

#[test]
fn automatic_snapshots_and_pruning_keep_the_state_and_remove_old_segments() {
    let dir = scratch("auto-snapshot");
    let options = || {
        let mut options = DurableOptions::default();
        options.snapshot_every = NonZeroU64::new(10);
        options.log.segment_bytes = 256;
        options
    };
    {
        let mut durable = open(&dir, options());
        for i in 1..=95 {
            durable.apply(&event(i)).unwrap();
        }
    }
    // Snapshots at 10, 20, ..., 90: only the last is kept.
    assert_eq!(list(&dir, ".snap"), vec![snapshot_file_name(90)]);
    let segs = segments(&dir);
    assert!(segs[0] > 1 && segs[0] <= 91, "{segs:?}");
    assert!(segs.len() < 20, "{segs:?}");
    let durable = open(&dir, options());
    assert_eq!(durable.state(), &expected(95));
    assert_eq!(durable.recovery().replayed, 5);
    assert_eq!(
        durable
            .recovery()
            .snapshots
            .snapshot
            .as_ref()
            .unwrap()
            .last_seq,
        90
    );
    drop(durable);

    // Without pruning, old segments stay.
    let dir = scratch("auto-snapshot-no-prune");
    {
        let mut options = options();
        options.prune = false;
        let mut durable = open(&dir, options);
        for i in 1..=25 {
            durable.apply(&event(i)).unwrap();
        }
    }
    assert_eq!(segments(&dir)[0], 1);
    assert_eq!(list(&dir, ".snap").len(), 2);
    assert_eq!(open(&dir, options()).state(), &expected(25));
}

#[test]
fn a_snapshot_on_demand_is_used_on_reopening() {
    let dir = scratch("on-demand");
    {
        let mut durable = open(&dir, DurableOptions::default());
        for i in 1..=7 {
            durable.apply(&event(i)).unwrap();
        }
        durable.snapshot().unwrap();
        durable.apply(&event(8)).unwrap();
    }
    let durable = open(&dir, DurableOptions::default());
    assert_eq!(durable.state(), &expected(8));
    assert_eq!(durable.recovery().replayed, 1);
}

#[test]
fn a_torn_tail_gives_the_state_after_the_last_whole_event() {
    let dir = scratch("torn");
    {
        let mut durable = open(&dir, DurableOptions::default());
        for i in 1..=12 {
            durable.apply(&event(i)).unwrap();
        }
    }
    let last = dir.join(format!("{:020}.log", segments(&dir).last().unwrap()));
    let len = fs::metadata(&last).unwrap().len();
    // Cut the last record in the middle: a few bytes of it remain.
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let mut durable = open(&dir, DurableOptions::default());
    assert_eq!(durable.state(), &expected(11));
    assert!(durable.recovery().log.cut.is_some());
    assert_eq!(durable.apply(&event(12)).unwrap(), 12);
    drop(durable);
    assert_eq!(open(&dir, DurableOptions::default()).state(), &expected(12));
}

/// The steps of writing a snapshot, by hand, up to step `k`: 1 tmp written (a prefix, not
/// synced), 2 tmp synced, 3 renamed, 4 directory synced.
fn snapshot_until(dir: &Path, last_seq: u64, state: &Account, k: usize) {
    let mut registry = Registry::new();
    name_types(&mut registry);
    let message = registry.serialize(state).unwrap();
    let bytes = encode_snapshot(last_seq, &message).unwrap();
    let tmp = dir.join(format!("snapshot-{last_seq:020}.tmp"));
    let mut file = File::create(&tmp).unwrap();
    if k == 1 {
        file.write_all(&bytes[..bytes.len() / 2]).unwrap();
        return;
    }
    file.write_all(&bytes).unwrap();
    file.sync_all().unwrap();
    drop(file);
    if k == 2 {
        return;
    }
    fs::rename(&tmp, dir.join(snapshot_file_name(last_seq))).unwrap();
    if k == 3 {
        return;
    }
    File::open(dir).unwrap().sync_all().unwrap();
}

#[test]
fn a_crash_at_any_step_of_a_snapshot_gives_the_same_state() {
    for k in 1..=4 {
        let dir = scratch(&format!("snapshot-crash-{k}"));
        {
            let mut durable = open(&dir, DurableOptions::default());
            for i in 1..=10 {
                durable.apply(&event(i)).unwrap();
            }
            durable.snapshot().unwrap();
            for i in 11..=20 {
                durable.apply(&event(i)).unwrap();
            }
        }
        snapshot_until(&dir, 20, &expected(20), k);
        let durable = open(&dir, DurableOptions::default());
        assert_eq!(durable.state(), &expected(20), "step {k}");
        let used = durable
            .recovery()
            .snapshots
            .snapshot
            .as_ref()
            .unwrap()
            .last_seq;
        assert_eq!(used, if k <= 2 { 10 } else { 20 }, "step {k}");
        assert_eq!(durable.recovery().replayed, 20 - used);
        assert!(list(&dir, ".tmp").is_empty());
    }
}

#[test]
fn a_damaged_snapshot_falls_back_to_an_older_one_and_a_gap_is_refused() {
    let dir = scratch("damaged");
    {
        let mut options = DurableOptions::default();
        options.prune = false;
        let mut durable = open(&dir, options);
        for i in 1..=10 {
            durable.apply(&event(i)).unwrap();
        }
        durable.snapshot().unwrap();
        for i in 11..=15 {
            durable.apply(&event(i)).unwrap();
        }
        durable.snapshot().unwrap();
    }
    let newest = dir.join(snapshot_file_name(15));
    let mut bytes = fs::read(&newest).unwrap();
    let at = bytes.len() - 1;
    bytes[at] ^= 0x40;
    fs::write(&newest, &bytes).unwrap();
    let durable = open(&dir, DurableOptions::default());
    assert_eq!(durable.state(), &expected(15));
    assert_eq!(durable.recovery().snapshots.damaged.len(), 1);
    assert_eq!(durable.recovery().replayed, 5);
    drop(durable);

    // With the log before the only good snapshot pruned away, the state cannot be rebuilt:
    // opening says so rather than give a wrong state.
    let dir = scratch("gap");
    {
        let mut options = DurableOptions::default();
        options.log.segment_bytes = 128;
        let mut durable = open(&dir, options);
        for i in 1..=10 {
            durable.apply(&event(i)).unwrap();
        }
        durable.snapshot().unwrap();
    }
    assert!(segments(&dir)[0] > 1);
    fs::remove_file(dir.join(snapshot_file_name(10))).unwrap();
    let mut options = DurableOptions::default();
    name_types(&mut options.registry);
    let err = Durable::<Account, Event>::open(&dir, Account::default, apply, options).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Gap {
                snapshot_seq: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_type_without_a_stable_name_is_refused_with_how_to_give_it_one() {
    let dir = scratch("unnamed");
    let err =
        Durable::<Account, Event>::open(&dir, Account::default, apply, DurableOptions::default())
            .unwrap_err();
    assert!(
        matches!(err, StateError::UnnamedType { role: "state", type_name } if type_name.ends_with("Account")),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("register_named") && message.contains("TypeName"),
        "{message}"
    );
    assert!(!dir.exists(), "nothing may be written for a refused type");

    // The state named, the event not.
    let mut options = DurableOptions::default();
    options
        .registry
        .register_type::<Account>("test.Account")
        .unwrap();
    let err = Durable::<Account, Event>::open(&dir, Account::default, apply, options).unwrap_err();
    assert!(
        matches!(err, StateError::UnnamedType { role: "event", .. }),
        "{err}"
    );

    // Both named: it opens, and its records carry the stable names.
    let mut durable = open(&dir, DurableOptions::default());
    durable.apply(&event(1)).unwrap();
    durable.snapshot().unwrap();
    drop(durable);
    let snapshot = pontoon_persist::load_snapshot(&dir, &pontoon_wire::Limits::default())
        .unwrap()
        .snapshot
        .unwrap();
    let header = snapshot.message.header.to_value().unwrap();
    assert_eq!(header["type"].as_str(), Some("test.Account"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_check_refuses_an_event_before_it_is_logged() {
    let dir = scratch("check");
    {
        let mut account =
            open(&dir, DurableOptions::default()).with_check(|account, event| match event {
                Event::Withdraw(n) if account.balance - n < 0 => Err("overdrawn".into()),
                _ => Ok(()),
            });
        account.apply(&Event::Deposit(5)).unwrap();
        let refused = account.apply(&Event::Withdraw(6)).unwrap_err();
        assert!(matches!(refused, StateError::Refused { .. }));
        assert_eq!(
            std::error::Error::source(&refused).unwrap().to_string(),
            "overdrawn"
        );
        assert_eq!((account.state().balance, account.last_seq()), (5, 1));
        account.apply(&Event::Withdraw(5)).unwrap();
    }
    let account = open(&dir, DurableOptions::default());
    assert_eq!((account.state().balance, account.last_seq()), (0, 2));
}

#[test]
fn pipelined_events_share_syncs_and_survive_reopening() {
    let dir = scratch("pipelined");
    let mut options = DurableOptions::default();
    options.log.durability = pontoon_persist::Durability::GroupCommit;
    {
        let mut account = open(&dir, options);
        let mut last = 0;
        for i in 1..=2000 {
            last = account.submit(&event(i)).unwrap();
            // Applied at once, durable or not.
            assert_eq!(account.last_seq(), i);
        }
        account.wait_durable(last).unwrap();
        assert_eq!(account.durable_seq(), 2000);
        assert_eq!(*account.state(), expected(2000));
        let stats = account.log().stats();
        assert!(
            stats.syncs < 2000,
            "{} syncs for 2000 pipelined events",
            stats.syncs
        );
    }
    let account = open(&dir, DurableOptions::default());
    assert_eq!(*account.state(), expected(2000));
}

/// A waker that unparks the test's thread and counts its wakes.
struct Unpark {
    thread: std::thread::Thread,
    wakes: std::sync::atomic::AtomicUsize,
}

impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.wakes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.thread.unpark();
    }
}

#[test]
fn the_durable_future_is_woken_by_the_sync_that_covers_it() {
    use std::future::Future;
    use std::task::{Context, Poll};
    let dir = scratch("future");
    let mut options = DurableOptions::default();
    options.log.durability = pontoon_persist::Durability::GroupCommit;
    let mut account = open(&dir, options);
    let unpark = std::sync::Arc::new(Unpark {
        thread: std::thread::current(),
        wakes: 0.into(),
    });
    let waker = std::task::Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    for i in 1..=20 {
        let seq = account.submit(&event(i)).unwrap();
        let mut wait = std::pin::pin!(account.durable(seq));
        let mut polls = 0;
        loop {
            polls += 1;
            match wait.as_mut().poll(&mut cx) {
                Poll::Ready(result) => break result.unwrap(),
                // Polled again only after a wake (a guard, not a time limit, against a hang).
                Poll::Pending => {
                    let before = unpark.wakes.load(std::sync::atomic::Ordering::SeqCst);
                    let mut waited = 0;
                    while unpark.wakes.load(std::sync::atomic::Ordering::SeqCst) == before {
                        std::thread::park_timeout(std::time::Duration::from_millis(100));
                        waited += 1;
                        assert!(waited < 600, "event {i}: the future was never woken");
                    }
                }
            }
        }
        assert!(polls <= 3, "event {i}: polled {polls} times");
        assert!(account.durable_seq() >= seq);
    }
}
