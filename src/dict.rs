//! Per-segment zstd dictionaries.
//!
//! Blocks are kept small so that a trace lookup decompresses little, but a
//! small block compresses poorly on its own: most of its bytes (attribute
//! keys and values, resources) repeat across the blocks of a segment. A
//! dictionary trained on a sample of the segment's blocks and stored once in
//! its footer gives small blocks the ratio of large ones.

use std::io;
use std::sync::Mutex;

/// Largest dictionary the sealer writes, in bytes.
pub const DICT_MAX_BYTES: usize = 64 << 10;

/// Largest dictionary a merge writes. A merged segment holds a whole time
/// window, so a larger dictionary pays for itself several times over: at
/// 192 KiB it takes about 2 bytes per span less than at 64 KiB on
/// generated data, for 0.4 bytes per span of its own.
pub const MERGE_DICT_MAX_BYTES: usize = 192 << 10;

/// The dictionary size worth training for a merge of `input_bytes`: about
/// 1/64 of the data, between the sealer's size and [`MERGE_DICT_MAX_BYTES`],
/// so a small merge does not carry a dictionary larger than its gain.
pub fn merge_dict_bytes(input_bytes: u64) -> usize {
    let share = usize::try_from(input_bytes / 64).unwrap_or(usize::MAX);
    share.clamp(DICT_MAX_BYTES, MERGE_DICT_MAX_BYTES)
}

/// Fewer sample bytes than this and training is not worth it (zstd refuses
/// to train on very little data anyway).
const MIN_SAMPLE_BYTES: usize = 128 << 10;

/// Trains a dictionary of at most `max_bytes` on sample block bodies;
/// `None` when the samples are too few or training fails, in which case
/// blocks are compressed without.
pub fn train<S: AsRef<[u8]>>(samples: &[S], max_bytes: usize) -> Option<Vec<u8>> {
    let total: usize = samples.iter().map(|s| s.as_ref().len()).sum();
    if total < MIN_SAMPLE_BYTES || samples.len() < 8 {
        return None;
    }
    zstd::dict::from_samples(samples, max_bytes).ok()
}

/// A segment's dictionary, with decompression contexts that have it loaded.
/// Contexts are pooled so concurrent readers do not load it again per block.
pub struct BlockDict {
    bytes: Vec<u8>,
    pool: Mutex<Vec<zstd::bulk::Decompressor<'static>>>,
}

impl BlockDict {
    pub fn new(bytes: &[u8]) -> Self {
        BlockDict {
            bytes: bytes.to_vec(),
            pool: Mutex::new(Vec::new()),
        }
    }

    /// The dictionary as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decompresses a block body compressed with this dictionary into `out`.
    pub fn decompress(&self, body: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut d = match pooled {
            Some(d) => d,
            None => zstd::bulk::Decompressor::with_dictionary(&self.bytes)?,
        };
        let r = d.decompress_to_buffer(body, out);
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(d);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_dictionaries_grow_with_the_merge_within_bounds() {
        assert_eq!(merge_dict_bytes(0), DICT_MAX_BYTES);
        assert_eq!(merge_dict_bytes(1 << 20), DICT_MAX_BYTES);
        assert_eq!(merge_dict_bytes(8 << 20), 128 << 10);
        assert_eq!(merge_dict_bytes(1 << 40), MERGE_DICT_MAX_BYTES);
    }
}
