//! The process's metrics recorder: every metric pontoon's crates record (through the `metrics`
//! facade), served over HTTP in Prometheus text format by `pontoon store serve --metrics`, or
//! read in-process at the end of `pontoon demo`.

use std::error::Error;
use std::net::SocketAddr;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Names and help texts of the metrics of every crate this binary holds.
fn describe() {
    pontoon::family::metrics::describe();
    pontoon::transport::metrics::describe();
    pontoon::persist::metrics::describe();
    pontoon::store::metrics::describe();
}

/// Installs the Prometheus recorder as the process's recorder and serves it at
/// `http://{address}/metrics` (any path answers) from a task on the current tokio runtime.
/// Must run before anything registers a metric: handles taken before it stay no-ops.
pub(crate) fn serve(address: SocketAddr) -> Result<(), Box<dyn Error>> {
    PrometheusBuilder::new()
        .with_http_listener(address)
        .install()
        .map_err(|e| format!("cannot serve metrics on {address}: {e}"))?;
    describe();
    if address.ip().is_loopback() {
        tracing::info!("serving metrics on http://{address}/metrics");
    } else {
        tracing::warn!(
            "serving metrics on http://{address}/metrics, not a loopback address: anyone who \
             reaches it can read them (object counts and sizes, client counts, disk timings)"
        );
    }
    Ok(())
}

/// Installs the Prometheus recorder without a listener, for reading the metrics back in this
/// process (`pontoon demo`).
pub(crate) fn in_process() -> Result<PrometheusHandle, Box<dyn Error>> {
    // Quantiles over the whole run (the default forgets samples after a minute).
    let handle = PrometheusBuilder::new()
        .set_bucket_duration(std::time::Duration::from_secs(24 * 3600))?
        .install_recorder()
        .map_err(|e| format!("cannot install a metrics recorder: {e}"))?;
    describe();
    Ok(handle)
}
