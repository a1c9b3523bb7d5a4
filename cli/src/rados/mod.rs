//! `shoal rados ...`: object commands shaped like Ceph's `rados` tool (`-p POOL`, `-N NS`):
//! `put`, `get`, `ls`, `rm`, `stat`, `truncate`, the xattr and omap commands, `bench` and
//! `cleanup` (in [`bench`]).
//!
//! Local arguments (a file to upload, sizes) are checked before anything is sent; errors
//! print Ceph-style with the errno name (`ENOENT: pool `x` does not exist`). Objects larger
//! than one op ([`OP_SIZE`]) are uploaded and downloaded in pieces, like Ceph's tool.

mod bench;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use librados::{Bytes, ClientConfig, IoCtx, Rados, RadosError};
use serde_json::{json, Value};

use crate::admin::{Format, GlobalArgs, OutputArgs};

/// Bytes per op when `put` and `get` move a large object in pieces.
const OP_SIZE: usize = 4 << 20;

/// `shoal rados ...`.
#[derive(Debug, Args)]
pub struct RadosArgs {
    /// The pool.
    #[arg(short = 'p', long = "pool", global = true, value_name = "POOL")]
    pool: Option<String>,
    /// The namespace inside the pool (default: the default namespace).
    #[arg(short = 'N', long = "namespace", global = true, value_name = "NS")]
    namespace: Option<String>,
    #[command(subcommand)]
    command: RadosCommand,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Debug, Subcommand)]
enum RadosCommand {
    /// Write an object from a file (`-` reads stdin).
    Put {
        /// Object name.
        object: String,
        /// File to read, or `-`.
        file: String,
    },
    /// Read an object into a file (`-` writes to stdout).
    Get {
        /// Object name.
        object: String,
        /// File to write, or `-`.
        file: String,
    },
    /// List the pool's objects (of the namespace, or of all with --all).
    Ls {
        /// List every namespace (printed as NAMESPACE<TAB>NAME).
        #[arg(long)]
        all: bool,
    },
    /// Remove objects.
    Rm {
        /// Object names.
        #[arg(required = true)]
        objects: Vec<String>,
    },
    /// An object's size and modification time.
    Stat {
        /// Object name.
        object: String,
    },
    /// Set an object's size.
    Truncate {
        /// Object name.
        object: String,
        /// New size in bytes.
        size: u64,
    },
    /// Set an extended attribute (the value from the argument, else from stdin).
    Setxattr {
        /// Object name.
        object: String,
        /// Attribute name.
        name: String,
        /// Value (default: read stdin).
        value: Option<String>,
    },
    /// Print an extended attribute's value.
    Getxattr {
        /// Object name.
        object: String,
        /// Attribute name.
        name: String,
    },
    /// Remove an extended attribute.
    Rmxattr {
        /// Object name.
        object: String,
        /// Attribute name.
        name: String,
    },
    /// List an object's extended attributes.
    Listxattr {
        /// Object name.
        object: String,
    },
    /// Set an omap value (the value from the argument, else from stdin).
    Setomapval {
        /// Object name.
        object: String,
        /// Key.
        key: String,
        /// Value (default: read stdin).
        value: Option<String>,
    },
    /// Print an omap value.
    Getomapval {
        /// Object name.
        object: String,
        /// Key.
        key: String,
    },
    /// Remove an omap key.
    Rmomapkey {
        /// Object name.
        object: String,
        /// Key.
        key: String,
    },
    /// List an object's omap keys.
    Listomapkeys {
        /// Object name.
        object: String,
    },
    /// List an object's omap keys and values.
    Listomapvals {
        /// Object name.
        object: String,
    },
    /// Benchmark writes or reads (like `rados bench`).
    Bench(bench::BenchArgs),
    /// Remove the objects a `bench write --no-cleanup` left.
    Cleanup(bench::CleanupArgs),
}

/// Runs `shoal rados ...`.
pub fn run(args: RadosArgs, global: &GlobalArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let format = args.out.format.or(global.format).unwrap_or(Format::Plain);
    runtime.block_on(dispatch(args, global, format))
}

/// A Rados error as the CLI prints it: the errno name first, as Ceph's tools do.
pub(crate) fn rados_error(error: RadosError) -> anyhow::Error {
    let name = match error.errno() {
        2 => "ENOENT",
        17 => "EEXIST",
        22 => "EINVAL",
        27 => "EFBIG",
        28 => "ENOSPC",
        34 => "ERANGE",
        61 => "ENODATA",
        110 => "ETIMEDOUT",
        _ => "EIO",
    };
    anyhow::anyhow!("{name}: {error}")
}

/// Opens the pool, failing early on local mistakes.
async fn open(global: &GlobalArgs, pool: Option<&str>, namespace: Option<&str>) -> Result<IoCtx> {
    let Some(pool) = pool else {
        bail!("EINVAL: no pool given: pass -p POOL");
    };
    let config = ClientConfig::load(global.conf.as_deref())?;
    let rados = Rados::connect(config).await.map_err(rados_error)?;
    let mut ioctx = rados.ioctx(pool).await.map_err(rados_error)?;
    if let Some(namespace) = namespace {
        ioctx.set_namespace(namespace);
    }
    Ok(ioctx)
}

/// The whole content of `file`, or of stdin for `-`.
fn read_input(file: &str) -> Result<Bytes> {
    let mut data = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .context("cannot read stdin")?;
    } else {
        data = std::fs::read(file).with_context(|| format!("cannot read input file `{file}`"))?;
    }
    Ok(Bytes::from(data))
}

/// A value from the argument or, without one, from stdin.
fn value_or_stdin(value: Option<String>) -> Result<Bytes> {
    match value {
        Some(value) => Ok(Bytes::from(value.into_bytes())),
        None => read_input("-"),
    }
}

/// Ceph's hexdump layout: offset, 16 bytes in hex, printable characters.
fn hexdump(data: &[u8]) -> String {
    let mut out = String::new();
    for (line, chunk) in data.chunks(16).enumerate() {
        let mut hex = String::new();
        for (index, byte) in chunk.iter().enumerate() {
            if index == 8 {
                hex.push(' ');
            }
            hex.push_str(&format!("{byte:02x} "));
        }
        let text: String = chunk
            .iter()
            .map(|byte| {
                if byte.is_ascii_graphic() || *byte == b' ' {
                    *byte as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!("{:08x}  {hex:<49} |{text}|\n", line * 16));
    }
    out.push_str(&format!("{:08x}\n", data.len()));
    out
}

fn text_value(data: &[u8]) -> Value {
    json!(String::from_utf8_lossy(data))
}

fn mtime(ns: u64) -> String {
    crate::admin::output::timestamp(ns / 1_000_000)
}

async fn dispatch(args: RadosArgs, global: &GlobalArgs, format: Format) -> Result<()> {
    let pool = args.pool.as_deref();
    let namespace = args.namespace.as_deref();
    match args.command {
        RadosCommand::Put { object, file } => {
            // The file is read before connecting: a missing file is a local mistake.
            let data = read_input(&file)?;
            let ioctx = open(global, pool, namespace).await?;
            put(&ioctx, &object, data).await
        }
        RadosCommand::Get { object, file } => {
            if file != "-" {
                if let Some(parent) = Path::new(&file).parent() {
                    if !parent.as_os_str().is_empty() && !parent.is_dir() {
                        bail!(
                            "ENOENT: output directory `{}` does not exist",
                            parent.display()
                        );
                    }
                }
            }
            let ioctx = open(global, pool, namespace).await?;
            get(&ioctx, &object, &file).await
        }
        RadosCommand::Ls { all } => {
            let ioctx = open(global, pool, namespace).await?;
            ls(&ioctx, all, format).await
        }
        RadosCommand::Rm { objects } => {
            let ioctx = open(global, pool, namespace).await?;
            for object in objects {
                ioctx
                    .remove(&object)
                    .await
                    .map_err(rados_error)
                    .with_context(|| format!("error removing {}/{object}", ioctx.pool_name()))?;
            }
            Ok(())
        }
        RadosCommand::Stat { object } => {
            let ioctx = open(global, pool, namespace).await?;
            let stat = ioctx.stat(&object).await.map_err(rados_error)?;
            if format.is_json() {
                format.print_json(&json!({
                    "pool": ioctx.pool_name(), "namespace": ioctx.namespace(), "name": object,
                    "size": stat.size, "mtime": mtime(stat.mtime_ns),
                    "version": stat.version.to_string(),
                }));
            } else {
                outln!(
                    "{}/{object} mtime {}, size {}",
                    ioctx.pool_name(),
                    mtime(stat.mtime_ns),
                    stat.size
                );
            }
            Ok(())
        }
        RadosCommand::Truncate { object, size } => {
            let ioctx = open(global, pool, namespace).await?;
            ioctx
                .truncate(&object, size)
                .await
                .map(drop)
                .map_err(rados_error)
        }
        RadosCommand::Setxattr {
            object,
            name,
            value,
        } => {
            let value = value_or_stdin(value)?;
            let ioctx = open(global, pool, namespace).await?;
            ioctx
                .set_xattr(&object, &name, value)
                .await
                .map(drop)
                .map_err(rados_error)
        }
        RadosCommand::Getxattr { object, name } => {
            let ioctx = open(global, pool, namespace).await?;
            let value = ioctx.get_xattr(&object, &name).await.map_err(rados_error)?;
            if format.is_json() {
                format.print_json(&json!({"name": name, "value": text_value(&value)}));
            } else {
                std::io::stdout().write_all(&value)?;
            }
            Ok(())
        }
        RadosCommand::Rmxattr { object, name } => {
            let ioctx = open(global, pool, namespace).await?;
            ioctx
                .rm_xattr(&object, &name)
                .await
                .map(drop)
                .map_err(rados_error)
        }
        RadosCommand::Listxattr { object } => {
            let ioctx = open(global, pool, namespace).await?;
            let xattrs = ioctx.get_xattrs(&object).await.map_err(rados_error)?;
            if format.is_json() {
                format.print_json(&json!(xattrs.keys().collect::<Vec<_>>()));
            } else {
                for name in xattrs.keys() {
                    outln!("{name}");
                }
            }
            Ok(())
        }
        RadosCommand::Setomapval { object, key, value } => {
            let value = value_or_stdin(value)?;
            let ioctx = open(global, pool, namespace).await?;
            ioctx
                .omap_set(&object, [(Bytes::from(key.into_bytes()), value)])
                .await
                .map(drop)
                .map_err(rados_error)
        }
        RadosCommand::Getomapval { object, key } => {
            let ioctx = open(global, pool, namespace).await?;
            let values = ioctx
                .omap_get(&object, [Bytes::from(key.clone().into_bytes())])
                .await
                .map_err(rados_error)?;
            let Some(value) = values.into_values().next() else {
                bail!(
                    "ENOENT: no key `{key}` in the omap of {}/{object}",
                    ioctx.pool_name()
                );
            };
            if format.is_json() {
                format.print_json(&json!({"key": key, "value": text_value(&value)}));
            } else {
                outln!("value ({} bytes) :", value.len());
                out!("{}", hexdump(&value));
            }
            Ok(())
        }
        RadosCommand::Rmomapkey { object, key } => {
            let ioctx = open(global, pool, namespace).await?;
            ioctx
                .omap_rm(&object, [Bytes::from(key.into_bytes())])
                .await
                .map(drop)
                .map_err(rados_error)
        }
        RadosCommand::Listomapkeys { object } => {
            let ioctx = open(global, pool, namespace).await?;
            let entries = ioctx
                .omap_list_all(&object, Bytes::new(), false)
                .await
                .map_err(rados_error)?;
            if format.is_json() {
                let keys: Vec<Value> = entries.iter().map(|(key, _)| text_value(key)).collect();
                format.print_json(&json!(keys));
            } else {
                for (key, _) in entries {
                    outln!("{}", String::from_utf8_lossy(&key));
                }
            }
            Ok(())
        }
        RadosCommand::Listomapvals { object } => {
            let ioctx = open(global, pool, namespace).await?;
            let entries = ioctx
                .omap_list_all(&object, Bytes::new(), true)
                .await
                .map_err(rados_error)?;
            if format.is_json() {
                let map: serde_json::Map<String, Value> = entries
                    .iter()
                    .map(|(key, value)| {
                        (String::from_utf8_lossy(key).into_owned(), text_value(value))
                    })
                    .collect();
                format.print_json(&Value::Object(map));
            } else {
                for (key, value) in entries {
                    outln!("{}", String::from_utf8_lossy(&key));
                    outln!("value ({} bytes) :", value.len());
                    out!("{}", hexdump(&value));
                    outln!();
                }
            }
            Ok(())
        }
        RadosCommand::Bench(bench_args) => {
            bench_args.check()?;
            let ioctx = open(global, pool, namespace).await?;
            bench::run(&ioctx, bench_args, format).await
        }
        RadosCommand::Cleanup(cleanup_args) => {
            let ioctx = open(global, pool, namespace).await?;
            bench::cleanup_command(&ioctx, cleanup_args).await
        }
    }
}

/// Writes `data` as the object's whole content, in [`OP_SIZE`] pieces when it is large.
async fn put(ioctx: &IoCtx, object: &str, data: Bytes) -> Result<()> {
    let context = || format!("error putting {}/{object}", ioctx.pool_name());
    let first = data.slice(..data.len().min(OP_SIZE));
    ioctx
        .write_full(object, first)
        .await
        .map_err(rados_error)
        .with_context(context)?;
    let mut offset = OP_SIZE;
    while offset < data.len() {
        let piece = data.slice(offset..data.len().min(offset + OP_SIZE));
        ioctx
            .write(object, offset as u64, piece)
            .await
            .map_err(rados_error)
            .with_context(context)?;
        offset += OP_SIZE;
    }
    Ok(())
}

/// Reads the object in [`OP_SIZE`] pieces into `file` (or stdout).
async fn get(ioctx: &IoCtx, object: &str, file: &str) -> Result<()> {
    let context = || format!("error getting {}/{object}", ioctx.pool_name());
    let mut out: Box<dyn Write> = if file == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(PathBuf::from(file))
                .with_context(|| format!("cannot create output file `{file}`"))?,
        ))
    };
    let mut offset = 0u64;
    loop {
        let piece = ioctx
            .read(object, offset, OP_SIZE as u64)
            .await
            .map_err(rados_error)
            .with_context(context)?;
        out.write_all(&piece)
            .with_context(|| format!("cannot write `{file}`"))?;
        offset += piece.len() as u64;
        if piece.len() < OP_SIZE {
            break;
        }
    }
    out.flush()
        .with_context(|| format!("cannot write `{file}`"))?;
    Ok(())
}

async fn ls(ioctx: &IoCtx, all: bool, format: Format) -> Result<()> {
    let mut lister = ioctx.list_objects().all_namespaces(all);
    let mut entries = Vec::new();
    let stdout = std::io::stdout();
    while let Some(entry) = lister.next().await {
        let entry = entry.map_err(rados_error)?;
        if format.is_json() {
            entries.push(entry);
        } else {
            let mut out = stdout.lock();
            if all {
                writeln!(out, "{}\t{}", entry.namespace, entry.name)?;
            } else {
                writeln!(out, "{}", entry.name)?;
            }
        }
    }
    if format.is_json() {
        format.print_json(&serde_json::to_value(&entries)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hexdump_matches_ceph_layout() {
        assert_eq!(
            hexdump(b"value"),
            "00000000  76 61 6c 75 65                                    |value|\n00000005\n"
        );
        let long = hexdump(&[0x41; 17]);
        assert!(
            long.starts_with("00000000  41 41 41 41 41 41 41 41  41"),
            "{long}"
        );
        assert!(long.contains("\n00000010  41 "), "{long}");
        assert!(long.ends_with("00000011\n"), "{long}");
    }
}
