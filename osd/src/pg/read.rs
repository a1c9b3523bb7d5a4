//! Reads, served by the primary of an active PG in the object's op order (so a read never
//! sees a write that is not yet acknowledged): guards, data, stat, xattrs and omap; and
//! listing a PG's objects for clients.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use proto::osd::{self as wire_proto, sub_op_result, OpErrorKind, SubOpResult};

use super::Pg;
use crate::node::Node;
use crate::store::{Eversion, ObjectId, ObjectInfo, StoreError};
use crate::wire::{self, OpFailure, ReadStep};

/// Entries per omap or listing page when the client asks for 0.
const DEFAULT_PAGE: usize = 1000;

impl Pg {
    /// Runs a read op as primary; returns the object's version and one result per step.
    pub async fn primary_read(
        self: &Arc<Self>,
        node: &Arc<Node>,
        object: ObjectId,
        steps: Vec<ReadStep>,
        deadline: Instant,
    ) -> Result<(Eversion, Vec<SubOpResult>), OpFailure> {
        self.wait_active(deadline).await?;
        let _order = self.lock_object(&object).await;
        self.wait_active(deadline).await?;
        let store = Arc::clone(&node.store);
        let pgid = self.id;
        let inline = steps
            .iter()
            .map(ReadStep::data_len)
            .sum::<Option<u64>>()
            .is_some_and(super::runs_inline);
        super::store_work(inline, move || run_reads(&store, pgid, &object, &steps)).await?
    }

    /// A page of the PG's objects (primary of an active PG).
    pub async fn list(
        self: &Arc<Self>,
        node: &Arc<Node>,
        namespace: Option<String>,
        after: Option<ObjectId>,
        max: usize,
        deadline: Instant,
    ) -> Result<(Vec<ObjectId>, bool), OpFailure> {
        self.wait_active(deadline).await?;
        let store = Arc::clone(&node.store);
        let pgid = self.id;
        let max = if max == 0 { DEFAULT_PAGE } else { max };
        let page = tokio::task::spawn_blocking(move || {
            store.list_objects(pgid, namespace.as_deref(), after.as_ref(), max)
        })
        .await
        .map_err(|join| OpFailure::new(OpErrorKind::Internal, join.to_string()))??;
        let more = page.next.is_some();
        Ok((page.objects.into_iter().map(|(id, _)| id).collect(), more))
    }
}

fn stat(
    store: &crate::store::ObjectStore,
    pg: clustermap::PgId,
    object: &ObjectId,
) -> Result<Option<ObjectInfo>, StoreError> {
    match store.stat(pg, object) {
        Ok(info) => Ok(Some(info)),
        Err(StoreError::ObjectNotFound { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

fn run_reads(
    store: &crate::store::ObjectStore,
    pg: clustermap::PgId,
    object: &ObjectId,
    steps: &[ReadStep],
) -> Result<(Eversion, Vec<SubOpResult>), OpFailure> {
    let info = stat(store, pg, object)?;
    let not_found = || StoreError::ObjectNotFound {
        pg,
        object: object.clone(),
    };
    let version = info.map_or(Eversion::ZERO, |info| info.version);
    let mut results = Vec::with_capacity(steps.len());
    for step in steps {
        let result = match step {
            ReadStep::AssertExists => {
                info.ok_or_else(not_found)?;
                None
            }
            ReadStep::AssertVersion(expected) => {
                let actual = info.ok_or_else(not_found)?.version;
                if actual != *expected {
                    return Err(StoreError::VersionMismatch {
                        pg,
                        object: object.clone(),
                        expected: *expected,
                        actual,
                    }
                    .into());
                }
                None
            }
            ReadStep::Read { offset, length } => {
                let data = store.read_bytes(pg, object, *offset, *length)?;
                Some(sub_op_result::Result::Data(data))
            }
            ReadStep::Stat => {
                let info = info.ok_or_else(not_found)?;
                Some(sub_op_result::Result::Stat(wire_proto::ObjectStat {
                    size: info.size,
                    version: Some(wire::ev_to_wire(info.version)),
                    mtime_ns: wire::time_to_nanos(info.mtime),
                }))
            }
            ReadStep::GetXattr(name) => {
                let value = store.get_xattr(pg, object, name)?;
                Some(sub_op_result::Result::XattrValue(Bytes::from(value)))
            }
            ReadStep::GetXattrs => {
                let entries = store
                    .xattrs(pg, object)?
                    .into_iter()
                    .map(|(name, value)| (name, Bytes::from(value)))
                    .collect();
                Some(sub_op_result::Result::Xattrs(wire_proto::Xattrs {
                    entries,
                }))
            }
            ReadStep::OmapList {
                start_after,
                prefix,
                max,
                with_values,
            } => {
                let page = omap_list(store, pg, object, start_after, prefix, *max, *with_values)?;
                Some(sub_op_result::Result::Omap(page))
            }
            ReadStep::OmapGet(keys) => {
                let found = store.omap_get(pg, object, keys)?;
                let entries = found
                    .into_iter()
                    .map(|(key, value)| wire_proto::OmapEntry {
                        key: Bytes::from(key),
                        value: Bytes::from(value),
                    })
                    .collect();
                Some(sub_op_result::Result::Omap(wire_proto::OmapPage {
                    entries,
                    more: false,
                }))
            }
        };
        results.push(SubOpResult { result });
    }
    Ok((version, results))
}

/// An omap page with keys after `start_after` and starting with `prefix`.
fn omap_list(
    store: &crate::store::ObjectStore,
    pg: clustermap::PgId,
    object: &ObjectId,
    start_after: &Bytes,
    prefix: &Bytes,
    max: u32,
    with_values: bool,
) -> Result<wire_proto::OmapPage, StoreError> {
    let max = if max == 0 { DEFAULT_PAGE } else { max as usize };
    let mut cursor: Option<Vec<u8>> = (!start_after.is_empty()).then(|| start_after.to_vec());
    let mut entries = Vec::new();
    loop {
        let page = store.omap_list(pg, object, cursor.as_deref(), max + 1)?;
        let page_more = page.more;
        cursor = page.entries.last().map(|(key, _)| key.clone());
        for (key, value) in page.entries {
            if !key.starts_with(prefix) {
                if key.as_slice() > prefix.as_ref() {
                    return Ok(wire_proto::OmapPage {
                        entries,
                        more: false,
                    });
                }
                continue;
            }
            if entries.len() == max {
                return Ok(wire_proto::OmapPage {
                    entries,
                    more: true,
                });
            }
            entries.push(wire_proto::OmapEntry {
                key: Bytes::from(key),
                value: if with_values {
                    Bytes::from(value)
                } else {
                    Bytes::new()
                },
            });
        }
        if !page_more || cursor.is_none() {
            return Ok(wire_proto::OmapPage {
                entries,
                more: false,
            });
        }
    }
}
