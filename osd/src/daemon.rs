//! Starting and stopping an OSD: open (or create) the store in the data directory, bind
//! the listen address and write it to `DATA/osd.addr`, boot to the monitors (the first boot
//! gets an id, kept in the store's superblock and in `DATA/whoami`), fetch the map, then
//! serve the `Osd` service and run the map watch, heartbeats, beacons and PG statistics
//! until asked to stop.

use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clustermap::{Epoch, Uuid};
use monclient::{ClientConfig, MonClient};
use proto::mon::OsdBootRequest;
use proto::osd::osd_server::OsdServer;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;

use crate::config::OsdConfig;
use crate::node::Node;
use crate::reporter::MonReport;
use crate::server::OsdService;
use crate::store::{ObjectStore, StoreConfig, StoreError};
use crate::syncer::Syncer;

/// The file holding the bound address.
pub const ADDR_FILE: &str = "osd.addr";
/// The file holding the OSD's id.
pub const WHOAMI_FILE: &str = "whoami";

/// What the command line gives.
#[derive(Clone, Debug)]
pub struct Options {
    /// The cluster config file.
    pub conf: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The CRUSH host (default: this machine's short hostname).
    pub host: Option<String>,
    /// Extra CRUSH location pairs.
    pub crush_location: Vec<(String, String)>,
    /// CRUSH weight for a new OSD.
    pub weight: Option<f64>,
    /// Overrides `osd.listen`.
    pub listen: Option<String>,
}

/// Writes `contents` to `path` atomically (temporary file, then rename).
fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path)
}

fn new_uuid() -> anyhow::Result<Uuid> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("reading /dev/urandom for a new OSD uuid")?;
    // A version-4 (random) uuid.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Ok(Uuid::from_bytes(bytes))
}

/// This machine's short hostname, as a valid CRUSH bucket name.
pub fn default_host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let short = name.trim().split('.').next().unwrap_or("").to_owned();
    let cleaned: String = short
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "localhost".to_owned()
    } else {
        cleaned
    }
}

/// Opens the store in `DATA/store`, making it on first use.
fn open_store(config: &OsdConfig, data_dir: &Path) -> anyhow::Result<ObjectStore> {
    let options = kv::Options {
        cache_bytes: config.cache_bytes,
        fjall_memtable_bytes: config.memtable_bytes,
        fjall_write_buffer_bytes: config.write_buffer_bytes,
        fjall_wal_bytes: config.wal_bytes,
        // The store compresses its chunks itself (once, not once per copy fjall makes).
        fjall_compression: false,
        ..kv::Options::default()
    };
    let path = data_dir.join("store");
    std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
    let engine = kv::open(config.backend(), &path, &options).with_context(|| {
        format!(
            "opening the {} engine in {}",
            config.backend,
            path.display()
        )
    })?;
    let store_config = StoreConfig {
        max_object_size: config.max_object_size,
        compression: config.compression,
        block_min_bytes: config.block_min_bytes,
        deferred_min_bytes: config.deferred_min_bytes,
        ..StoreConfig::default()
    };
    let blocks = data_dir.join("blocks");
    match ObjectStore::open_with_blocks(Arc::clone(&engine), store_config.clone(), Some(&blocks)) {
        Ok(store) => Ok(store),
        Err(StoreError::NotFormatted) => {
            let uuid = new_uuid()?;
            tracing::info!(%uuid, dir = %path.display(), "new data directory; making the store");
            Ok(ObjectStore::mkfs_with_blocks(
                engine,
                uuid,
                store_config,
                Some(&blocks),
            )?)
        }
        Err(error) => Err(error).context("opening the object store"),
    }
}

/// Runs the OSD until `shutdown` completes.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut config = OsdConfig::from_file(&options.conf)?;
    if let Some(listen) = &options.listen {
        config.listen = listen.clone();
    }
    config.validate()?;
    let client_config =
        ClientConfig::load(Some(&options.conf)).context("reading the monitors' addresses")?;
    let data_dir = options.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let store = Arc::new(open_store(&config, &data_dir)?);
    let superblock = store.superblock();

    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    write_atomic(&data_dir.join(ADDR_FILE), &format!("{addr}\n"))
        .context("writing the address file")?;
    tracing::info!(%addr, uuid = %superblock.osd_uuid, known_id = ?superblock.osd_id, "listening");

    let mon = MonClient::new(client_config).context("monitor client")?;
    let report = MonReport::new(mon.clone());
    let host = options.host.clone().unwrap_or_else(default_host);
    let request = OsdBootRequest {
        uuid: superblock.osd_uuid.to_string(),
        osd_id: superblock.osd_id,
        addr: addr.to_string(),
        host: host.clone(),
        crush_location: options
            .crush_location
            .iter()
            .cloned()
            .collect::<HashMap<_, _>>(),
        weight: options.weight,
        device_class: String::new(),
        epoch: 0,
    };
    tokio::pin!(shutdown);
    let booted = tokio::select! {
        booted = boot(&report, request.clone()) => booted?,
        () = &mut shutdown => {
            tracing::info!("stopped before boot finished");
            return Ok(());
        }
    };
    let id = booted.osd_id;
    if superblock.osd_id != Some(id) {
        store.set_osd_id(id)?;
    }
    write_atomic(&data_dir.join(WHOAMI_FILE), &format!("{id}\n")).context("writing whoami")?;
    tracing::info!(
        osd = id,
        epoch = booted.epoch,
        host,
        "booted; the monitors marked us up"
    );

    let node = Node::new(
        id,
        superblock.osd_uuid,
        config.clone(),
        data_dir,
        Arc::clone(&store),
        Syncer::start(Arc::clone(&store), config.sync_batch_wait())
            .context("starting the sync thread")?,
        mon.clone(),
    )?;
    let service = OsdServer::new(OsdService::new(Arc::clone(&node)))
        .max_decoding_message_size(proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(proto::MAX_MESSAGE_BYTES);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .initial_stream_window_size(proto::OSD_STREAM_WINDOW)
            .initial_connection_window_size(proto::OSD_CONNECTION_WINDOW)
            .max_frame_size(proto::OSD_MAX_FRAME_BYTES)
            .add_service(service)
            .serve_with_incoming_shutdown(accept(listener, &node), async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            }),
    );

    let first = mon
        .wait_for_epoch(booted.epoch, Duration::from_secs(30))
        .await
        .context("fetching the map that shows this OSD up")?;
    node.apply_map(Arc::clone(&first)).await;
    let tasks = vec![
        tokio::spawn(crate::mapfollow::follow(
            Arc::clone(&node),
            mon.watch_from(first),
            crate::mapfollow::Reboot {
                id,
                report: report.clone(),
                request: request.clone(),
                booted_at: Epoch::try_from(booted.epoch).unwrap_or(Epoch::MAX),
            },
        )),
        tokio::spawn(crate::heartbeat::heartbeat_loop(
            Arc::clone(&node),
            report.clone(),
        )),
        tokio::spawn(crate::space::space_loop(Arc::clone(&node))),
        tokio::spawn(crate::reporter::beacon_loop(
            Arc::clone(&node),
            report.clone(),
        )),
        tokio::spawn(crate::reporter::pg_stats_loop(Arc::clone(&node), report)),
    ];

    tokio::select! {
        () = &mut shutdown => tracing::info!(osd = id, "stopping"),
        result = server => {
            for task in &tasks {
                task.abort();
            }
            match result {
                Ok(Ok(())) => bail!("the gRPC server stopped unexpectedly"),
                Ok(Err(error)) => return Err(error).context("the gRPC server failed"),
                Err(join) => return Err(join).context("the gRPC server task"),
            }
        }
    }
    let _ = stop_tx.send(true);
    for task in &tasks {
        task.abort();
    }
    let store_for_sync = Arc::clone(&store);
    tokio::task::spawn_blocking(move || store_for_sync.sync())
        .await
        .context("final sync")??;
    tracing::info!(osd = id, "stopped");
    Ok(())
}

/// Boots, retrying while no monitor can answer.
async fn boot(
    report: &MonReport,
    request: OsdBootRequest,
) -> anyhow::Result<proto::mon::OsdBootReply> {
    let mut pause = Duration::from_millis(100);
    loop {
        match report.boot(request.clone()).await {
            Ok(reply) => return Ok(reply),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                bail!("the monitors refused the boot: {}", status.message())
            }
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                bail!("the monitors refused the boot: {}", status.message())
            }
            Err(status) => {
                tracing::info!(%status, "boot not answered yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The connections to this OSD's port: links are served on their own tasks, the rest is
/// gRPC for the returned stream.
fn accept(listener: TcpListener, node: &Arc<Node>) -> ReceiverStream<std::io::Result<TcpStream>> {
    let node = Arc::clone(node);
    proto::link::accept(listener, move |stream, kind, peer| {
        tokio::spawn(OsdService::serve_link(
            Arc::clone(&node),
            stream,
            kind,
            peer,
        ));
    })
}
