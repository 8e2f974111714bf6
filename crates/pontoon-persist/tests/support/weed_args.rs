//! The command line `weed` (SeaweedFS) is started with for the tests, the demo and the
//! benchmarks: one file, included by path by the tests' support and by xtask.

use std::path::Path;

/// Every port the server opens, as `weed server`'s flags: each is set to a free one, so nothing
/// listens on its defaults. (The S3 gateway's Iceberg and Lance endpoints are turned off.)
pub(crate) const PORT_FLAGS: [&str; 8] = [
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
];

/// Where in [`PORT_FLAGS`] (and so in the ports given to [`server_args`]) each port is.
pub(crate) const MASTER_PORT: usize = 0;
/// The filer's HTTP port's index.
pub(crate) const FILER_PORT: usize = 4;
/// The S3 gateway's port's index.
pub(crate) const S3_PORT: usize = 6;

/// The flags that size the volume server by these numbers, not by the disk it is on. Left to
/// itself (as `weed mini` is, with no flag to change it), SeaweedFS makes its volume slots from
/// the disk's free space and marks every volume read-only while the disk has less than 1% free:
/// on a 250 GB disk with 2 GB free, every write waits for a volume that never comes. Volumes are
/// files that grow as written (not preallocated), so 128 slots of 128 MiB claim nothing up
/// front and hold the benchmarks' 1 GiB state several times over; the server stops writing
/// only when 64 MiB are left.
const SIZE_FLAGS: [&str; 3] = [
    "-master.volumeSizeLimitMB=128",
    "-volume.max=128",
    "-volume.minFreeSpace=64MiB",
];

/// `weed`'s arguments for a server with its S3 gateway, bound to 127.0.0.1 only, with its data
/// in `data`, glog's files in `log_dir` (not the system's temporary directory), and `ports` in
/// the order of [`PORT_FLAGS`]. With `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in its
/// environment, the gateway makes an admin identity of them and checks every request.
pub(crate) fn server_args(log_dir: &Path, data: &Path, ports: &[u16]) -> Vec<String> {
    let mut args = vec![
        format!("-logdir={}", log_dir.display()),
        "server".to_owned(),
        format!("-dir={}", data.display()),
    ];
    args.extend(
        [
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        .into_iter()
        .chain(SIZE_FLAGS)
        .map(str::to_owned),
    );
    args.extend(
        PORT_FLAGS
            .iter()
            .zip(ports)
            .map(|(flag, port)| format!("-{flag}={port}")),
    );
    args
}

/// Removes the unix sockets a server on `ports` left in `/tmp` once it is stopped: SeaweedFS
/// makes one per gRPC and HTTP server (`/tmp/seaweedfs-<server>-<port>.sock`, a fixed path
/// that `TMPDIR` does not move, and only two of them have a flag) and leaves them when it is
/// killed. Only names ending in one of this server's ports are touched; call it after the
/// process has exited, before another server can be given those ports.
pub(crate) fn remove_sockets(ports: &[u16]) {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    let ends: Vec<String> = ports.iter().map(|port| format!("-{port}.sock")).collect();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("seaweedfs-") && ends.iter().any(|end| name.ends_with(end.as_str())) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
