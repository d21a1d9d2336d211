//! Byte streams the TCP tests send and check, shared by the test files.
#![allow(dead_code)]

/// FNV-1a's offset basis: the starting value for [`fnv`].
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds `data` into an FNV-1a hash, so a stream can be checked without keeping it.
pub fn fnv(hash: &mut u64, data: &[u8]) {
    for &b in data {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x100_0000_01b3);
    }
}

/// Bytes `offset..offset + len` of the test stream, where byte `i` is `i % 251` (built from
/// slices: byte-by-byte iterators are too slow in debug builds for tens of MiB).
pub fn pattern(offset: usize, len: usize) -> Vec<u8> {
    let table: Vec<u8> = (0..251u8).collect();
    let mut out = Vec::with_capacity(len);
    let mut at = offset % 251;
    while out.len() < len {
        let take = (251 - at).min(len - out.len());
        out.extend_from_slice(&table[at..at + take]);
        at = 0;
    }
    out
}
