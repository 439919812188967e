//! The C2SP tlog-tiles layout (c2sp.org/tlog-tiles): tile paths, which tiles
//! a tree of a given size has, and entry bundles.
//!
//! A tile at level `L`, index `N` holds up to 256 consecutive hashes of tree
//! level `8 * L`; those are exactly stored hashes `(8L, 256N + i)`, so tiles
//! are read straight out of hash storage.

use crate::tree::stored_hash_index;

/// Tiles are 2^8 = 256 hashes wide.
pub const TILE_HEIGHT: u32 = 8;
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// A tile: level, index and width (256 for a full tile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub level: u32,
    pub index: u64,
    pub width: u64,
}

/// `x001/x234/067` for 1234067, as the specification requires.
pub fn encode_index(n: u64) -> String {
    let mut groups = Vec::new();
    let mut n = n;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| if i == last { format!("{g:03}") } else { format!("x{g:03}") })
        .collect::<Vec<_>>()
        .join("/")
}

impl Tile {
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        self.path_with("tile", &self.level.to_string())
    }

    /// `tile/entries/<N>[.p/<W>]` (meaningful for level 0 only).
    pub fn entries_path(&self) -> String {
        self.path_with("tile", "entries")
    }

    fn path_with(&self, prefix: &str, level: &str) -> String {
        let mut p = format!("{prefix}/{level}/{}", encode_index(self.index));
        if !self.is_full() {
            p.push_str(&format!(".p/{}", self.width));
        }
        p
    }

    /// The storage indexes of this tile's hashes, in order.
    pub fn hash_indexes(&self) -> Vec<u64> {
        let level = self.level * TILE_HEIGHT;
        (0..self.width).map(|i| stored_hash_index(level, self.index * TILE_WIDTH + i)).collect()
    }

    /// The range of entries a level-0 tile (or entry bundle) covers.
    pub fn entry_range(&self) -> std::ops::Range<u64> {
        let start = self.index * TILE_WIDTH;
        start..start + self.width
    }
}

/// Every tile of a tree of `size` leaves, full and partial, level by level.
pub fn tiles_for_size(size: u64) -> Vec<Tile> {
    let mut out = Vec::new();
    let mut level = 0u32;
    // At level L, the tiles hold hashes of tree level 8L; there are size >> 8L of them.
    loop {
        let shift = level * TILE_HEIGHT;
        if shift >= 64 {
            break;
        }
        let n_hashes = size >> shift;
        if n_hashes == 0 {
            break;
        }
        for index in 0..n_hashes / TILE_WIDTH {
            out.push(Tile { level, index, width: TILE_WIDTH });
        }
        let rest = n_hashes % TILE_WIDTH;
        if rest > 0 {
            out.push(Tile { level, index: n_hashes / TILE_WIDTH, width: rest });
        }
        level += 1;
    }
    out
}

/// Encodes entries as a bundle: each is a big-endian u16 length, then the bytes.
pub fn encode_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, usize> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| e.len())?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decodes an entry bundle; `None` if it is truncated.
pub fn decode_bundle(mut data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 2 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        data = &data[2..];
        if data.len() < len {
            return None;
        }
        out.push(&data[..len]);
        data = &data[len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_encoding_matches_the_spec() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        let t = Tile { level: 1, index: 5, width: 17 };
        assert_eq!(t.path(), "tile/1/005.p/17");
        assert_eq!(Tile { level: 0, index: 1234067, width: 256 }.entries_path(), "tile/entries/x001/x234/067");
    }

    #[test]
    fn tile_set_matches_the_spec_example() {
        // "a tree of size 70,000 will be represented by 273 full level 0 tiles,
        // one partial level 0 tile of width 112, one full level 1 tile, one
        // partial level 1 tile of width 17, and one partial level 2 tile of width 1."
        let tiles = tiles_for_size(70_000);
        let full0 = tiles.iter().filter(|t| t.level == 0 && t.is_full()).count();
        assert_eq!(full0, 273);
        let partial: Vec<_> = tiles.iter().filter(|t| !t.is_full()).map(|t| (t.level, t.width)).collect();
        assert_eq!(partial, vec![(0, 112), (1, 17), (2, 1)]);
        assert_eq!(tiles.iter().filter(|t| t.level == 1 && t.is_full()).count(), 1);
        // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1."
        let t256: Vec<_> = tiles_for_size(256).iter().map(|t| (t.level, t.width)).collect();
        assert_eq!(t256, vec![(0, 256), (1, 1)]);
        assert!(tiles_for_size(0).is_empty());
    }

    #[test]
    fn bundles_round_trip() {
        let entries: Vec<&[u8]> = vec![b"a", b"", b"hello"];
        let b = encode_bundle(entries.iter().copied()).unwrap();
        assert_eq!(decode_bundle(&b).unwrap(), entries);
        assert!(decode_bundle(&b[..b.len() - 1]).is_none());
        assert!(encode_bundle([vec![0u8; 70_000].as_slice()]).is_err());
    }
}
