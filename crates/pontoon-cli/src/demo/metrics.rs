//! The demo's last part: a few of the metrics this process recorded while the other parts ran
//! (through the `metrics` facade, into an in-process Prometheus recorder), read back from the
//! text a scrape would get.

use std::collections::HashMap;

use metrics_exporter_prometheus::PrometheusHandle;
use pontoon::persist::metrics as persist;
use pontoon::store::metrics as store;

use super::size;

/// Each sample of the exposition by its series (name and labels), e.g.
/// `pontoon_persist_fdatasync_seconds{quantile="0.99"}`.
fn samples(text: &str) -> HashMap<&str, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series, value.parse().ok()?))
        })
        .collect()
}

/// Prints the persist and store metrics of this run.
pub(super) fn report(handle: &PrometheusHandle) {
    println!("pontoon demo: what this process recorded, through the metrics facade");
    let text = handle.render();
    let samples = samples(&text);
    let at = |series: &str| samples.get(series).copied().unwrap_or(0.0);
    let quantile = |name: &str, q: &str| at(&format!("{name}{{quantile=\"{q}\"}}"));
    let ms = |seconds: f64| format!("{:.2} ms", seconds * 1e3);
    let syncs = at(&format!("{}_count", persist::FDATASYNC_SECONDS));
    println!(
        "  persist           {} records appended ({}), {syncs} fdatasyncs (p50 {}, p99 {}), {} records recovered, {} snapshots written",
        at(persist::APPENDED_RECORDS),
        size(at(persist::APPENDED_BYTES) as u64),
        ms(quantile(persist::FDATASYNC_SECONDS, "0.5")),
        ms(quantile(persist::FDATASYNC_SECONDS, "0.99")),
        at(persist::RECOVERY_RECORDS),
        at(persist::SNAPSHOTS_WRITTEN),
    );
    println!(
        "  store             {} objects spilled ({}), {} read back from spill files ({}); now {} objects ({}), {} spilled ({})",
        at(store::SPILLS),
        size(at(store::SPILL_BYTES) as u64),
        at(store::RESTORES),
        size(at(store::RESTORE_BYTES) as u64),
        at(store::OBJECTS),
        size(at(store::BYTES) as u64),
        at(store::SPILLED_OBJECTS),
        size(at(store::SPILLED_BYTES) as u64),
    );
    println!(
        "                    every metric, in Prometheus text format: `pontoon store serve --metrics ADDR`"
    );
}
