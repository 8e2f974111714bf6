//! `pontoon store`: run a store daemon (`serve`) and drive it from a shell (`put`, `get`,
//! `delete`, `stats`). Sizes are written as `64MiB`, `2GiB`; ids as `pontoon store put`
//! prints them.

use std::error::Error;
use std::io::{Read, Write};
use std::path::PathBuf;

use pontoon::store::{Backing, ByteSize, Client, Daemon, ObjectId, ServeOptions, SpillRemote};
use pontoon::transport::Address;

/// The `pontoon store` subcommands.
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Run a store daemon: reserve the memory, listen on the socket, serve until SIGINT/SIGTERM.
    ///
    /// The memory is a memfd of --capacity bytes, allocated at start (so no page fault can
    /// fail later); clients map it read-only. If it cannot be reserved, a file in --spill-dir
    /// backs it instead, with a warning. With --spill-dir, objects nobody holds spill to files
    /// there above 80% of the capacity, and an object larger than free memory is created on
    /// disk; without it, a put that does not fit is refused with the capacity and the size
    /// needed.
    Serve {
        /// The Unix socket to listen on.
        #[arg(long)]
        socket: PathBuf,
        /// Bytes of shared memory (e.g. 64MiB, 2GiB).
        #[arg(long)]
        capacity: ByteSize,
        /// Where objects spill: a directory (locked while serving; spill files of an earlier
        /// run are removed at start; also the memory's fallback), or a remote, s3://bucket/prefix
        /// or file:///dir (spill objects an earlier run left under the prefix are removed at
        /// start). Credentials, region and endpoint of an s3:// remote come from the usual AWS
        /// environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
        /// AWS_ENDPOINT, ...), the endpoint also from --spill-endpoint.
        #[arg(long)]
        spill_dir: Option<PathBuf>,
        /// The S3 endpoint of an s3:// --spill-dir (`http://host:port` allowed), instead of
        /// AWS's.
        #[arg(long, requires = "spill_dir")]
        spill_endpoint: Option<String>,
        /// Back the memory with a file in this directory (e.g. /dev/shm) instead of a memfd.
        #[arg(long)]
        memory_dir: Option<PathBuf>,
        /// Also serve this store's objects to peer stores at this address (e.g.
        /// tcp://0.0.0.0:7000), which pull them with `get --from`. Unauthenticated: whoever
        /// reaches the address and knows an id reads the object.
        #[arg(long)]
        listen: Option<Address>,
        /// Most clients connected at once; a connection past it is closed at once (logged).
        #[arg(long, default_value_t = ServeOptions::new("", 0).max_clients)]
        max_clients: usize,
        /// The socket file's permission bits, in octal (default 600: only this user can
        /// connect). To serve other users, widen it and name them with --allow-uid.
        #[arg(long, value_parser = parse_mode, default_value = "600")]
        socket_mode: u32,
        /// Also serve the user with this uid (checked on each connection; repeatable). The
        /// daemon's own user is always served.
        #[arg(long = "allow-uid", value_name = "UID")]
        allow_uids: Vec<u32>,
        /// Serve every metric (objects, bytes, pins, spills, clients, and the other layers')
        /// in Prometheus text format over HTTP at this address (e.g. 127.0.0.1:9464; scrape
        /// /metrics). Unauthenticated: a non-loopback address is logged with a warning.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Store a file's bytes as one object and print its id.
    Put {
        /// The daemon's socket.
        #[arg(long)]
        socket: PathBuf,
        /// The file.
        file: PathBuf,
    },
    /// Write an object's bytes (its frames, one after another) to a file, or to stdout.
    Get {
        /// The daemon's socket.
        #[arg(long)]
        socket: PathBuf,
        /// The object's id.
        id: ObjectId,
        /// Where to write (stdout when not given).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Pull the object from the peer store serving at this address first (e.g.
        /// tcp://10.0.0.2:7000), unless the daemon holds it already.
        #[arg(long)]
        from: Option<Address>,
    },
    /// Delete an object.
    Delete {
        /// The daemon's socket.
        #[arg(long)]
        socket: PathBuf,
        /// The object's id.
        id: ObjectId,
    },
    /// Print the store's counters: objects, bytes in memory, pinned, spilled, spill files,
    /// clients.
    Stats {
        /// The daemon's socket.
        #[arg(long)]
        socket: PathBuf,
        /// One JSON object (byte counts as numbers) instead of text.
        #[arg(long)]
        json: bool,
    },
}

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

/// Runs a `pontoon store` subcommand.
pub(crate) fn run(command: Command) -> Result {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Command::Serve {
                socket,
                capacity,
                spill_dir,
                spill_endpoint,
                memory_dir,
                listen,
                max_clients,
                socket_mode,
                allow_uids,
                metrics,
            } => {
                let mut options = ServeOptions::new(&socket, capacity.0);
                match spill_dir {
                    Some(dir) if dir.to_str().is_some_and(|d| d.contains("://")) => {
                        let url = dir.to_string_lossy().into_owned();
                        options.spill_remote = Some(spill_remote(url, spill_endpoint));
                    }
                    Some(_) if spill_endpoint.is_some() => {
                        return Err("--spill-endpoint is for an s3:// --spill-dir".into());
                    }
                    dir => options.spill_dir = dir,
                }
                if let Some(dir) = memory_dir {
                    options.backing = Backing::Directory(dir);
                }
                options.peer_listen = listen;
                options.max_clients = max_clients;
                options.socket_mode = socket_mode;
                options.allowed_uids.extend(allow_uids);
                serve(options, metrics).await
            }
            Command::Put { socket, file } => put(socket, file).await,
            Command::Get {
                socket,
                id,
                out,
                from,
            } => get(socket, id, out, from).await,
            Command::Delete { socket, id } => {
                Ok(Client::connect(&socket).await?.delete(&id).await?)
            }
            Command::Stats { socket, json } => stats(socket, json).await,
        }
    })
}

/// The remote at `url`; `endpoint`, if given, its S3 endpoint (a plain `http://` one
/// allowed). The rest comes from the `AWS_*` environment variables.
fn spill_remote(url: String, endpoint: Option<String>) -> SpillRemote {
    let mut remote = SpillRemote::new(url);
    if let Some(endpoint) = endpoint {
        if endpoint.starts_with("http://") {
            remote = remote.option("aws_allow_http", "true");
        }
        remote = remote.option("aws_endpoint", endpoint);
    }
    remote
}

/// Parses a socket mode in octal, as `chmod` takes it (`600`, `0660`, `0o666`).
fn parse_mode(text: &str) -> std::result::Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "{text:?} is not a permission mode in octal (000 to 777)"
        )),
    }
}

async fn serve(options: ServeOptions, metrics: Option<std::net::SocketAddr>) -> Result {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    // Before the daemon exists, so that its handles are the recorder's.
    if let Some(address) = metrics {
        crate::metrics::serve(address)?;
    }
    let socket = options.socket.clone();
    let daemon = Daemon::bind(options)?;
    // Daemon::bind has logged the store id, the memory and the socket; run logs the peer
    // address it binds.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        result = daemon.run() => result.map_err(Into::into),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminate.recv() => Ok(()),
    };
    let _ = std::fs::remove_file(&socket);
    result
}

async fn put(socket: PathBuf, file: PathBuf) -> Result {
    let mut source =
        std::fs::File::open(&file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let len = source.metadata()?.len();
    let client = Client::connect(&socket).await?;
    // The file is read straight into store memory: no copy in between.
    let mut creating = client.create(len).await?;
    source
        .read_exact(&mut creating)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let id = creating.seal().await?;
    println!("{id}");
    Ok(())
}

async fn get(socket: PathBuf, id: ObjectId, out: Option<PathBuf>, from: Option<Address>) -> Result {
    let client = Client::connect(&socket).await?;
    if let Some(peer) = from {
        client.pull(&id, &peer).await?;
    }
    let object = client.get_raw(&id).await?;
    let mut sink: Box<dyn Write> = match &out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    for frame in &object.frames {
        sink.write_all(frame)?;
    }
    sink.flush()?;
    Ok(())
}

async fn stats(socket: PathBuf, json: bool) -> Result {
    let stats = Client::connect(&socket).await?.stats().await?;
    if json {
        println!("{}", serde_json::to_string(&stats)?);
        return Ok(());
    }
    let size = |n: u64| ByteSize(n).to_string();
    println!(
        "objects          {} ({})",
        stats.objects,
        size(stats.sealed_bytes)
    );
    println!("being created    {}", stats.creating);
    println!(
        "memory in use    {} of {} (spilling starts at {})",
        size(stats.used_bytes),
        size(stats.capacity),
        size(stats.high_water_mark)
    );
    println!(
        "pinned           {} ({})",
        stats.pinned_objects,
        size(stats.pinned_bytes)
    );
    println!(
        "spilled          {} objects ({}) in {} files",
        stats.spilled_objects,
        size(stats.spilled_bytes),
        stats.spill_files
    );
    println!("clients          {}", stats.clients);
    Ok(())
}
