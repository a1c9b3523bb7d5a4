//! Ceph's hashes: rjenkins1 for CRUSH (`crush_hash32_*`), the rjenkins string hash that turns
//! object names into placement seeds (`ceph_str_hash_rjenkins`), and `stable_mod`.

const SEED: u32 = 1_315_423_911;
const X0: u32 = 231_232;
const Y0: u32 = 1232;

/// Bob Jenkins' 96-bit mix, as rjenkins1 applies it.
#[inline(always)]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 13);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 8);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 13);
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 12);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 16);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 5);
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 3);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 10);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 15);
}

/// `crush_hash32_rjenkins1_2`: used for reweight tests and for a PG's CRUSH input.
#[inline]
pub fn hash32_2(a: u32, b: u32) -> u32 {
    let (mut a, mut b) = (a, b);
    let mut h = SEED ^ a ^ b;
    let (mut x, mut y) = (X0, Y0);
    mix(&mut a, &mut b, &mut h);
    mix(&mut x, &mut a, &mut h);
    mix(&mut b, &mut y, &mut h);
    h
}

/// [`mix`] on `N` independent lanes, one operation across all lanes at a time, so the
/// compiler keeps the lanes in vector registers and the CPU overlaps their dependency chains
/// (one lane alone is a long serial chain of subtractions and shifts).
#[inline(always)]
fn mix_lanes<const N: usize>(a: &mut [u32; N], b: &mut [u32; N], c: &mut [u32; N]) {
    macro_rules! step {
        ($x:ident, $y:ident, $z:ident, $op:tt $shift:literal) => {
            for i in 0..N {
                $x[i] = $x[i].wrapping_sub($y[i]).wrapping_sub($z[i]) ^ ($z[i] $op $shift);
            }
        };
    }
    step!(a, b, c, >> 13);
    step!(b, c, a, << 8);
    step!(c, a, b, >> 13);
    step!(a, b, c, >> 12);
    step!(b, c, a, << 16);
    step!(c, a, b, >> 5);
    step!(a, b, c, >> 3);
    step!(b, c, a, << 10);
    step!(c, a, b, >> 15);
}

/// `hash32_3(a, b[i], c)` for `N` lanes at once (straw2 hashes every item of a bucket with
/// the same `x` and `r`).
#[inline(always)]
pub fn hash32_3_lanes<const N: usize>(a: u32, b: &[u32; N], c: u32) -> [u32; N] {
    let mut a = [a; N];
    let mut b = *b;
    let mut c = [c; N];
    let mut h = [0u32; N];
    for i in 0..N {
        h[i] = SEED ^ a[i] ^ b[i] ^ c[i];
    }
    let mut x = [X0; N];
    let mut y = [Y0; N];
    mix_lanes(&mut a, &mut b, &mut h);
    mix_lanes(&mut c, &mut x, &mut h);
    mix_lanes(&mut y, &mut a, &mut h);
    mix_lanes(&mut b, &mut x, &mut h);
    mix_lanes(&mut y, &mut c, &mut h);
    h
}

/// `crush_hash32_rjenkins1_3`: used by straw, straw2 and uniform buckets.
#[inline]
pub fn hash32_3(a: u32, b: u32, c: u32) -> u32 {
    let (mut a, mut b, mut c) = (a, b, c);
    let mut h = SEED ^ a ^ b ^ c;
    let (mut x, mut y) = (X0, Y0);
    mix(&mut a, &mut b, &mut h);
    mix(&mut c, &mut x, &mut h);
    mix(&mut y, &mut a, &mut h);
    mix(&mut b, &mut x, &mut h);
    mix(&mut y, &mut c, &mut h);
    h
}

/// `crush_hash32_rjenkins1_4`: used by list and tree buckets.
#[inline]
pub fn hash32_4(a: u32, b: u32, c: u32, d: u32) -> u32 {
    let (mut a, mut b, mut c, mut d) = (a, b, c, d);
    let mut h = SEED ^ a ^ b ^ c ^ d;
    let (mut x, mut y) = (X0, Y0);
    mix(&mut a, &mut b, &mut h);
    mix(&mut c, &mut d, &mut h);
    mix(&mut a, &mut x, &mut h);
    mix(&mut y, &mut b, &mut h);
    mix(&mut c, &mut x, &mut h);
    mix(&mut y, &mut d, &mut h);
    h
}

/// Ceph's `ceph_str_hash_rjenkins`: the hash of an object name (Jenkins' lookup2 over the
/// bytes, 12 at a time, with the length folded into the last block).
pub fn str_hash_rjenkins(data: &[u8]) -> u32 {
    let mut a: u32 = 0x9e37_79b9;
    let mut b: u32 = a;
    let mut c: u32 = 0;
    let word = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let mut rest = data;
    while rest.len() >= 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    c = c.wrapping_add(data.len() as u32);
    // The tail: bytes 0..3 go to a, 4..7 to b, 8..10 to c shifted past c's low byte (which
    // holds the length).
    for (i, &byte) in rest.iter().enumerate() {
        let v = byte as u32;
        match i {
            0..=3 => a = a.wrapping_add(v << (8 * i)),
            4..=7 => b = b.wrapping_add(v << (8 * (i - 4))),
            _ => c = c.wrapping_add(v << (8 * (i - 7))),
        }
    }
    mix(&mut a, &mut b, &mut c);
    c
}

/// Ceph's `ceph_stable_mod`: maps a hash to one of `b` buckets so that growing `b` towards
/// the next power of two moves few values. `mask` is `2^k - 1` with `2^k >= b`.
#[inline]
pub fn stable_mod(x: u32, b: u32, mask: u32) -> u32 {
    if x & mask < b {
        x & mask
    } else {
        x & (mask >> 1)
    }
}

/// The mask `stable_mod` needs for `pg_num`: the smallest `2^k - 1 >= pg_num - 1`.
pub fn pg_num_mask(pg_num: u32) -> u32 {
    if pg_num <= 1 {
        0
    } else {
        u32::MAX >> (pg_num - 1).leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lane version must give rjenkins1's value in every lane, for both lane counts
    /// straw2 uses (the mapping vectors only exercise the code path this CPU takes).
    #[test]
    fn lanes_hash_like_the_scalar_hash() {
        let mut seed = 0x9e37_79b9u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..1000 {
            let (a, c) = (next(), next());
            let b4: [u32; 4] = std::array::from_fn(|_| next());
            let b8: [u32; 8] = std::array::from_fn(|_| next());
            let h4 = hash32_3_lanes(a, &b4, c);
            let h8 = hash32_3_lanes(a, &b8, c);
            for (lane, b) in b4.iter().enumerate() {
                assert_eq!(h4[lane], hash32_3(a, *b, c));
            }
            for (lane, b) in b8.iter().enumerate() {
                assert_eq!(h8[lane], hash32_3(a, *b, c));
            }
        }
    }

    #[test]
    fn stable_mod_matches_ceph_definition() {
        // pg_num 12: mask 15; values 12..15 fold onto 4..7.
        let mask = pg_num_mask(12);
        assert_eq!(mask, 15);
        assert_eq!(stable_mod(13, 12, mask), 5);
        assert_eq!(stable_mod(11, 12, mask), 11);
        assert_eq!(pg_num_mask(1), 0);
        assert_eq!(pg_num_mask(64), 63);
        assert_eq!(pg_num_mask(65), 127);
    }
}
