//! The demo's remote part: the bank of the persist part outlives its machine. A `Durable` state
//! uploads its snapshot and sealed log segments to an S3-compatible remote (`PONTOON_REMOTE`,
//! an `s3://bucket/prefix` URL, with the endpoint and keys from the usual `AWS_*` variables;
//! `cargo xtask demo` starts a local SeaweedFS and sets them); then its directory is deleted, as
//! if the machine were lost, and a fresh directory restores the state from the remote alone (all
//! but the events still in the active segment, which background uploads never send). The
//! restored state then goes on under remote durability (`RemoteDurability::Acknowledged`), is
//! lost in turn, and a third directory restores every acknowledged event. Without
//! `PONTOON_REMOTE` the part says so and is skipped.

use std::error::Error;
use std::time::{Duration, Instant};

use pontoon::persist::{Durable, Remote, RemoteDurability};

use super::duration;
use super::persist::{Bank, Event, Scratch, event, options};

/// The environment variable naming the remote prefix.
const REMOTE_ENV: &str = "PONTOON_REMOTE";

/// Events applied before the machine is "lost".
const EVENTS: u64 = 2_300;

/// Events machine B applies under remote durability before it is lost too.
const ACKNOWLEDGED_EVENTS: u64 = 20;

/// How long the remote may take to answer its first request (a server that has just started
/// creates its bucket a moment after it listens).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the part, or says why it is skipped.
pub(super) fn run() -> Result<(), Box<dyn Error>> {
    println!("pontoon demo: state that outlives its machine, through pontoon-persist's remote");
    let Some(url) = std::env::var_os(REMOTE_ENV) else {
        println!(
            "  skipped           {REMOTE_ENV} is not set (`cargo xtask demo` starts a local \
             S3-compatible server and sets it)"
        );
        return Ok(());
    };
    let url = url
        .into_string()
        .map_err(|_| format!("{REMOTE_ENV} is not UTF-8"))?;
    // Each run its own prefix: a prefix belongs to one writer.
    let prefix = format!("{}/demo-{}", url.trim_end_matches('/'), std::process::id());
    let remote = || Remote::open(&prefix, Vec::<(String, String)>::new());
    wait_until_ready(&remote()?)?;

    let scratch =
        Scratch(std::env::temp_dir().join(format!("pontoon-demo-remote-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    let first_dir = scratch.0.join("machine-a");
    let mut with_remote = options()?;
    with_remote.remote = Some(remote()?);
    let mut bank: Durable<Bank, Event> =
        Durable::open(&first_dir, Bank::opening, Bank::apply, with_remote)?;
    for seq in 1..=EVENTS {
        bank.apply(&event(seq))?;
    }
    let (manifest, upload_time) = super::timed(|| bank.sync_remote());
    let manifest = manifest?;
    let uploaded: u64 = manifest.snapshot.iter().map(|(_, len)| len).sum::<u64>()
        + manifest.segments.iter().map(|(_, len)| len).sum::<u64>();
    println!(
        "  machine A         {EVENTS} events applied (fdatasync each, locally); uploaded in the \
         background to {prefix}: manifest generation {}, {} snapshot(s) + {} sealed segment(s), \
         {} (sync_remote waited {})",
        manifest.generation,
        manifest.snapshot.iter().count(),
        manifest.segments.len(),
        super::size(uploaded),
        duration(upload_time)
    );
    let acked = bank.last_seq();
    drop(bank);
    std::fs::remove_dir_all(&first_dir)?;
    println!("  machine A lost    its directory deleted: only the remote holds the state now");

    let second_dir = scratch.0.join("machine-b");
    let mut restore = options()?;
    restore.remote = Some(remote()?);
    let (restored, restore_time) =
        super::timed(|| Durable::open(&second_dir, Bank::opening, Bank::apply, restore));
    let restored: Durable<Bank, Event> = restored?;
    let recovered = restored.last_seq();
    let mut expected = Bank::opening();
    for seq in 1..=recovered {
        expected.apply(&event(seq));
    }
    if *restored.state() != expected {
        return Err(format!(
            "the restored state differs from events 1..={recovered} replayed from scratch"
        )
        .into());
    }
    if recovered + 1 != manifest.next_seq {
        return Err(format!(
            "the remote's manifest goes on at event {}, but the restore recovered up to {recovered}",
            manifest.next_seq
        )
        .into());
    }
    println!(
        "  machine B         a fresh directory restored from the remote in {}: events \
         1..={recovered}, identical to a replay from scratch; balances sum to {}",
        duration(restore_time),
        restored.state().total()
    );
    if recovered < acked {
        println!(
            "  lost with A       events {}..={acked}: acknowledged once durable locally, they \
             were still in the active log segment, which background uploads never send",
            recovered + 1
        );
    } else {
        println!("  lost with A       nothing: every acknowledged event had been uploaded");
    }
    drop(restored);

    // Under remote durability, `apply` returns only once the event is on the remote too.
    let mut acknowledged = options()?;
    acknowledged.remote = Some(remote()?);
    acknowledged.remote_durability = RemoteDurability::Acknowledged;
    let mut bank: Durable<Bank, Event> =
        Durable::open(&second_dir, Bank::opening, Bank::apply, acknowledged)?;
    let started = Instant::now();
    for seq in recovered + 1..=recovered + ACKNOWLEDGED_EVENTS {
        bank.apply(&event(seq))?;
    }
    let per_event = started.elapsed() / ACKNOWLEDGED_EVENTS as u32;
    let acked = bank.last_seq();
    drop(bank);
    std::fs::remove_dir_all(&second_dir)?;
    let third_dir = scratch.0.join("machine-c");
    let mut restore = options()?;
    restore.remote = Some(remote()?);
    let restored: Durable<Bank, Event> =
        Durable::open(&third_dir, Bank::opening, Bank::apply, restore)?;
    if restored.last_seq() != acked {
        return Err(format!(
            "under remote durability event {acked} was acknowledged, but the remote restored \
             only up to {}",
            restored.last_seq()
        )
        .into());
    }
    println!(
        "  remote durability B applies {ACKNOWLEDGED_EVENTS} more events, each acknowledged only \
         once on the remote ({} per event), and is lost too; machine C restores all of \
         1..={acked}: nothing acknowledged was lost",
        duration(per_event)
    );
    drop(restored);
    Ok(())
}

/// Waits until the remote answers a listing, up to [`READY_TIMEOUT`].
fn wait_until_ready(remote: &Remote) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    loop {
        match remote.list() {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() > READY_TIMEOUT => {
                return Err(format!(
                    "the remote {} did not answer within {} s: {e}",
                    remote.url(),
                    READY_TIMEOUT.as_secs()
                )
                .into());
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}
