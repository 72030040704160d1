//! A fast non-cryptographic hasher for the engine's in-memory maps (block
//! dictionaries, trace maps). Keys are short strings and ids; SipHash's
//! flood resistance is not worth its cost on this path, since every map is
//! bounded by one block or one segment.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// The multiply-rotate hash used by rustc (FxHash).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(load8(c));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            self.add(tail(bytes) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The multiply leaves the low bits weak, and hashbrown picks buckets by
    /// the low bits: fold the high bits down (as rustc-hash 2 does).
    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

/// The 8 bytes of `c` (exactly 8 long) as a little-endian word.
#[inline]
fn load8(c: &[u8]) -> u64 {
    u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))
}

/// The last `bytes.len() % 8` bytes of `bytes` (non-empty remainder) as a
/// little-endian word with zero high bytes. Words are read whole, without
/// a copy loop: overlapping the previous chunk when the slice has one, else
/// as 4-, 2- and 1-byte pieces.
#[inline]
pub(crate) fn tail(bytes: &[u8]) -> u64 {
    let n = bytes.len() % 8;
    if bytes.len() >= 8 {
        return load8(&bytes[bytes.len() - 8..]) >> (64 - 8 * n);
    }
    let mut w = 0u64;
    let mut at = 0;
    if n >= 4 {
        w = u64::from(u32::from_le_bytes(bytes[..4].try_into().unwrap_or([0; 4])));
        at = 4;
    }
    if n - at >= 2 {
        let h = u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap_or([0; 2]));
        w |= u64::from(h) << (8 * at);
        at += 2;
    }
    if n > at {
        w |= u64::from(bytes[at]) << (8 * at);
    }
    w
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    #[test]
    fn tail_is_the_remainder_as_a_word() {
        let bytes: Vec<u8> = (1..=23).collect();
        for len in (1..=bytes.len()).filter(|l| l % 8 != 0) {
            let b = &bytes[..len];
            let rest = &b[len - len % 8..];
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            assert_eq!(super::tail(b), u64::from_le_bytes(w), "length {len}");
        }
    }

    use super::*;

    #[test]
    fn distinct_short_keys_hash_apart() {
        let mut seen = FastSet::default();
        for k in ["", "a", "b", "ab", "abcdefgh", "abcdefghi", "abcdefgi"] {
            let mut h = FastHasher::default();
            h.write(k.as_bytes());
            assert!(seen.insert(h.finish()), "{k}");
        }
    }
}
