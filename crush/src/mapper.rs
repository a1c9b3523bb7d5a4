//! The mapper: runs a rule for an input `x` and returns an ordered list of devices, exactly
//! as Ceph's `crush_do_rule` does (see `crush-vectors/ALGORITHM-NOTES.md` §5-§9).
//!
//! A [`Mapper`] is a compiled, name-free copy of a [`CrushMap`]: buckets in a table indexed by
//! `-1 - id`, with each algorithm's precomputed data (straw lengths, tree node weights, list
//! prefix sums) and the selected `choose_args` resolved per bucket. It is immutable and can be
//! shared between threads; the scratch space of one evaluation lives in a [`Workspace`] that
//! callers reuse, so a mapping allocates nothing once the workspace has grown.

use crate::hash::{hash32_2, hash32_3, hash32_4};
use crate::ln::crush_ln;
use crate::model::{
    BucketAlg, ChooseArgs, CrushMap, Step, Tunables, ITEM_NONE, ITEM_UNDEF, WEIGHT_ONE,
};

/// A bucket as the mapper sees it.
#[derive(Clone, Debug)]
struct CompiledBucket {
    id: i32,
    type_id: i32,
    alg: BucketAlg,
    /// Only rjenkins1 (0) hashes; Ceph's hash of any other type is 0.
    hash_ok: bool,
    items: Vec<i32>,
    weights: Vec<u32>,
    /// straw: straw lengths; list: prefix sums of weights; tree: node weights.
    aux: Vec<u32>,
    /// Exact reciprocals of `weights` for straw2's division.
    recips: Vec<Recip>,
    /// Exact reciprocals of the straw2 weights per position from the selected `choose_args`
    /// (empty: use `recips`).
    arg_recips: Vec<Vec<Recip>>,
    /// straw2 substitute hash ids from the selected `choose_args`.
    arg_ids: Option<Vec<i32>>,
}

impl CompiledBucket {
    #[inline]
    fn h3(&self, a: u32, b: u32, c: u32) -> u32 {
        if self.hash_ok {
            hash32_3(a, b, c)
        } else {
            0
        }
    }

    #[inline]
    fn h4(&self, a: u32, b: u32, c: u32, d: u32) -> u32 {
        if self.hash_ok {
            hash32_4(a, b, c, d)
        } else {
            0
        }
    }
}

/// A compiled CRUSH map, ready to run rules.
#[derive(Clone, Debug)]
pub struct Mapper {
    buckets: Vec<Option<CompiledBucket>>,
    rules: Vec<Option<Vec<Step>>>,
    max_devices: i32,
    tunables: Tunables,
    /// The code straw2 draws from buckets of more than 4 items with, chosen for the running
    /// CPU when the mapper is compiled from the map.
    wide: WideDraw,
}

/// How straw2 hashes buckets of more than 4 items: 8 lanes, in code chosen once for the
/// running CPU when a [`Mapper`] is compiled, so that no draw asks what the CPU supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WideDraw {
    /// Code for the build's target (baseline x86-64: two 128-bit registers per 8 lanes).
    Portable,
    /// AVX2 code (one 256-bit register holds all 8 lanes). Only [`WideDraw::detect`] makes
    /// it, on a CPU that has AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl WideDraw {
    /// The best code the running CPU supports.
    fn detect() -> WideDraw {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return WideDraw::Avx2;
        }
        WideDraw::Portable
    }
}

/// Reusable scratch space for [`Mapper::do_rule_into`].
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    a: Vec<i32>,
    b: Vec<i32>,
    c: Vec<i32>,
    perm: Vec<u32>,
}

impl Workspace {
    /// An empty workspace; it grows on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The parameters that stay fixed through one choose step.
struct ChooseCtx<'a> {
    x: u32,
    weights: &'a [u32],
    tries: u32,
    recurse_tries: u32,
    local_retries: u32,
    local_fallback_retries: u32,
    vary_r: u32,
    stable: bool,
}

impl Mapper {
    /// Compiles `map` without `choose_args`.
    pub fn new(map: &CrushMap) -> Mapper {
        Mapper::with_choose_args(map, None)
    }

    /// Compiles `map` with a chosen `choose_args` set (crushtool applies set 0; Ceph's OSDMap
    /// the pool's set, falling back to set -1).
    pub fn with_choose_args(map: &CrushMap, args: Option<&ChooseArgs>) -> Mapper {
        let max_index = map
            .buckets
            .keys()
            .map(|id| (-1 - id) as usize + 1)
            .max()
            .unwrap_or(0);
        let mut buckets = vec![None; max_index];
        for bucket in map.buckets.values() {
            let items: Vec<i32> = bucket.items.iter().map(|i| i.id).collect();
            let weights: Vec<u32> = bucket.items.iter().map(|i| i.weight).collect();
            let aux = match bucket.alg {
                BucketAlg::Straw => straw_lengths(&weights, map.tunables.straw_calc_version),
                BucketAlg::List => weights
                    .iter()
                    .scan(0u32, |sum, w| {
                        *sum = sum.wrapping_add(*w);
                        Some(*sum)
                    })
                    .collect(),
                BucketAlg::Tree => tree_node_weights(&weights),
                BucketAlg::Uniform | BucketAlg::Straw2 => Vec::new(),
            };
            let arg = args.and_then(|a| a.get(&bucket.id));
            let arg_weights: Vec<Vec<u32>> = arg
                .map(|a| {
                    a.weight_set
                        .iter()
                        .filter(|ws| ws.len() == items.len())
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let arg_ids = arg
                .and_then(|a| a.ids.clone())
                .filter(|ids| ids.len() == items.len());
            let recips = weights.iter().map(|&w| Recip::new(w)).collect();
            let arg_recips = arg_weights
                .iter()
                .map(|ws| ws.iter().map(|&w| Recip::new(w)).collect())
                .collect();
            buckets[(-1 - bucket.id) as usize] = Some(CompiledBucket {
                id: bucket.id,
                type_id: bucket.type_id,
                alg: bucket.alg,
                hash_ok: bucket.hash == 0,
                items,
                weights,
                aux,
                recips,
                arg_recips,
                arg_ids,
            });
        }
        let max_rule = map
            .rules
            .keys()
            .next_back()
            .map_or(0, |id| *id as usize + 1);
        let mut rules = vec![None; max_rule];
        for (id, rule) in &map.rules {
            rules[*id as usize] = Some(rule.steps.clone());
        }
        Mapper {
            buckets,
            rules,
            max_devices: map.max_devices(),
            tunables: map.tunables,
            wide: WideDraw::detect(),
        }
    }

    /// Compiles `map` the way `crushtool --test` does: with `choose_args 0` if the map has it.
    pub fn for_crushtool(map: &CrushMap) -> Mapper {
        Mapper::with_choose_args(map, map.choose_args.get(&0))
    }

    /// One more than the highest device id the map knows.
    pub fn max_devices(&self) -> i32 {
        self.max_devices
    }

    /// Whether a rule with this id exists.
    pub fn has_rule(&self, rule: u32) -> bool {
        matches!(self.rules.get(rule as usize), Some(Some(_)))
    }

    /// Runs `rule` for input `x`, asking for `num_rep` results, with per-device `reweights`
    /// (16.16; index = device id; devices beyond the slice are out). Returns the devices in
    /// order; `indep` rules keep holes as [`ITEM_NONE`]. An unknown rule gives an empty list.
    pub fn do_rule(&self, rule: u32, x: u32, num_rep: usize, reweights: &[u32]) -> Vec<i32> {
        let mut out = Vec::with_capacity(num_rep);
        self.do_rule_into(rule, x, num_rep, reweights, &mut Workspace::new(), &mut out);
        out
    }

    /// Like [`Mapper::do_rule`], reusing `workspace` and writing into `out` (cleared first).
    pub fn do_rule_into(
        &self,
        rule: u32,
        x: u32,
        num_rep: usize,
        reweights: &[u32],
        workspace: &mut Workspace,
        out: &mut Vec<i32>,
    ) {
        out.clear();
        let Some(Some(steps)) = self.rules.get(rule as usize) else {
            return;
        };
        let result_max = num_rep;
        for buffer in [&mut workspace.a, &mut workspace.b, &mut workspace.c] {
            if buffer.len() < result_max {
                buffer.resize(result_max, 0);
            }
        }
        let Workspace { a, b, c, perm } = workspace;
        let (mut w, mut o) = (a, b);
        let mut wsize = 0usize;

        let t = &self.tunables;
        let mut choose_tries = t.choose_total_tries + 1;
        let mut choose_leaf_tries = 0u32;
        let mut local_retries = t.choose_local_tries;
        let mut local_fallback_retries = t.choose_local_fallback_tries;
        let mut vary_r = t.chooseleaf_vary_r;
        let mut stable = t.chooseleaf_stable;

        for step in steps {
            match *step {
                Step::Noop => {}
                Step::Take(item) => {
                    let valid =
                        (item >= 0 && item < self.max_devices) || self.bucket(item).is_some();
                    if valid && result_max > 0 {
                        w[0] = item;
                        wsize = 1;
                    }
                }
                Step::SetChooseTries(n) if n > 0 => choose_tries = n as u32,
                Step::SetChooseLeafTries(n) if n > 0 => choose_leaf_tries = n as u32,
                Step::SetChooseLocalTries(n) if n >= 0 => local_retries = n as u32,
                Step::SetChooseLocalFallbackTries(n) if n >= 0 => local_fallback_retries = n as u32,
                Step::SetChooseLeafVaryR(n) if n >= 0 => vary_r = n as u32,
                Step::SetChooseLeafStable(n) if n >= 0 => stable = n as u32,
                Step::SetChooseTries(_)
                | Step::SetChooseLeafTries(_)
                | Step::SetChooseLocalTries(_)
                | Step::SetChooseLocalFallbackTries(_)
                | Step::SetChooseLeafVaryR(_)
                | Step::SetChooseLeafStable(_) => {}
                Step::ChooseFirstN { n, type_id }
                | Step::ChooseLeafFirstN { n, type_id }
                | Step::ChooseIndep { n, type_id }
                | Step::ChooseLeafIndep { n, type_id } => {
                    if wsize == 0 {
                        continue;
                    }
                    let firstn = matches!(
                        step,
                        Step::ChooseFirstN { .. } | Step::ChooseLeafFirstN { .. }
                    );
                    let leaf = matches!(
                        step,
                        Step::ChooseLeafFirstN { .. } | Step::ChooseLeafIndep { .. }
                    );
                    let mut osize = 0usize;
                    for &take in &w[..wsize] {
                        let mut numrep = n;
                        if numrep <= 0 {
                            numrep += result_max as i32;
                            if numrep <= 0 {
                                continue;
                            }
                        }
                        let Some(start) = self.bucket(take) else {
                            continue;
                        };
                        if osize >= result_max {
                            continue;
                        }
                        if firstn {
                            let recurse_tries = if choose_leaf_tries > 0 {
                                choose_leaf_tries
                            } else if t.chooseleaf_descend_once != 0 {
                                1
                            } else {
                                choose_tries
                            };
                            let ctx = ChooseCtx {
                                x,
                                weights: reweights,
                                tries: choose_tries,
                                recurse_tries,
                                local_retries,
                                local_fallback_retries,
                                vary_r,
                                stable: stable != 0,
                            };
                            let count = result_max - osize;
                            let got = self.choose_firstn(
                                &ctx,
                                start,
                                numrep as u32,
                                type_id,
                                &mut o[osize..result_max],
                                0,
                                count,
                                leaf.then_some(&mut c[osize..result_max]),
                                0,
                                perm,
                            );
                            osize += got;
                        } else {
                            let out_size = (numrep as usize).min(result_max - osize);
                            let ctx = ChooseCtx {
                                x,
                                weights: reweights,
                                tries: choose_tries,
                                recurse_tries: if choose_leaf_tries > 0 {
                                    choose_leaf_tries
                                } else {
                                    1
                                },
                                local_retries,
                                local_fallback_retries,
                                vary_r,
                                stable: stable != 0,
                            };
                            self.choose_indep(
                                &ctx,
                                start,
                                out_size,
                                numrep as u32,
                                type_id,
                                &mut o[osize..result_max],
                                0,
                                leaf.then_some(&mut c[osize..result_max]),
                                0,
                                perm,
                            );
                            osize += out_size;
                        }
                    }
                    if leaf {
                        o[..osize].copy_from_slice(&c[..osize]);
                    }
                    std::mem::swap(&mut w, &mut o);
                    wsize = osize;
                }
                Step::Emit => {
                    for &item in &w[..wsize] {
                        if out.len() >= result_max {
                            break;
                        }
                        out.push(item);
                    }
                    wsize = 0;
                }
            }
        }
    }

    #[inline]
    fn bucket(&self, id: i32) -> Option<&CompiledBucket> {
        if id >= 0 {
            return None;
        }
        self.buckets.get((-1 - id) as usize)?.as_ref()
    }

    /// The type of an item: 0 for devices, the bucket's type for buckets, `None` for a
    /// bucket id that does not exist.
    #[inline]
    fn item_type(&self, item: i32) -> Option<i32> {
        if item >= 0 {
            Some(0)
        } else {
            self.bucket(item).map(|b| b.type_id)
        }
    }

    /// ALGORITHM-NOTES §7.
    #[allow(clippy::too_many_arguments)]
    fn choose_firstn(
        &self,
        ctx: &ChooseCtx<'_>,
        bucket: &CompiledBucket,
        numrep: u32,
        type_id: i32,
        out: &mut [i32],
        mut outpos: usize,
        mut count: usize,
        mut out2: Option<&mut [i32]>,
        parent_r: u32,
        perm: &mut Vec<u32>,
    ) -> usize {
        let mut rep: u32 = if ctx.stable { 0 } else { outpos as u32 };
        while rep < numrep && count > 0 {
            let mut ftotal: u32 = 0;
            let mut skip_rep = false;
            let mut item: i32;
            'descent: loop {
                let mut inb = bucket;
                let mut flocal: u32 = 0;
                loop {
                    let r = rep.wrapping_add(parent_r).wrapping_add(ftotal);
                    let mut collide = false;
                    let reject;
                    if inb.items.is_empty() {
                        reject = true;
                        item = 0;
                    } else {
                        let use_perm = ctx.local_fallback_retries > 0
                            && flocal >= (inb.items.len() as u32 >> 1)
                            && flocal > ctx.local_fallback_retries;
                        item = if use_perm {
                            perm_choose(inb, ctx.x, r, perm)
                        } else {
                            self.bucket_choose(inb, ctx.x, r, outpos, perm)
                        };
                        if item >= self.max_devices {
                            skip_rep = true;
                            break 'descent;
                        }
                        let Some(item_type) = self.item_type(item) else {
                            skip_rep = true;
                            break 'descent;
                        };
                        if item_type != type_id {
                            match self.bucket(item) {
                                Some(next) => {
                                    inb = next;
                                    continue;
                                }
                                None => {
                                    skip_rep = true;
                                    break 'descent;
                                }
                            }
                        }
                        collide = out[..outpos].contains(&item);
                        let mut rejected = false;
                        if !collide {
                            if let Some(leaves) = out2.as_deref_mut() {
                                if item < 0 {
                                    let sub_r = if ctx.vary_r > 0 {
                                        r >> (ctx.vary_r - 1)
                                    } else {
                                        0
                                    };
                                    let inner = ChooseCtx {
                                        tries: ctx.recurse_tries,
                                        recurse_tries: 0,
                                        ..*ctx
                                    };
                                    let child = self.bucket(item).expect("checked above");
                                    let got = self.choose_firstn(
                                        &inner,
                                        child,
                                        if ctx.stable { 1 } else { outpos as u32 + 1 },
                                        0,
                                        leaves,
                                        outpos,
                                        count,
                                        None,
                                        sub_r,
                                        perm,
                                    );
                                    if got <= outpos {
                                        rejected = true;
                                    }
                                } else {
                                    leaves[outpos] = item;
                                }
                            }
                        }
                        if !rejected && !collide && item_type == 0 {
                            rejected = is_out(ctx.weights, item, ctx.x);
                        }
                        reject = rejected;
                    }
                    if reject || collide {
                        ftotal += 1;
                        flocal += 1;
                        let retry_same_bucket = (collide && flocal <= ctx.local_retries)
                            || (ctx.local_fallback_retries > 0
                                && flocal <= inb.items.len() as u32 + ctx.local_fallback_retries);
                        if retry_same_bucket {
                            continue;
                        } else if ftotal < ctx.tries {
                            continue 'descent;
                        } else {
                            skip_rep = true;
                            break 'descent;
                        }
                    }
                    break 'descent;
                }
            }
            if !skip_rep {
                out[outpos] = item;
                outpos += 1;
                count -= 1;
            }
            rep += 1;
        }
        outpos
    }

    /// ALGORITHM-NOTES §8.
    #[allow(clippy::too_many_arguments)]
    fn choose_indep(
        &self,
        ctx: &ChooseCtx<'_>,
        bucket: &CompiledBucket,
        mut left: usize,
        numrep: u32,
        type_id: i32,
        out: &mut [i32],
        outpos: usize,
        mut out2: Option<&mut [i32]>,
        parent_r: u32,
        perm: &mut Vec<u32>,
    ) {
        let endpos = outpos + left;
        for rep in outpos..endpos {
            out[rep] = ITEM_UNDEF;
            if let Some(leaves) = out2.as_deref_mut() {
                leaves[rep] = ITEM_UNDEF;
            }
        }
        let mut ftotal: u32 = 0;
        while left > 0 && ftotal < ctx.tries {
            for rep in outpos..endpos {
                if out[rep] != ITEM_UNDEF {
                    continue;
                }
                let mut inb = bucket;
                loop {
                    let stride = if inb.alg == BucketAlg::Uniform
                        && (inb.items.len() as u32).is_multiple_of(numrep)
                    {
                        numrep + 1
                    } else {
                        numrep
                    };
                    let r = (rep as u32)
                        .wrapping_add(parent_r)
                        .wrapping_add(stride.wrapping_mul(ftotal));
                    if inb.items.is_empty() {
                        break;
                    }
                    let item = self.bucket_choose(inb, ctx.x, r, outpos, perm);
                    let item_type = if item >= self.max_devices {
                        None
                    } else {
                        self.item_type(item)
                    };
                    let Some(item_type) = item_type else {
                        out[rep] = ITEM_NONE;
                        if let Some(leaves) = out2.as_deref_mut() {
                            leaves[rep] = ITEM_NONE;
                        }
                        left -= 1;
                        break;
                    };
                    if item_type != type_id {
                        match self.bucket(item) {
                            Some(next) => {
                                inb = next;
                                continue;
                            }
                            None => {
                                out[rep] = ITEM_NONE;
                                if let Some(leaves) = out2.as_deref_mut() {
                                    leaves[rep] = ITEM_NONE;
                                }
                                left -= 1;
                                break;
                            }
                        }
                    }
                    if out[outpos..endpos].contains(&item) {
                        break;
                    }
                    if let Some(leaves) = out2.as_deref_mut() {
                        if item < 0 {
                            let inner = ChooseCtx {
                                tries: ctx.recurse_tries,
                                ..*ctx
                            };
                            let child = self.bucket(item).expect("checked above");
                            self.choose_indep(
                                &inner, child, 1, numrep, 0, leaves, rep, None, r, perm,
                            );
                            if leaves[rep] == ITEM_NONE {
                                break;
                            }
                        } else {
                            leaves[rep] = item;
                        }
                    }
                    if item_type == 0 && is_out(ctx.weights, item, ctx.x) {
                        break;
                    }
                    out[rep] = item;
                    left -= 1;
                    break;
                }
            }
            ftotal += 1;
        }
        for rep in outpos..endpos {
            if out[rep] == ITEM_UNDEF {
                out[rep] = ITEM_NONE;
            }
            if let Some(leaves) = out2.as_deref_mut() {
                if leaves[rep] == ITEM_UNDEF {
                    leaves[rep] = ITEM_NONE;
                }
            }
        }
    }

    /// One draw from a bucket with its own algorithm (§5).
    #[inline]
    fn bucket_choose(
        &self,
        bucket: &CompiledBucket,
        x: u32,
        r: u32,
        position: usize,
        perm: &mut Vec<u32>,
    ) -> i32 {
        match bucket.alg {
            BucketAlg::Straw2 => straw2_choose(bucket, x, r, position, self.wide),
            BucketAlg::Uniform => perm_choose(bucket, x, r, perm),
            BucketAlg::List => list_choose(bucket, x, r),
            BucketAlg::Tree => tree_choose(bucket, x, r),
            BucketAlg::Straw => straw_choose(bucket, x, r),
        }
    }
}

/// Whether a chosen device is rejected by its reweight (§6).
#[inline]
fn is_out(weights: &[u32], item: i32, x: u32) -> bool {
    let Some(&weight) = weights.get(item as usize) else {
        return true;
    };
    if weight >= WEIGHT_ONE {
        return false;
    }
    if weight == 0 {
        return true;
    }
    (hash32_2(x, item as u32) & 0xffff) >= weight
}

#[inline]
fn straw2_choose(bucket: &CompiledBucket, x: u32, r: u32, position: usize, wide: WideDraw) -> i32 {
    let recips: &[Recip] = match bucket.arg_recips.len() {
        0 => &bucket.recips,
        n => &bucket.arg_recips[position.min(n - 1)],
    };
    let ids: &[i32] = bucket.arg_ids.as_deref().unwrap_or(&bucket.items);
    let n = recips.len().min(ids.len());
    if n == 1 {
        return bucket.items[0];
    }
    let high = if n <= 4 {
        straw2_winner::<4>(bucket, recips, &ids[..n], x, r)
    } else {
        straw2_winner_wide(wide, bucket, recips, &ids[..n], x, r)
    };
    bucket.items[high]
}

/// [`straw2_winner`] with 8 lanes, in the code `wide` chose for the running CPU.
#[inline(always)]
fn straw2_winner_wide(
    wide: WideDraw,
    bucket: &CompiledBucket,
    recips: &[Recip],
    ids: &[i32],
    x: u32,
    r: u32,
) -> usize {
    match wide {
        // SAFETY: `Avx2` is only chosen on a CPU that supports AVX2 (`WideDraw::detect`).
        #[cfg(target_arch = "x86_64")]
        WideDraw::Avx2 => unsafe { straw2_winner_avx2(bucket, recips, ids, x, r) },
        WideDraw::Portable => straw2_winner::<8>(bucket, recips, ids, x, r),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn straw2_winner_avx2(
    bucket: &CompiledBucket,
    recips: &[Recip],
    ids: &[i32],
    x: u32,
    r: u32,
) -> usize {
    straw2_winner::<8>(bucket, recips, ids, x, r)
}

/// The position of straw2's highest draw among `ids`, hashing `LANES` items at a time.
#[inline(always)]
fn straw2_winner<const LANES: usize>(
    bucket: &CompiledBucket,
    recips: &[Recip],
    ids: &[i32],
    x: u32,
    r: u32,
) -> usize {
    let n = ids.len();
    let mut high = 0usize;
    // draw = -(quotient); the highest draw is the smallest quotient; zero weights draw
    // i64::MIN, i.e. quotient u64::MAX (they win only as item 0 when all are zero).
    let mut high_q = u64::MAX;
    let mut base = 0usize;
    while base < n {
        let len = (n - base).min(LANES);
        let mut lane_ids = [0u32; LANES];
        for (lane, id) in lane_ids.iter_mut().zip(&ids[base..base + len]) {
            *lane = *id as u32;
        }
        let hashes = if bucket.hash_ok {
            crate::hash::hash32_3_lanes(x, &lane_ids, r)
        } else {
            [0u32; LANES]
        };
        for (j, &hash) in hashes.iter().enumerate().take(len) {
            let i = base + j;
            let recip = recips[i];
            let q = if recip.zero {
                u64::MAX
            } else {
                let numerator = 0x1_0000_0000_0000 - crush_ln(hash & 0xffff);
                recip.divide(numerator)
            };
            if i == 0 || q < high_q {
                high = i;
                high_q = q;
            }
        }
        base += LANES;
    }
    high
}

/// Exact division by a fixed u32 for numerators below 2^49 (Granlund-Montgomery).
#[derive(Clone, Copy, Debug)]
struct Recip {
    magic: u64,
    shift: u32,
    zero: bool,
}

impl Recip {
    fn new(d: u32) -> Recip {
        if d == 0 {
            return Recip {
                magic: 0,
                shift: 0,
                zero: true,
            };
        }
        let l = 32 - (d - 1).leading_zeros(); // ceil(log2 d); 0 for d = 1
        let shift = 49 + l;
        let magic = ((1u128 << shift) / d as u128 + 1) as u64;
        Recip {
            magic,
            shift,
            zero: false,
        }
    }

    #[inline(always)]
    fn divide(self, n: u64) -> u64 {
        ((n as u128 * self.magic as u128) >> self.shift) as u64
    }
}

/// The hashed-permutation choice of uniform buckets and of the local fallback.
fn perm_choose(bucket: &CompiledBucket, x: u32, r: u32, perm: &mut Vec<u32>) -> i32 {
    let size = bucket.items.len() as u32;
    let pr = r % size;
    if pr == 0 {
        let s = bucket.h3(x, bucket.id as u32, 0) % size;
        return bucket.items[s as usize];
    }
    perm.clear();
    perm.extend(0..size);
    for p in 0..=pr {
        if p < size - 1 {
            let i = bucket.h3(x, bucket.id as u32, p) % (size - p);
            perm.swap(p as usize, (p + i) as usize);
        }
    }
    bucket.items[perm[pr as usize] as usize]
}

fn list_choose(bucket: &CompiledBucket, x: u32, r: u32) -> i32 {
    for i in (0..bucket.items.len()).rev() {
        let mut w = (bucket.h4(x, bucket.items[i] as u32, r, bucket.id as u32) & 0xffff) as u64;
        w = (w * bucket.aux[i] as u64) >> 16;
        if w < bucket.weights[i] as u64 {
            return bucket.items[i];
        }
    }
    bucket.items[0]
}

fn tree_choose(bucket: &CompiledBucket, x: u32, r: u32) -> i32 {
    let nodes = &bucket.aux;
    let mut n = nodes.len() >> 1;
    while n & 1 == 0 {
        let w = nodes[n] as u64;
        let t = (bucket.h4(x, n as u32, r, bucket.id as u32) as u64 * w) >> 32;
        let half = 1usize << (n.trailing_zeros() - 1);
        let left = n - half;
        n = if t < nodes[left] as u64 {
            left
        } else {
            n + half
        };
    }
    bucket.items[n >> 1]
}

fn straw_choose(bucket: &CompiledBucket, x: u32, r: u32) -> i32 {
    let mut high = 0usize;
    let mut high_draw = 0u64;
    for (i, &item) in bucket.items.iter().enumerate() {
        let draw = (bucket.h3(x, item as u32, r) & 0xffff) as u64 * bucket.aux[i] as u64;
        if i == 0 || draw > high_draw {
            high = i;
            high_draw = draw;
        }
    }
    bucket.items[high]
}

/// Node weights of a tree bucket: leaf `i` is node `2i + 1`; each weight is added to the
/// leaf's ancestors (§5 "tree").
fn tree_node_weights(weights: &[u32]) -> Vec<u32> {
    if weights.is_empty() {
        return vec![0];
    }
    let depth = 1 + (usize::BITS - (weights.len() - 1).leading_zeros());
    let num_nodes = 1usize << depth;
    let mut nodes = vec![0u32; num_nodes];
    for (i, &w) in weights.iter().enumerate() {
        let mut node = 2 * i + 1;
        nodes[node] = w;
        for _ in 1..depth {
            let height = node.trailing_zeros();
            node = if node & (1 << (height + 1)) != 0 {
                node - (1 << height)
            } else {
                node + (1 << height)
            };
            nodes[node] = nodes[node].wrapping_add(w);
        }
    }
    nodes
}

/// Straw (v1) lengths, computed in doubles exactly as Ceph's builder does (§5 "straw").
fn straw_lengths(weights: &[u32], calc_version: u32) -> Vec<u32> {
    let size = weights.len();
    // Stable insertion order by weight, ascending.
    let mut order: Vec<usize> = Vec::with_capacity(size);
    for i in 0..size {
        let pos = order
            .iter()
            .position(|&j| weights[i] < weights[j])
            .unwrap_or(order.len());
        order.insert(pos, i);
    }
    let mut straws = vec![0u32; size];
    let mut numleft = size as i64;
    let mut straw = 1.0f64;
    let mut wbelow = 0.0f64;
    let mut lastw = 0.0f64;
    let mut i = 0usize;
    while i < size {
        let w_i = weights[order[i]];
        if w_i == 0 {
            straws[order[i]] = 0;
            i += 1;
            if calc_version >= 1 {
                numleft -= 1;
            }
            continue;
        }
        straws[order[i]] = (straw * 65536.0) as u32;
        i += 1;
        if i == size {
            break;
        }
        let w_prev = weights[order[i - 1]];
        let w_next = weights[order[i]];
        if calc_version == 0 {
            if w_next == w_prev {
                continue;
            }
            wbelow += (w_prev as f64 - lastw) * numleft as f64;
            for j in i..size {
                if weights[order[j]] == w_next {
                    numleft -= 1;
                } else {
                    break;
                }
            }
        } else {
            wbelow += (w_prev as f64 - lastw) * numleft as f64;
            numleft -= 1;
        }
        let wnext = (numleft as u32).wrapping_mul(w_next.wrapping_sub(w_prev)) as f64;
        let pbelow = wbelow / (wbelow + wnext);
        straw *= (1.0 / pbelow).powf(1.0 / numleft as f64);
        lastw = w_prev as f64;
    }
    straws
}

#[cfg(test)]
mod tests {
    use super::{Mapper, Recip, WideDraw};
    use crate::model::WEIGHT_ONE;
    use proptest::prelude::*;

    /// The 8-lane draw places exactly as before whichever code it was given: the detected
    /// one (AVX2 on most x86-64 machines) against the portable one, on a map whose straw2
    /// buckets hold 4, 8 and more items, with some devices out or partly out.
    #[test]
    fn the_detected_wide_draw_places_like_the_portable_one() {
        let map = crate::text::parse(include_str!("../tests/data/maps/big400.txt")).unwrap();
        let detected = Mapper::new(&map);
        let mut portable = detected.clone();
        portable.wide = WideDraw::Portable;
        let mut weights = vec![WEIGHT_ONE; detected.max_devices() as usize];
        for (device, weight) in weights.iter_mut().enumerate().step_by(7) {
            *weight = if device % 2 == 0 { 0 } else { WEIGHT_ONE / 2 };
        }
        let rules: Vec<u32> = (0..16).filter(|rule| detected.has_rule(*rule)).collect();
        assert!(rules.len() > 1, "big400 has rules {rules:?}");
        for rule in rules {
            for x in 0..2000 {
                assert_eq!(
                    detected.do_rule(rule, x, 3, &weights),
                    portable.do_rule(rule, x, 3, &weights),
                    "rule {rule} x {x} ({:?})",
                    detected.wide
                );
            }
        }
    }

    /// straw2 divides `-ln` (at most 2^48) by a 16.16 weight; the reciprocal must give the
    /// exact quotient for every such pair, or placements would drift from Ceph's.
    fn check(n: u64, d: u32) {
        assert_eq!(Recip::new(d).divide(n), n / u64::from(d), "{n} / {d}");
    }

    #[test]
    fn reciprocal_division_is_exact_at_the_edges() {
        let numerators = [0, 1, 2, (1 << 48) - 1, 1 << 48, (1 << 49) - 1];
        let divisors = [
            1,
            2,
            3,
            7,
            0x10000,
            0x10001,
            0xffff,
            1 << 31,
            u32::MAX - 1,
            u32::MAX,
        ];
        for n in numerators {
            for d in divisors {
                check(n, d);
            }
        }
    }

    proptest! {
        #[test]
        fn reciprocal_division_is_exact(n in 0u64..(1 << 49), d in 1u32..) {
            check(n, d);
        }
    }
}
