//! Device-class shadow trees: the per-class copies (`default~ssd`) of the bucket hierarchy
//! that `step take B class C` descends.
//!
//! Ceph builds them from the ordinary ("non-shadow") hierarchy as ALGORITHM-NOTES §11 says:
//! for every root (a bucket no other bucket lists), in increasing id order, and every class in
//! increasing class id, the root is copied recursively, children first. A copy keeps its
//! original's type, algorithm, hash and item order, keeps only the devices of its class (with
//! the weight the original gives them) and lists each child's copy with that copy's exact
//! total. Its id is the one recorded for `(original, class)` if any, else the id closest to
//! -1 that no bucket uses and no record reserves.
//!
//! Deliberate differences from crushtool 16, all on paths no vector covers:
//! * a root whose subtree contains a **uniform** bucket gets no shadow trees (crushtool's
//!   build fails part-way there and silently keeps whatever it had made so far);
//! * copies of **tree** buckets are correct (crushtool leaves their interior node weights
//!   uninitialised); the model stores per-item weights only, so nothing special is needed;
//! * when `choose_args` weight sets are copied onto shadow buckets (only [`rebuild`] does
//!   that; the text compiler builds the trees before it reads `choose_args`), a child copy's
//!   weight in its parent's set is the sum of the child's set at the same position, for
//!   every position (Ceph keeps only the last position's sum and writes 0 for the others;
//!   like Ceph, a child copy whose original has no weight set counts 0).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use thiserror::Error;

use crate::model::{Bucket, BucketAlg, BucketItem, ChooseArg, CrushMap, ShadowOf, Step};

/// Why the shadow trees could not be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ShadowError {
    /// A bucket lists a bucket id that does not exist.
    #[error("bucket {parent} lists bucket id {child}, which does not exist")]
    MissingBucket {
        /// Id of the bucket with the dangling item.
        parent: i32,
        /// The missing id.
        child: i32,
    },
    /// The hierarchy has a cycle through this bucket.
    #[error("bucket {bucket} contains itself")]
    Cycle {
        /// A bucket on the cycle.
        bucket: i32,
    },
    /// The id recorded for a shadow copy is taken by an ordinary bucket.
    #[error("shadow id {id} recorded for {name} is already the id of bucket {taken_by}")]
    IdInUse {
        /// The recorded shadow id.
        id: i32,
        /// The shadow bucket's name (`B~C`).
        name: String,
        /// Name of the bucket that has the id.
        taken_by: String,
    },
    /// The same shadow id is recorded for two different copies.
    #[error("shadow id {id} is recorded for both {first} and {second}")]
    IdReservedTwice {
        /// The id.
        id: i32,
        /// One copy's name.
        first: String,
        /// The other copy's name.
        second: String,
    },
    /// An ordinary bucket already has the name the copy needs.
    #[error("the shadow copy name {name} is already used by bucket {id}")]
    NameTaken {
        /// The `B~C` name.
        name: String,
        /// The ordinary bucket that has it.
        id: i32,
    },
    /// A copy's total weight does not fit in 32 bits.
    #[error("the weights of shadow bucket {name} add up to more than 65535.99998")]
    WeightOverflow {
        /// The copy's name.
        name: String,
    },
    /// No bucket id is left.
    #[error("no free bucket id left for shadow bucket {name}")]
    NoFreeId {
        /// The copy's name.
        name: String,
    },
}

/// (Re)builds every shadow tree of `map` from its ordinary hierarchy, its devices' classes
/// and the ids recorded in [`CrushMap::class_buckets`].
///
/// As Ceph's `rebuild_roots_with_classes` does, it first forgets classes that no device has
/// and no rule takes, registers classes that devices name but [`CrushMap::classes`] lacks
/// (next free class id, in device id order), drops every existing shadow bucket and its
/// `choose_args` entries, then builds the trees again, reusing the recorded id of each
/// `(original, class)` pair that still exists. `choose_args` weight sets of the originals are
/// copied onto the new shadow buckets (ids are not). Idempotent: a second call changes
/// nothing. On error the map may be left without shadow trees.
pub fn rebuild(map: &mut CrushMap) -> Result<(), ShadowError> {
    register_device_classes(map);
    drop_dead_classes(map);
    let old_records = std::mem::take(&mut map.class_buckets);
    let shadow_ids: Vec<i32> = map
        .buckets
        .values()
        .filter(|b| b.shadow.is_some())
        .map(|b| b.id)
        .collect();
    for id in &shadow_ids {
        map.buckets.remove(id);
        for set in map.choose_args.values_mut() {
            set.remove(id);
        }
    }
    let reserved: BTreeMap<(i32, i32), i32> = old_records
        .into_iter()
        .filter(|((original, class), _)| {
            map.buckets
                .get(original)
                .is_some_and(|b| b.shadow.is_none())
                && map.classes.contains_key(class)
        })
        .collect();
    build(map, &reserved)
}

/// Adds every class a device names to [`CrushMap::classes`] if it is missing.
fn register_device_classes(map: &mut CrushMap) {
    let named: Vec<String> = map
        .devices
        .values()
        .filter_map(|d| d.class.clone())
        .collect();
    for class in named {
        if map.class_id(&class).is_none() {
            let id = map.classes.keys().next_back().map_or(0, |last| last + 1);
            map.classes.insert(id, class);
        }
    }
}

/// Removes classes that no device has and that no rule takes (Ceph's `cleanup_dead_classes`).
fn drop_dead_classes(map: &mut CrushMap) {
    let mut alive: BTreeSet<&str> = map
        .devices
        .values()
        .filter_map(|d| d.class.as_deref())
        .collect();
    for rule in map.rules.values() {
        for step in &rule.steps {
            if let Step::Take(id) = step {
                if let Some(shadow) = map.buckets.get(id).and_then(|b| b.shadow.as_ref()) {
                    alive.insert(shadow.class.as_str());
                }
            }
        }
    }
    let dead: Vec<i32> = map
        .classes
        .iter()
        .filter(|(_, name)| !alive.contains(name.as_str()))
        .map(|(id, _)| *id)
        .collect();
    for id in dead {
        map.classes.remove(&id);
    }
}

/// One shadow copy made by [`build`]: which original it copies and, for each of its items,
/// the position of the corresponding item in the original.
struct Made {
    copy: i32,
    original: i32,
    original_positions: Vec<usize>,
}

/// A copy being assembled: its original, the next original item to look at, and the items
/// collected so far.
struct Frame {
    original: i32,
    next: usize,
    items: Vec<BucketItem>,
    original_positions: Vec<usize>,
}

/// Builds the shadow trees of a map that has none, using `reserved` ids for the
/// `(original, class id)` pairs it lists and never giving any other copy one of those ids.
///
/// Afterwards [`CrushMap::class_buckets`] lists exactly the copies made, and `choose_args`
/// weight sets of the originals are copied onto the new buckets.
pub(crate) fn build(
    map: &mut CrushMap,
    reserved: &BTreeMap<(i32, i32), i32>,
) -> Result<(), ShadowError> {
    check_reservations(map, reserved)?;
    let reserved_ids: BTreeSet<i32> = reserved.values().copied().collect();
    let mut next_free = NextFreeId { candidate: -1 };
    let mut made: HashMap<(i32, i32), i32> = HashMap::new();
    let mut made_order: Vec<Made> = Vec::new();
    let classes: Vec<(i32, String)> = map
        .classes
        .iter()
        .map(|(id, name)| (*id, name.clone()))
        .collect();
    let ordinary_names: HashMap<String, i32> = map
        .buckets
        .values()
        .filter(|b| b.shadow.is_none())
        .map(|b| (b.name.clone(), b.id))
        .collect();
    for root in ordinary_roots(map) {
        if subtree_has_uniform(map, root)? {
            continue;
        }
        for (class_id, class_name) in &classes {
            copy_subtree(
                map,
                root,
                (*class_id, class_name),
                reserved,
                &reserved_ids,
                &mut next_free,
                &mut made,
                &mut made_order,
                &ordinary_names,
            )?;
        }
    }
    // Like crushtool's class_bucket table, the records list the copies that exist: a
    // reservation that was not needed (a root with a uniform bucket) is not printed by the
    // decompiler either, so keeping it would not survive a round trip.
    map.class_buckets = made.iter().map(|(key, id)| (*key, *id)).collect();
    copy_weight_sets(map, &made_order);
    Ok(())
}

/// Validates that reserved ids are distinct and not used by ordinary buckets.
fn check_reservations(
    map: &CrushMap,
    reserved: &BTreeMap<(i32, i32), i32>,
) -> Result<(), ShadowError> {
    let copy_name = |(original, class): (i32, i32)| {
        format!(
            "{}~{}",
            map.item_name(original).unwrap_or("?"),
            map.classes.get(&class).map_or("?", String::as_str)
        )
    };
    let mut owners: HashMap<i32, (i32, i32)> = HashMap::new();
    for (key, id) in reserved {
        if let Some(bucket) = map.buckets.get(id) {
            return Err(ShadowError::IdInUse {
                id: *id,
                name: copy_name(*key),
                taken_by: bucket.name.clone(),
            });
        }
        if let Some(first) = owners.insert(*id, *key) {
            return Err(ShadowError::IdReservedTwice {
                id: *id,
                first: copy_name(first),
                second: copy_name(*key),
            });
        }
    }
    Ok(())
}

/// Ordinary buckets that no ordinary bucket lists, in increasing id order.
fn ordinary_roots(map: &CrushMap) -> Vec<i32> {
    let listed: BTreeSet<i32> = map
        .buckets
        .values()
        .filter(|b| b.shadow.is_none())
        .flat_map(|b| b.items.iter().map(|i| i.id))
        .filter(|id| *id < 0)
        .collect();
    map.buckets
        .values()
        .filter(|b| b.shadow.is_none() && !listed.contains(&b.id))
        .map(|b| b.id)
        .collect()
}

/// Whether any bucket under `root` (itself included) is uniform. Also reports dangling
/// bucket ids and cycles, so the copy below can trust the hierarchy.
fn subtree_has_uniform(map: &CrushMap, root: i32) -> Result<bool, ShadowError> {
    // Iterative depth-first walk with "on the current path" marks to find cycles.
    let mut on_path: BTreeSet<i32> = BTreeSet::new();
    let mut done: BTreeSet<i32> = BTreeSet::new();
    let mut found = false;
    let mut stack: Vec<(i32, usize)> = vec![(root, 0)];
    on_path.insert(root);
    while let Some((id, next)) = stack.last_mut() {
        // Only existing ids are pushed (checked below), so the lookup cannot fail.
        let Some(bucket) = map.buckets.get(id) else {
            break;
        };
        if *next == 0 && bucket.alg == BucketAlg::Uniform {
            found = true;
        }
        if let Some(item) = bucket.items.get(*next) {
            *next += 1;
            let child = item.id;
            if child >= 0 || done.contains(&child) {
                continue;
            }
            if on_path.contains(&child) {
                return Err(ShadowError::Cycle { bucket: child });
            }
            if !map.buckets.contains_key(&child) {
                return Err(ShadowError::MissingBucket {
                    parent: bucket.id,
                    child,
                });
            }
            on_path.insert(child);
            stack.push((child, 0));
        } else {
            let finished = bucket.id;
            on_path.remove(&finished);
            done.insert(finished);
            stack.pop();
        }
    }
    Ok(found)
}

/// Hands out the id closest to -1 that no bucket uses and no record reserves. Buckets are
/// only added while a build runs, so the answer never moves back towards -1.
struct NextFreeId {
    candidate: i32,
}

impl NextFreeId {
    fn take(
        &mut self,
        map: &CrushMap,
        reserved_ids: &BTreeSet<i32>,
        name: &str,
    ) -> Result<i32, ShadowError> {
        loop {
            let id = self.candidate;
            if map.buckets.contains_key(&id) || reserved_ids.contains(&id) {
                self.candidate = id.checked_sub(1).ok_or_else(|| ShadowError::NoFreeId {
                    name: name.to_string(),
                })?;
                continue;
            }
            return Ok(id);
        }
    }
}

/// Makes the `class` copy of `root` and of every bucket under it that has none yet.
#[allow(clippy::too_many_arguments)]
fn copy_subtree(
    map: &mut CrushMap,
    root: i32,
    (class_id, class_name): (i32, &str),
    reserved: &BTreeMap<(i32, i32), i32>,
    reserved_ids: &BTreeSet<i32>,
    next_free: &mut NextFreeId,
    made: &mut HashMap<(i32, i32), i32>,
    made_order: &mut Vec<Made>,
    ordinary_names: &HashMap<String, i32>,
) -> Result<(), ShadowError> {
    if made.contains_key(&(root, class_id)) {
        return Ok(());
    }
    // Originals whose copy is being assembled, to catch cycles without scanning the stack.
    let mut on_stack: HashSet<i32> = HashSet::from([root]);
    let mut stack = vec![Frame {
        original: root,
        next: 0,
        items: Vec::new(),
        original_positions: Vec::new(),
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(original) = map.buckets.get(&frame.original) else {
            return Err(ShadowError::MissingBucket {
                parent: frame.original,
                child: frame.original,
            });
        };
        if let Some(item) = original.items.get(frame.next).copied() {
            let position = frame.next;
            frame.next += 1;
            if item.id >= 0 {
                let in_class =
                    map.devices.get(&item.id).and_then(|d| d.class.as_deref()) == Some(class_name);
                if in_class {
                    frame.items.push(item);
                    frame.original_positions.push(position);
                }
            } else if let Some(copy) = made.get(&(item.id, class_id)) {
                let weight = map.buckets.get(copy).map_or(0, Bucket::weight);
                frame.items.push(BucketItem { id: *copy, weight });
                frame.original_positions.push(position);
            } else {
                if on_stack.contains(&item.id) {
                    return Err(ShadowError::Cycle { bucket: item.id });
                }
                if !map.buckets.contains_key(&item.id) {
                    return Err(ShadowError::MissingBucket {
                        parent: original.id,
                        child: item.id,
                    });
                }
                on_stack.insert(item.id);
                stack.push(Frame {
                    original: item.id,
                    next: 0,
                    items: Vec::new(),
                    original_positions: Vec::new(),
                });
            }
            continue;
        }
        // Every item of this original is handled: create its copy.
        let Some(frame) = stack.pop() else { break };
        on_stack.remove(&frame.original);
        let Some(original) = map.buckets.get(&frame.original) else {
            return Err(ShadowError::MissingBucket {
                parent: frame.original,
                child: frame.original,
            });
        };
        let name = format!("{}~{}", original.name, class_name);
        if let Some(existing) = ordinary_names.get(&name) {
            return Err(ShadowError::NameTaken {
                name,
                id: *existing,
            });
        }
        let total = frame
            .items
            .iter()
            .try_fold(0u32, |sum, item| sum.checked_add(item.weight));
        let Some(total) = total else {
            return Err(ShadowError::WeightOverflow { name });
        };
        let id = match reserved.get(&(frame.original, class_id)) {
            Some(id) => *id,
            None => next_free.take(map, reserved_ids, &name)?,
        };
        let copy = Bucket {
            id,
            name,
            type_id: original.type_id,
            alg: original.alg,
            hash: original.hash,
            items: frame.items,
            shadow: Some(ShadowOf {
                original: frame.original,
                class: class_name.to_string(),
            }),
        };
        map.buckets.insert(id, copy);
        made.insert((frame.original, class_id), id);
        made_order.push(Made {
            copy: id,
            original: frame.original,
            original_positions: frame.original_positions,
        });
        if let Some(parent) = stack.last_mut() {
            parent.items.push(BucketItem { id, weight: total });
            // The parent already advanced past this child; its position is next - 1.
            parent
                .original_positions
                .push(parent.next.saturating_sub(1));
        }
    }
    Ok(())
}

/// Gives each new shadow bucket the weight sets of its original, as Ceph does when it builds
/// shadow trees in a map that has `choose_args`: devices keep the original's per-position
/// weight, a child copy gets the sum of its own set at that position (0 if it has none).
fn copy_weight_sets(map: &mut CrushMap, made_order: &[Made]) {
    for set in map.choose_args.values_mut() {
        for entry in made_order {
            let Some(source) = set.get(&entry.original) else {
                continue;
            };
            if source.weight_set.is_empty() {
                continue;
            }
            let Some(copy) = map.buckets.get(&entry.copy) else {
                continue;
            };
            let positions = source.weight_set.len();
            let mut weight_set = vec![Vec::with_capacity(copy.items.len()); positions];
            for (index, item) in copy.items.iter().enumerate() {
                for (position, row) in weight_set.iter_mut().enumerate() {
                    let weight = if item.id >= 0 {
                        entry
                            .original_positions
                            .get(index)
                            .and_then(|p| source.weight_set[position].get(*p))
                            .copied()
                            .unwrap_or(0)
                    } else {
                        set.get(&item.id)
                            .and_then(|child| child.weight_set.get(position))
                            .map_or(0, |row| {
                                row.iter().fold(0u32, |sum, w| sum.wrapping_add(*w))
                            })
                    };
                    row.push(weight);
                }
            }
            set.insert(
                entry.copy,
                ChooseArg {
                    weight_set,
                    ids: None,
                },
            );
        }
    }
}
