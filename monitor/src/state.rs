//! The monitors' replicated state machine ([`MapMachine`]): the cluster map, the monitor
//! members (Raft id, name, address), the recent incrementals, and the commands
//! ([`MonCommand`]) that change them.
//!
//! Everything here is deterministic: times come from the proposal, ids are picked by rules
//! over the current state, and every collection is ordered, so every monitor reaches a
//! byte-identical map at each epoch. A command that changes nothing makes no epoch.
//!
//! Snapshot format ([`STATE_FORMAT`] = 1): serde_json of `{format, map, members, history,
//! auto_out}`; the map inside is `clustermap`'s own versioned serde form.
//!
//! The applied state is published to the gRPC services through a `watch` channel as a
//! [`MapView`] (cheap to clone: everything behind `Arc`s).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use clustermap::{
    ChangeError, ClusterMap, CrushEdit, Epoch, Fullness, Incremental, MapChange, MonitorInfo,
    NewOsd, OsdId, Uuid,
};
use crush::CrushMap;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::node::{ApplyContext, MembershipChange, StateMachine};

/// The version of the snapshot format this build writes and reads.
pub const STATE_FORMAT: u32 = 1;

/// A monitor in the Raft configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Raft id.
    pub id: u64,
    /// Display name (unique).
    pub name: String,
    /// gRPC address (`host:port`).
    pub addr: String,
}

/// An OSD's boot, as applied (see `OsdReport.Boot` in mon.proto).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsdBoot {
    /// Its identity.
    pub uuid: Uuid,
    /// Its id, when it has one.
    pub id: Option<OsdId>,
    /// Where it serves.
    pub addr: String,
    /// Its CRUSH host.
    pub host: String,
    /// Ancestors above the host, nearest first.
    pub location: Vec<(String, String)>,
    /// CRUSH weight for a new OSD (16.16).
    pub crush_weight: u32,
    /// Device class.
    pub device_class: Option<String>,
}

/// Every change the monitors replicate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MonCommand {
    /// Creates the cluster's first map (proposed by the first leader; later ones are no-ops).
    CreateCluster {
        /// The cluster id.
        fsid: Uuid,
        /// The initial monitors.
        members: Vec<Member>,
        /// The CRUSH type the default rule puts replicas apart across (`[mon.pool_defaults]
        /// failure_domain`); empty in entries written before the field existed, which
        /// means `host`, the default then.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        failure_domain: String,
    },
    /// Validated map changes making one epoch (pools, flags, OSD in/out/down, CRUSH map).
    Change {
        /// The changes, in order.
        changes: Vec<MapChange>,
        /// A short description for the reply.
        summary: String,
    },
    /// An OSD boots.
    Boot(OsdBoot),
    /// Failure policy: mark an OSD down, unless it rebooted since the decision.
    PolicyMarkDown {
        /// The OSD.
        id: OsdId,
        /// Its `up_from` when the leader decided.
        up_from: Epoch,
    },
    /// Failure policy: mark an OSD out, unless it came back since the decision.
    PolicyMarkOut {
        /// The OSD.
        id: OsdId,
        /// Its `down_at` when the leader decided.
        down_at: Epoch,
    },
    /// Failure policy: record an OSD's fullness, judged from its beacons' storage usage.
    PolicySetFullness {
        /// The OSD.
        id: OsdId,
        /// What its usage calls for.
        fullness: Fullness,
    },
    /// Adds a monitor (a Raft configuration change).
    AddMonitor(Member),
    /// Removes a monitor (a Raft configuration change).
    RemoveMonitor {
        /// Raft id.
        id: u64,
    },
    /// A monitor announces the address it serves on.
    SetMonitorAddress {
        /// Raft id.
        id: u64,
        /// `host:port`.
        addr: String,
    },
}

/// A successful command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    /// The epoch after the command (unchanged when it changed nothing).
    pub epoch: Epoch,
    /// What happened.
    pub message: String,
    /// The id of what it created (pool, bucket, rule, OSD), else 0.
    pub created_id: i64,
}

/// Why a command was refused; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The map refused the change.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// An argument is malformed.
    #[error("invalid {argument} `{value}`: {reason}")]
    InvalidArgument {
        /// The argument.
        argument: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The first leader has not created the cluster yet.
    #[error("the cluster has not been created yet (waiting for the first leader)")]
    NotCreated,
    /// `CreateCluster` after the cluster exists.
    #[error("the cluster already exists")]
    AlreadyCreated,
    /// A monitor with that id or name exists.
    #[error("monitor {what} already exists")]
    MonitorExists {
        /// The id or name.
        what: String,
    },
    /// No monitor has that id.
    #[error("monitor {id} does not exist")]
    MonitorNotFound {
        /// The id.
        id: u64,
    },
    /// A policy decision no longer applies (the OSD rebooted or came back).
    #[error("{reason}")]
    Stale {
        /// Why.
        reason: String,
    },
}

/// The applied state as the services read it.
#[derive(Clone, Debug, Default)]
pub struct MapView {
    /// The map; `None` until the cluster is created.
    pub map: Option<Arc<ClusterMap>>,
    /// The monitors by Raft id.
    pub members: Arc<BTreeMap<u64, Member>>,
    /// Recent incrementals by the epoch they produce.
    pub history: Arc<BTreeMap<Epoch, Arc<Incremental>>>,
    /// The Raft index of the last applied entry.
    pub applied_index: u64,
}

impl MapView {
    /// The map's epoch (0 before creation).
    pub fn epoch(&self) -> Epoch {
        self.map.as_ref().map_or(0, |map| map.epoch())
    }
}

/// Local (not replicated) facts the state machine needs to propose its leader duties.
pub struct LocalInfo {
    /// This monitor's Raft id.
    pub id: u64,
    /// The fsid for a new cluster, if configured.
    pub fsid: Option<Uuid>,
    /// The initial members (from the config), with their names.
    pub initial_members: Vec<(u64, String)>,
    /// Resolves a member's current address (the transport's view; own address for self).
    pub resolve_address: Box<dyn Fn(u64) -> Option<String> + Send>,
    /// How many incrementals to keep.
    pub history_limit: usize,
    /// The failure domain of the default CRUSH rule of a new cluster (a CRUSH type name).
    pub failure_domain: String,
}

#[derive(Serialize, Deserialize)]
struct SnapshotData {
    format: u32,
    map: Option<ClusterMap>,
    members: BTreeMap<u64, Member>,
    history: Vec<Incremental>,
    auto_out: BTreeSet<OsdId>,
}

/// The replicated state machine of the monitors.
pub struct MapMachine {
    map: Option<Arc<ClusterMap>>,
    members: Arc<BTreeMap<u64, Member>>,
    history: Arc<BTreeMap<Epoch, Arc<Incremental>>>,
    /// OSDs the failure policy marked out: marked in again when they boot (unless `noin`).
    auto_out: BTreeSet<OsdId>,
    applied_index: u64,
    local: LocalInfo,
    published: watch::Sender<MapView>,
}

impl MapMachine {
    /// An empty state (before the cluster is created) that publishes to `published`.
    pub fn new(local: LocalInfo, published: watch::Sender<MapView>) -> Self {
        MapMachine {
            map: None,
            members: Arc::new(BTreeMap::new()),
            history: Arc::new(BTreeMap::new()),
            auto_out: BTreeSet::new(),
            applied_index: 0,
            local,
            published,
        }
    }

    /// The snapshot data of an empty state: what every initial member bootstraps with.
    pub fn empty_snapshot() -> Vec<u8> {
        encode_snapshot(&SnapshotData {
            format: STATE_FORMAT,
            map: None,
            members: BTreeMap::new(),
            history: Vec::new(),
            auto_out: BTreeSet::new(),
        })
    }

    /// The current map.
    pub fn map(&self) -> Option<&Arc<ClusterMap>> {
        self.map.as_ref()
    }

    fn require_map(&self) -> Result<&Arc<ClusterMap>, CommandError> {
        self.map.as_ref().ok_or(CommandError::NotCreated)
    }

    fn publish(&self) {
        self.published.send_replace(MapView {
            map: self.map.clone(),
            members: Arc::clone(&self.members),
            history: Arc::clone(&self.history),
            applied_index: self.applied_index,
        });
    }

    /// The map changes a command stands for, computed against `map`, with a summary and
    /// the created id. Pure: used both to validate and to apply.
    fn plan(
        &self,
        map: &ClusterMap,
        command: &MonCommand,
    ) -> Result<(Vec<MapChange>, String, i64), CommandError> {
        Ok(match command {
            MonCommand::CreateCluster { .. } => return Err(CommandError::AlreadyCreated),
            MonCommand::Change { changes, summary } => {
                let created = match changes.first() {
                    Some(MapChange::CreatePool(_)) => map.next_pool_id(),
                    _ => 0,
                };
                (changes.clone(), summary.clone(), created)
            }
            MonCommand::Boot(boot) => plan_boot(map, boot, &self.auto_out)?,
            MonCommand::PolicyMarkDown { id, up_from } => {
                let osd = map.osd(*id).ok_or(ChangeError::OsdNotFound { id: *id })?;
                if !osd.up || osd.up_from != *up_from {
                    return Err(CommandError::Stale {
                        reason: format!("osd.{id} rebooted or is down already"),
                    });
                }
                (
                    vec![MapChange::MarkDown { id: *id }],
                    format!("marked osd.{id} down"),
                    0,
                )
            }
            MonCommand::PolicyMarkOut { id, down_at } => {
                let osd = map.osd(*id).ok_or(ChangeError::OsdNotFound { id: *id })?;
                if osd.up || !osd.is_in || osd.down_at != *down_at {
                    return Err(CommandError::Stale {
                        reason: format!("osd.{id} is up again or out already"),
                    });
                }
                (
                    vec![MapChange::MarkOut { id: *id }],
                    format!("marked osd.{id} out"),
                    0,
                )
            }
            MonCommand::PolicySetFullness { id, fullness } => (
                vec![MapChange::SetOsdFullness {
                    id: *id,
                    fullness: *fullness,
                }],
                format!("marked osd.{id} {}", fullness.name()),
                0,
            ),
            MonCommand::AddMonitor(member) => {
                if self.members.contains_key(&member.id) {
                    return Err(CommandError::MonitorExists {
                        what: member.id.to_string(),
                    });
                }
                (
                    vec![MapChange::AddMonitor(MonitorInfo {
                        name: member.name.clone(),
                        address: member.addr.clone(),
                    })],
                    format!(
                        "added monitor {} ({}) at {}",
                        member.id, member.name, member.addr
                    ),
                    member.id as i64,
                )
            }
            MonCommand::RemoveMonitor { id } => {
                let member = self
                    .members
                    .get(id)
                    .ok_or(CommandError::MonitorNotFound { id: *id })?;
                let changes = if map.monitor(&member.name).is_some() {
                    vec![MapChange::RemoveMonitor {
                        name: member.name.clone(),
                    }]
                } else {
                    Vec::new()
                };
                (
                    changes,
                    format!("removed monitor {id} ({})", member.name),
                    0,
                )
            }
            MonCommand::SetMonitorAddress { id, addr } => {
                let member = self
                    .members
                    .get(id)
                    .ok_or(CommandError::MonitorNotFound { id: *id })?;
                let mut changes = Vec::new();
                if map.monitor(&member.name).is_some() {
                    changes.push(MapChange::RemoveMonitor {
                        name: member.name.clone(),
                    });
                }
                changes.push(MapChange::AddMonitor(MonitorInfo {
                    name: member.name.clone(),
                    address: addr.clone(),
                }));
                (changes, format!("monitor {id} is at {addr}"), 0)
            }
        })
    }

    fn install(&mut self, next: ClusterMap, incremental: Option<Incremental>) {
        let epoch = next.epoch();
        let mut history = (*self.history).clone();
        if let Some(incremental) = incremental {
            history.insert(epoch, Arc::new(incremental));
        }
        while history.len() > self.local.history_limit.max(1) {
            history.pop_first();
        }
        self.history = Arc::new(history);
        self.map = Some(Arc::new(next));
    }
}

/// The lowest OSD id neither the map nor the CRUSH map uses.
fn free_osd_id(map: &ClusterMap) -> Option<OsdId> {
    (0..OsdId::MAX).find(|id| !map.exists(*id) && !map.crush().devices.contains_key(id))
}

fn plan_boot(
    map: &ClusterMap,
    boot: &OsdBoot,
    auto_out: &BTreeSet<OsdId>,
) -> Result<(Vec<MapChange>, String, i64), CommandError> {
    use clustermap::ClusterFlag;
    let mut changes = Vec::new();
    let id = match map.osd_by_uuid(boot.uuid) {
        Some(osd) => {
            if let Some(given) = boot.id {
                if given != osd.id {
                    return Err(CommandError::InvalidArgument {
                        argument: "osd_id".to_owned(),
                        value: given.to_string(),
                        reason: format!("uuid {} belongs to osd.{}", boot.uuid, osd.id),
                    });
                }
            }
            if !osd.is_in && auto_out.contains(&osd.id) && !map.is_flag_set(ClusterFlag::NoIn) {
                changes.push(MapChange::MarkIn { id: osd.id });
            }
            osd.id
        }
        None => {
            let id = match boot.id {
                Some(id) => id,
                None => free_osd_id(map).ok_or(ChangeError::OsdIdsExhausted)?,
            };
            changes.push(MapChange::NewOsd(NewOsd {
                uuid: boot.uuid,
                id: Some(id),
                host: boot.host.clone(),
                location: boot.location.clone(),
                crush_weight: boot.crush_weight,
                device_class: boot.device_class.clone(),
            }));
            if !map.is_flag_set(ClusterFlag::NoIn) {
                changes.push(MapChange::MarkIn { id });
            }
            id
        }
    };
    if !map.is_flag_set(ClusterFlag::NoUp) {
        changes.insert(
            changes
                .iter()
                .position(|change| matches!(change, MapChange::MarkIn { .. }))
                .unwrap_or(changes.len()),
            MapChange::BootOsd {
                id,
                uuid: boot.uuid,
                address: boot.addr.clone(),
            },
        );
    }
    Ok((
        changes,
        format!("osd.{id} booted at {}", boot.addr),
        i64::from(id),
    ))
}

fn encode_snapshot(data: &SnapshotData) -> Vec<u8> {
    // Serializing plain data with string keys cannot fail.
    serde_json::to_vec(data).unwrap_or_default()
}

impl StateMachine for MapMachine {
    type Command = MonCommand;
    type Output = CommandOutput;
    type Error = CommandError;

    fn validate(&self, command: &MonCommand) -> Result<(), CommandError> {
        match command {
            MonCommand::CreateCluster {
                fsid,
                members,
                failure_domain,
            } => {
                if self.map.is_some() {
                    return Err(CommandError::AlreadyCreated);
                }
                let monitors = monitor_infos(members);
                ClusterMap::new(*fsid, 0, monitors, initial_crush(failure_domain)?)?;
                Ok(())
            }
            other => {
                let map = self.require_map()?;
                let (changes, _, _) = self.plan(map, other)?;
                map.validate(&changes)?;
                Ok(())
            }
        }
    }

    fn apply(
        &mut self,
        command: &MonCommand,
        context: &ApplyContext,
    ) -> Result<CommandOutput, CommandError> {
        self.applied_index = context.index;
        let result = self.apply_inner(command, context);
        self.publish();
        result
    }

    fn membership_change(command: &MonCommand) -> Option<MembershipChange> {
        match command {
            MonCommand::AddMonitor(member) => Some(MembershipChange::AddVoter(member.id)),
            MonCommand::RemoveMonitor { id } => Some(MembershipChange::RemoveVoter(*id)),
            _ => None,
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        encode_snapshot(&SnapshotData {
            format: STATE_FORMAT,
            map: self.map.as_deref().cloned(),
            members: (*self.members).clone(),
            history: self.history.values().map(|inc| (**inc).clone()).collect(),
            auto_out: self.auto_out.clone(),
        })
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), String> {
        let data: SnapshotData =
            serde_json::from_slice(data).map_err(|error| format!("snapshot data: {error}"))?;
        if data.format != STATE_FORMAT {
            return Err(format!(
                "snapshot format {} is not supported (this build reads {STATE_FORMAT})",
                data.format
            ));
        }
        self.map = data.map.map(Arc::new);
        self.members = Arc::new(data.members);
        self.history = Arc::new(
            data.history
                .into_iter()
                .map(|inc| (inc.to_epoch, Arc::new(inc)))
                .collect(),
        );
        self.auto_out = data.auto_out;
        self.publish();
        Ok(())
    }

    fn leader_duties(&self) -> Vec<MonCommand> {
        if self.map.is_some() {
            return Vec::new();
        }
        let fsid = self.local.fsid.unwrap_or_else(random_uuid);
        let members = self
            .local
            .initial_members
            .iter()
            .map(|(id, name)| Member {
                id: *id,
                name: name.clone(),
                addr: (self.local.resolve_address)(*id)
                    .unwrap_or_else(|| format!("unknown-address-of-mon-{id}")),
            })
            .collect();
        vec![MonCommand::CreateCluster {
            fsid,
            members,
            failure_domain: self.local.failure_domain.clone(),
        }]
    }

    fn member_addresses(&self) -> Vec<(u64, String)> {
        self.members
            .values()
            .map(|member| (member.id, member.addr.clone()))
            .collect()
    }
}

/// The CRUSH map of a new cluster: Ceph's default (root `default`, rule 0
/// `replicated_rule`: chooseleaf over hosts), with the rule rebuilt over `failure_domain`
/// when another one is configured, as `ceph osd crush rule create-replicated` builds it
/// (`choose firstn 0 type osd` for "osd"). Ceph's vstart does the same
/// (`osd_crush_chooseleaf_type = 0`) so that size-3 pools work with every OSD on one host.
fn initial_crush(failure_domain: &str) -> Result<CrushMap, CommandError> {
    let mut crush = CrushMap::new_default();
    if failure_domain.is_empty() || failure_domain == "host" {
        return Ok(crush);
    }
    let invalid = |reason: String| CommandError::InvalidArgument {
        argument: "failure_domain".to_owned(),
        value: failure_domain.to_owned(),
        reason,
    };
    let rule = crush
        .rules
        .remove(&0)
        .ok_or_else(|| invalid("the default CRUSH map has no rule 0".to_owned()))?;
    let id = crush
        .add_replicated_rule(
            &rule.name,
            crush::builder::DEFAULT_ROOT,
            failure_domain,
            None,
        )
        .map_err(|error| invalid(error.to_string()))?;
    debug_assert_eq!(id, 0, "the rebuilt default rule keeps id 0");
    Ok(crush)
}

fn monitor_infos(members: &[Member]) -> Vec<MonitorInfo> {
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by_key(|member| member.id);
    sorted
        .into_iter()
        .map(|member| MonitorInfo {
            name: member.name.clone(),
            address: member.addr.clone(),
        })
        .collect()
}

impl MapMachine {
    fn apply_inner(
        &mut self,
        command: &MonCommand,
        context: &ApplyContext,
    ) -> Result<CommandOutput, CommandError> {
        if let MonCommand::CreateCluster {
            fsid,
            members,
            failure_domain,
        } = command
        {
            if self.map.is_some() {
                return Err(CommandError::AlreadyCreated);
            }
            let map = ClusterMap::new(
                *fsid,
                context.proposed_at_ms,
                monitor_infos(members),
                initial_crush(failure_domain)?,
            )?;
            self.members = Arc::new(
                members
                    .iter()
                    .map(|member| (member.id, member.clone()))
                    .collect(),
            );
            let epoch = map.epoch();
            self.install(map, None);
            tracing::info!(%fsid, epoch, "cluster created");
            return Ok(CommandOutput {
                epoch,
                message: format!("cluster {fsid} created"),
                created_id: 0,
            });
        }
        let map = Arc::clone(self.require_map()?);
        let planned = self.plan(&map, command);
        // Membership is Raft's decision, already taken when this runs: record it even if
        // the map refuses the matching edit (validation before proposal makes that rare).
        match command {
            MonCommand::AddMonitor(member) => {
                let mut members = (*self.members).clone();
                members.insert(member.id, member.clone());
                self.members = Arc::new(members);
            }
            MonCommand::RemoveMonitor { id } => {
                let mut members = (*self.members).clone();
                members.remove(id);
                self.members = Arc::new(members);
            }
            MonCommand::SetMonitorAddress { id, addr } if planned.is_ok() => {
                let mut members = (*self.members).clone();
                if let Some(member) = members.get_mut(id) {
                    member.addr = addr.clone();
                }
                self.members = Arc::new(members);
            }
            _ => {}
        }
        let (changes, message, mut created_id) = planned?;
        let next = map.apply(&changes, context.proposed_at_ms)?;
        if let [MapChange::Crush(edit)] = changes.as_slice() {
            created_id = created_crush_id(edit, next.crush());
        }
        let incremental =
            Incremental::diff(&map, &next).map_err(|error| CommandError::InvalidArgument {
                argument: "map".to_owned(),
                value: String::new(),
                reason: error.to_string(),
            })?;
        match command {
            MonCommand::PolicyMarkOut { id, .. } => {
                self.auto_out.insert(*id);
            }
            MonCommand::Boot(_) => {
                if let Ok(id) = OsdId::try_from(created_id) {
                    self.auto_out.remove(&id);
                }
            }
            MonCommand::Change { changes, .. } => {
                for change in changes {
                    if let MapChange::MarkIn { id } | MapChange::MarkOut { id } = change {
                        self.auto_out.remove(id);
                    }
                }
            }
            _ => {}
        }
        if incremental.is_empty() {
            return Ok(CommandOutput {
                epoch: map.epoch(),
                message: format!("{message} (no change)"),
                created_id,
            });
        }
        let epoch = next.epoch();
        self.install(next, Some(incremental));
        Ok(CommandOutput {
            epoch,
            message,
            created_id,
        })
    }
}

/// The id of the bucket or rule a CRUSH edit created (0 for other edits).
fn created_crush_id(edit: &CrushEdit, crush: &CrushMap) -> i64 {
    match edit {
        CrushEdit::AddBucket { name, .. } => crush
            .bucket_by_name(name)
            .map_or(0, |bucket| i64::from(bucket.id)),
        CrushEdit::CreateReplicatedRule { name, .. }
        | CrushEdit::CreateErasureRule { name, .. } => crush
            .rule_by_name(name)
            .map_or(0, |rule| i64::from(rule.id)),
        _ => 0,
    }
}

/// A random (version 4) uuid from the OS's randomness, falling back to the clock.
pub fn random_uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut bytes))
        .is_ok();
    if !filled {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0);
        bytes = (nanos ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine_with_one_osd() -> MapMachine {
        let (published, _) = watch::channel(MapView::default());
        let mut machine = MapMachine::new(
            LocalInfo {
                id: 1,
                fsid: None,
                initial_members: vec![(1, "a".to_owned())],
                resolve_address: Box::new(|_| None),
                history_limit: 10,
                failure_domain: "host".to_owned(),
            },
            published,
        );
        let mut index = 0;
        let mut apply = |machine: &mut MapMachine, command: MonCommand| {
            index += 1;
            let context = ApplyContext {
                index,
                term: 1,
                proposed_at_ms: 1_000 * index,
                voters: vec![1],
            };
            machine.apply(&command, &context).unwrap()
        };
        apply(
            &mut machine,
            MonCommand::CreateCluster {
                fsid: Uuid::from_bytes([9; 16]),
                members: vec![Member {
                    id: 1,
                    name: "a".to_owned(),
                    addr: "127.0.0.1:7100".to_owned(),
                }],
                failure_domain: "host".to_owned(),
            },
        );
        apply(
            &mut machine,
            MonCommand::Boot(OsdBoot {
                uuid: Uuid::from_bytes([1; 16]),
                id: None,
                addr: "127.0.0.1:7200".to_owned(),
                host: "h0".to_owned(),
                location: Vec::new(),
                crush_weight: crush::WEIGHT_ONE,
                device_class: None,
            }),
        );
        machine
    }

    fn context() -> ApplyContext {
        ApplyContext {
            index: 100,
            term: 1,
            proposed_at_ms: 100_000,
            voters: vec![1],
        }
    }

    #[test]
    fn a_fullness_decision_becomes_a_map_change() {
        let mut machine = machine_with_one_osd();
        let before = machine.map().unwrap().epoch();
        let full = MonCommand::PolicySetFullness {
            id: 0,
            fullness: Fullness::Full,
        };
        machine.validate(&full).unwrap();
        let output = machine.apply(&full, &context()).unwrap();
        assert_eq!(output.message, "marked osd.0 full");
        assert_eq!(output.epoch, before + 1);
        assert_eq!(
            machine.map().unwrap().osd(0).unwrap().fullness,
            Fullness::Full
        );
        // Asking again changes nothing and makes no epoch.
        let output = machine.apply(&full, &context()).unwrap();
        assert_eq!(output.epoch, before + 1);
        assert!(
            output.message.ends_with("(no change)"),
            "{}",
            output.message
        );

        let unknown = MonCommand::PolicySetFullness {
            id: 5,
            fullness: Fullness::Nearfull,
        };
        assert_eq!(
            machine.validate(&unknown).unwrap_err(),
            CommandError::Change(ChangeError::OsdNotFound { id: 5 })
        );
    }
}
