//! Object listing: [`ObjectLister`] walks a pool's PGs in seed order and asks each PG's
//! primary for its objects page by page (`ListObjects`), through the same resend engine as
//! object ops. Its [`ListCursor`] says where it stands, so a listing can stop and resume
//! later from the same point ([`ObjectLister::start_at`]).
//!
//! The PG count is read once, when the listing starts: a pool whose `pg_num` changes during
//! a listing may list objects twice or miss some (Ceph's listing has the same caveat
//! without its hash-order cursor, which Shoal does not have yet).

use std::collections::VecDeque;

use clustermap::PgId;
use futures_util::Stream;
use proto::common::PlacementGroupId;
use proto::osd::{ListObjectsRequest, ObjectName};
use serde::Serialize;

use crate::error::RadosError;
use crate::ioctx::IoCtx;
use crate::rados::{Answer, Target};

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ListEntry {
    /// Its namespace ("" for the default one).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// A position in a listing: the PG being listed and the last object returned from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListCursor {
    /// The PG seed (0..pg_num).
    pub ps: u32,
    /// The last object returned from that PG; `None` at the PG's start.
    pub after: Option<ListEntry>,
}

/// A listing in progress; see the module documentation.
#[derive(Debug)]
pub struct ObjectLister {
    ioctx: IoCtx,
    all_namespaces: bool,
    page_size: u32,
    /// Where the next fetch starts.
    fetch: ListCursor,
    /// The current PG has no more objects to fetch.
    pg_done: bool,
    /// The position after the last entry returned.
    cursor: ListCursor,
    buffer: VecDeque<ListEntry>,
    /// Known once the first page is asked for.
    pg_num: Option<u32>,
    finished: bool,
}

impl ObjectLister {
    pub(crate) fn new(ioctx: IoCtx) -> Self {
        ObjectLister {
            ioctx,
            all_namespaces: false,
            page_size: 0,
            fetch: ListCursor::default(),
            pg_done: false,
            cursor: ListCursor::default(),
            buffer: VecDeque::new(),
            pg_num: None,
            finished: false,
        }
    }

    /// Lists every namespace of the pool, not only the context's.
    pub fn all_namespaces(mut self, all: bool) -> Self {
        self.all_namespaces = all;
        self
    }

    /// Asks for pages of at most `max` objects (0: the OSDs' default, 1000).
    pub fn page_size(mut self, max: u32) -> Self {
        self.page_size = max;
        self
    }

    /// Resumes from a cursor a previous listing returned.
    pub fn start_at(mut self, cursor: ListCursor) -> Self {
        self.fetch = cursor.clone();
        self.cursor = cursor;
        self
    }

    /// The position after the last object returned.
    pub fn cursor(&self) -> &ListCursor {
        &self.cursor
    }

    /// The next object, `None` at the end.
    pub async fn next(&mut self) -> Option<Result<ListEntry, RadosError>> {
        loop {
            if let Some(entry) = self.buffer.pop_front() {
                self.cursor = ListCursor {
                    ps: self.fetch.ps,
                    after: Some(entry.clone()),
                };
                return Some(Ok(entry));
            }
            if self.finished {
                return None;
            }
            if self.pg_done {
                self.fetch = ListCursor {
                    ps: self.fetch.ps + 1,
                    after: None,
                };
                self.cursor = self.fetch.clone();
                self.pg_done = false;
            }
            let pg_num = match self.pg_num {
                Some(pg_num) => pg_num,
                None => match self.ioctx.rados().map().pool(self.ioctx.pool_id()) {
                    Some(pool) => *self.pg_num.insert(pool.pg_num),
                    None => {
                        self.finished = true;
                        return Some(Err(RadosError::PoolNotFound {
                            pool: self.ioctx.pool_name().to_owned(),
                        }));
                    }
                },
            };
            if self.fetch.ps >= pg_num {
                self.finished = true;
                return None;
            }
            if let Err(error) = self.fetch_page().await {
                self.finished = true;
                return Some(Err(error));
            }
        }
    }

    /// Fetches the next page of the current PG into the buffer.
    async fn fetch_page(&mut self) -> Result<(), RadosError> {
        let pgid = PgId::new(self.ioctx.pool_id(), self.fetch.ps);
        let label = format!("pg {pgid}");
        let base = ListObjectsRequest {
            epoch: 0,
            pg: Some(PlacementGroupId {
                pool: pgid.pool,
                seed: pgid.ps,
            }),
            namespace: self.ioctx.namespace().to_owned(),
            all_namespaces: self.all_namespaces,
            start_after: self.fetch.after.as_ref().map(|entry| ObjectName {
                namespace: entry.namespace.clone(),
                name: entry.name.clone(),
            }),
            max: self.page_size,
        };
        let label_ref = label.as_str();
        let reply = self
            .ioctx
            .rados()
            .submit(label_ref, "the listing", Target::Pg(pgid), |attempt| {
                let mut request = base.clone();
                request.epoch = attempt.epoch;
                let mut client = attempt.client;
                async move {
                    let reply = client.list_objects(request).await?.into_inner();
                    Ok(match &reply.error {
                        None => Answer::Done(reply),
                        Some(error) => {
                            Answer::from_error(attempt.osd, label_ref, reply.epoch, error)
                        }
                    })
                }
            })
            .await?;
        let entries: Vec<ListEntry> = reply
            .objects
            .into_iter()
            .map(|object| ListEntry {
                namespace: object.namespace,
                name: object.name,
            })
            .collect();
        if let Some(last) = entries.last() {
            self.fetch.after = Some(last.clone());
        }
        // A page that says "more" but brought nothing would loop forever: treat it as the end.
        self.pg_done = !reply.more || entries.is_empty();
        self.buffer.extend(entries);
        Ok(())
    }

    /// Every remaining object.
    pub async fn collect_all(mut self) -> Result<Vec<ListEntry>, RadosError> {
        let mut all = Vec::new();
        while let Some(entry) = self.next().await {
            all.push(entry?);
        }
        Ok(all)
    }

    /// The listing as a stream.
    pub fn into_stream(self) -> impl Stream<Item = Result<ListEntry, RadosError>> {
        futures_util::stream::unfold(self, |mut lister| async move {
            lister.next().await.map(|item| (item, lister))
        })
    }
}
