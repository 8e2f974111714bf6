//! `pontoon log` on a remote (`s3://bucket/prefix`): the newest manifest's state downloaded
//! into a temporary directory, which is removed afterwards; the remote is only read (listed
//! and got), never written.

use std::path::{Path, PathBuf};

use pontoon::persist::{LogOptions, Remote, RemoteError};

use crate::log::Failure;

/// Whether `location` names a remote rather than a directory.
pub(crate) fn is_remote(location: &Path) -> bool {
    location
        .to_str()
        .is_some_and(|l| l.starts_with("s3://") || l.starts_with("file://"))
}

/// A remote's state downloaded into a directory of its own, removed when dropped.
pub(crate) struct Downloaded {
    root: PathBuf,
    /// The log's directory in it.
    pub(crate) dir: PathBuf,
}

impl Drop for Downloaded {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Downloads what the newest manifest at `url` names. Credentials, region and endpoint come
/// from the usual `AWS_*` environment variables; `endpoint`, if given, is the endpoint (a plain
/// `http://` one allowed). Says on stderr which manifest it read.
pub(crate) fn download(url: &str, endpoint: Option<&str>) -> Result<Downloaded, Failure> {
    let mut options: Vec<(&str, String)> = Vec::new();
    if let Some(endpoint) = endpoint {
        options.push(("aws_endpoint", endpoint.to_owned()));
        if endpoint.starts_with("http://") {
            options.push(("aws_allow_http", "true".to_owned()));
        }
    }
    let remote = Remote::open(url, options).map_err(remote_failure)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let root =
        std::env::temp_dir().join(format!("pontoon-log-remote-{}-{nanos}", std::process::id()));
    let downloaded = Downloaded {
        dir: root.join("log"),
        root,
    };
    std::fs::create_dir_all(&downloaded.root).map_err(|e| {
        Failure::Unchecked(format!("cannot create {}: {e}", downloaded.root.display()).into())
    })?;
    let manifest = remote
        .download(&downloaded.dir, &LogOptions::default())
        .map_err(remote_failure)?
        .ok_or_else(|| {
            Failure::Unchecked(
                format!("{url} holds no manifest: nothing was uploaded there").into(),
            )
        })?;
    eprintln!(
        "remote:   {url}, manifest generation {}: {}{} segments, {} tail parts, next record {}",
        manifest.generation,
        match &manifest.snapshot {
            Some((name, _)) => format!("snapshot {name} (its records are not in the log), "),
            None => String::new(),
        },
        manifest.segments.len(),
        manifest.tail.len(),
        manifest.next_seq
    );
    Ok(downloaded)
}

/// A malformed manifest is damage (exit 1); anything else kept the remote from being checked.
fn remote_failure(error: RemoteError) -> Failure {
    match error {
        RemoteError::Manifest { .. } => Failure::Damaged(error.into()),
        other => Failure::Unchecked(other.into()),
    }
}
