//! Turns the `Command` messages of mon.proto into replicated [`MonCommand`]s, checking
//! every argument that can be checked without the map, and resolving names (CRUSH rules)
//! against the map the leader has. Errors name the proto field at fault.

use std::collections::HashMap;

use clustermap::{ClusterFlag, ClusterMap, CrushEdit, MapChange, PoolSetting, PoolSpec};
use proto::mon::command::Kind;
use proto::mon::Command;

use crate::config::PoolDefaults;
use crate::state::{CommandError, Member, MonCommand};

fn invalid(argument: &str, value: impl ToString, reason: impl Into<String>) -> CommandError {
    CommandError::InvalidArgument {
        argument: argument.to_owned(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn require_name(argument: &str, name: &str) -> Result<(), CommandError> {
    if name.trim().is_empty() {
        return Err(invalid(argument, name, "must not be empty"));
    }
    Ok(())
}

fn location(map: &HashMap<String, String>) -> Result<Vec<(String, String)>, CommandError> {
    let mut pairs: Vec<(String, String)> = map
        .iter()
        .map(|(kind, name)| (kind.clone(), name.clone()))
        .collect();
    pairs.sort();
    for (kind, name) in &pairs {
        if kind.is_empty() || name.is_empty() {
            return Err(invalid(
                "location",
                format!("{kind}={name}"),
                "each pair needs a type and a bucket name",
            ));
        }
    }
    Ok(pairs)
}

fn crush_weight(argument: &str, weight: f64) -> Result<u32, CommandError> {
    crush::builder::weight_from_f64(weight)
        .map_err(|error| invalid(argument, weight, error.to_string()))
}

fn osd_ids(ids: &[i32]) -> Result<(), CommandError> {
    if ids.is_empty() {
        return Err(invalid("ids", "[]", "name at least one OSD"));
    }
    if let Some(bad) = ids.iter().find(|id| **id < 0) {
        return Err(invalid("ids", bad, "OSD ids are >= 0"));
    }
    Ok(())
}

fn flag(value: &str) -> Result<ClusterFlag, CommandError> {
    value.parse().map_err(|_| {
        let known: Vec<&str> = ClusterFlag::ALL.iter().map(|flag| flag.name()).collect();
        invalid(
            "flag",
            value,
            format!("expected one of {}", known.join(", ")),
        )
    })
}

/// Translates a command; `map` is the leader's current map (`None` before creation).
pub fn translate(
    command: &Command,
    map: Option<&ClusterMap>,
    defaults: &PoolDefaults,
) -> Result<MonCommand, CommandError> {
    let Some(kind) = &command.kind else {
        return Err(invalid("command", "", "no command given"));
    };
    let need_map = || map.ok_or(CommandError::NotCreated);
    Ok(match kind {
        Kind::PoolCreate(create) => {
            require_name("name", &create.name)?;
            let map = need_map()?;
            let pg_num = positive(
                "pg_num",
                create.pg_num,
                "a pool needs at least 1 placement group",
            )?
            .unwrap_or(defaults.pg_num);
            let size = positive("size", create.size, "a pool needs at least 1 replica")?
                .unwrap_or(defaults.size);
            let mut spec = PoolSpec::replicated(&create.name, size, pg_num);
            spec.min_size = positive(
                "min_size",
                create.min_size,
                "at least 1 replica must accept writes",
            )?;
            if !create.crush_rule.is_empty() {
                let rule = match map.crush().rule_by_name(&create.crush_rule) {
                    Some(rule) => rule.id,
                    None => create.crush_rule.parse::<u32>().map_err(|_| {
                        invalid(
                            "crush_rule",
                            &create.crush_rule,
                            "no rule has this name or id",
                        )
                    })?,
                };
                spec.crush_rule = Some(rule);
            }
            MonCommand::Change {
                changes: vec![MapChange::CreatePool(spec)],
                summary: format!("pool '{}' created", create.name),
            }
        }
        Kind::PoolRemove(remove) => {
            require_name("name", &remove.name)?;
            MonCommand::Change {
                changes: vec![MapChange::RemovePool {
                    name: remove.name.clone(),
                }],
                summary: format!("pool '{}' removed", remove.name),
            }
        }
        Kind::PoolSet(set) => {
            require_name("name", &set.name)?;
            let map = need_map()?;
            let setting = PoolSetting::parse(&set.key, &set.value, map.crush())?;
            MonCommand::Change {
                summary: format!("set pool '{}' {} to {}", set.name, set.key, set.value),
                changes: vec![MapChange::SetPool {
                    name: set.name.clone(),
                    setting,
                }],
            }
        }
        Kind::CrushAddBucket(add) => {
            require_name("name", &add.name)?;
            require_name("bucket_type", &add.bucket_type)?;
            crush(
                format!("added bucket {} type {}", add.name, add.bucket_type),
                CrushEdit::AddBucket {
                    name: add.name.clone(),
                    type_name: add.bucket_type.clone(),
                    location: location(&add.location)?,
                },
            )
        }
        Kind::CrushMove(mv) => {
            require_name("name", &mv.name)?;
            if mv.location.is_empty() {
                return Err(invalid(
                    "location",
                    "",
                    "name at least one type=bucket pair",
                ));
            }
            crush(
                format!("moved item {}", mv.name),
                CrushEdit::Move {
                    name: mv.name.clone(),
                    location: location(&mv.location)?,
                },
            )
        }
        Kind::CrushReweight(reweight) => {
            require_name("name", &reweight.name)?;
            crush(
                format!("reweighted item {} to {}", reweight.name, reweight.weight),
                CrushEdit::Reweight {
                    name: reweight.name.clone(),
                    weight: crush_weight("weight", reweight.weight)?,
                },
            )
        }
        Kind::CrushRemove(remove) => {
            require_name("name", &remove.name)?;
            crush(
                format!("removed item {} from the crush map", remove.name),
                CrushEdit::Remove {
                    name: remove.name.clone(),
                },
            )
        }
        Kind::CrushRuleCreateReplicated(rule) => {
            require_name("name", &rule.name)?;
            require_name("root", &rule.root)?;
            require_name("failure_domain", &rule.failure_domain)?;
            crush(
                format!("created rule {}", rule.name),
                CrushEdit::CreateReplicatedRule {
                    name: rule.name.clone(),
                    root: rule.root.clone(),
                    failure_domain: rule.failure_domain.clone(),
                    class: (!rule.device_class.is_empty()).then(|| rule.device_class.clone()),
                },
            )
        }
        Kind::CrushRuleRemove(rule) => {
            require_name("name", &rule.name)?;
            crush(
                format!("removed rule {}", rule.name),
                CrushEdit::RemoveRule {
                    name: rule.name.clone(),
                },
            )
        }
        Kind::CrushSetMap(set) => {
            let crush = crush::text::parse(&set.text).map_err(|error| {
                invalid("text", format!("line {}", error.line()), error.to_string())
            })?;
            MonCommand::Change {
                changes: vec![MapChange::SetCrushMap(Box::new(crush))],
                summary: "set the crush map".to_owned(),
            }
        }
        Kind::OsdIn(ids) => {
            osd_ids(&ids.ids)?;
            MonCommand::Change {
                changes: ids
                    .ids
                    .iter()
                    .map(|id| MapChange::MarkIn { id: *id })
                    .collect(),
                summary: format!("marked in {}", osd_list(&ids.ids)),
            }
        }
        Kind::OsdOut(ids) => {
            osd_ids(&ids.ids)?;
            MonCommand::Change {
                changes: ids
                    .ids
                    .iter()
                    .map(|id| MapChange::MarkOut { id: *id })
                    .collect(),
                summary: format!("marked out {}", osd_list(&ids.ids)),
            }
        }
        Kind::OsdDown(ids) => {
            osd_ids(&ids.ids)?;
            MonCommand::Change {
                changes: ids
                    .ids
                    .iter()
                    .map(|id| MapChange::MarkDown { id: *id })
                    .collect(),
                summary: format!("marked down {}", osd_list(&ids.ids)),
            }
        }
        Kind::OsdReweight(reweight) => {
            osd_ids(&[reweight.id])?;
            if !reweight.weight.is_finite() || !(0.0..=1.0).contains(&reweight.weight) {
                return Err(invalid(
                    "weight",
                    reweight.weight,
                    "must be between 0.0 and 1.0",
                ));
            }
            let weight = (reweight.weight * f64::from(crush::WEIGHT_ONE)).round() as u32;
            MonCommand::Change {
                changes: vec![MapChange::Reweight {
                    id: reweight.id,
                    weight,
                }],
                summary: format!("reweighted osd.{} to {}", reweight.id, reweight.weight),
            }
        }
        Kind::SetFlag(value) => {
            let flag = flag(value)?;
            MonCommand::Change {
                changes: vec![MapChange::SetFlag(flag)],
                summary: format!("{flag} is set"),
            }
        }
        Kind::UnsetFlag(value) => {
            let flag = flag(value)?;
            MonCommand::Change {
                changes: vec![MapChange::UnsetFlag(flag)],
                summary: format!("{flag} is unset"),
            }
        }
        Kind::MonAdd(add) => {
            if add.id == 0 {
                return Err(invalid("id", 0, "monitor ids are > 0"));
            }
            if add.addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid("addr", &add.addr, "expected ip:port"));
            }
            let name = if add.name.is_empty() {
                add.id.to_string()
            } else {
                add.name.clone()
            };
            MonCommand::AddMonitor(Member {
                id: add.id,
                name,
                addr: add.addr.clone(),
            })
        }
        Kind::MonRemove(remove) => {
            if remove.id == 0 {
                return Err(invalid("id", 0, "monitor ids are > 0"));
            }
            MonCommand::RemoveMonitor { id: remove.id }
        }
        Kind::MonSetAddress(set) => {
            if set.addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid("addr", &set.addr, "expected ip:port"));
            }
            MonCommand::SetMonitorAddress {
                id: set.id,
                addr: set.addr.clone(),
            }
        }
    })
}

fn crush(summary: String, edit: CrushEdit) -> MonCommand {
    MonCommand::Change {
        changes: vec![MapChange::Crush(edit)],
        summary,
    }
}

fn osd_list(ids: &[i32]) -> String {
    ids.iter()
        .map(|id| format!("osd.{id}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An optional count that, when given, must not be 0 (absent means "the default").
fn positive(argument: &str, value: Option<u32>, why: &str) -> Result<Option<u32>, CommandError> {
    match value {
        Some(0) => Err(invalid(argument, "0", why)),
        other => Ok(other),
    }
}
