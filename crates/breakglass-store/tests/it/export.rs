//! The tlog-tiles export: incremental (full tiles are written once), and
//! complete enough that the tree is recomputed from the files alone.

use std::collections::BTreeMap;
use std::path::Path;

use breakglass_store::export::{ExportError, ExportReport, export_tiles};
use breakglass_store::reader::ReadError;
use breakglass_tlog::Hash;
use breakglass_tlog::checkpoint::Checkpoint;
use breakglass_tlog::hash::leaf_hash;
use breakglass_tlog::tiles::decode_bundle;

use crate::harness::*;

/// Every file under `dir`, relative, with its contents.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_str().unwrap().replace('\\', "/");
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[cfg(unix)]
fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

#[cfg(not(unix))]
fn inode(_: &Path) -> u64 {
    0
}

fn split_hashes(tile: &[u8]) -> Vec<Hash> {
    assert_eq!(tile.len() % 32, 0, "tile of {} bytes", tile.len());
    tile.chunks_exact(32).map(|c| Hash::from_slice(c).unwrap()).collect()
}

/// Level-0 tile `n` of `width` hashes, by the tlog-tiles path rules (for
/// n < 1000, the three-digit form).
fn tile_path(level: &str, n: u64, width: u64) -> String {
    assert!(n < 1000);
    if width == 256 { format!("tile/{level}/{n:03}") } else { format!("tile/{level}/{n:03}.p/{width}") }
}

/// Reads the checkpoint and the tiles from `dir` alone, and recomputes the
/// tree: entry bundles against level-0 tiles, level-1 tiles against the
/// roots of full level-0 tiles, and the root against the signed checkpoint.
/// Returns the checkpoint.
fn check_export_dir(dir: &Path) -> Checkpoint {
    let files = files(dir);
    let note = std::str::from_utf8(&files["checkpoint"]).unwrap();
    let cp = Checkpoint::open(note, ORIGIN, &[signer().verifier()]).expect("the exported checkpoint verifies");
    let mut leaves = Vec::new();
    for n in 0..cp.size.div_ceil(256) {
        let width = (cp.size - 256 * n).min(256);
        let bundle = &files[&tile_path("entries", n, width)];
        let entries = decode_bundle(bundle).expect("bundle decodes");
        assert_eq!(entries.len() as u64, width, "bundle {n}");
        let hashes = split_hashes(&files[&tile_path("0", n, width)]);
        for (i, (entry, hash)) in entries.iter().zip(&hashes).enumerate() {
            let index = 256 * n + i as u64;
            assert_eq!(decode(entry).index, index);
            assert_eq!(leaf_hash(entry), *hash, "level-0 tile {n}, hash {i}");
            leaves.push(*hash);
        }
    }
    assert_eq!(mth(&leaves), cp.root, "the root recomputed from the tiles");
    let full = cp.size / 256;
    if full > 0 {
        let level1 = split_hashes(&files[&tile_path("1", 0, full)]);
        assert_eq!(level1.len() as u64, full);
        for (n, h) in level1.iter().enumerate() {
            assert_eq!(*h, mth(&leaves[256 * n..256 * (n + 1)]), "level-1 hash {n}");
        }
    }
    assert!(!files.keys().any(|f| f.contains(".tmp")), "temporary files left: {:?}", files.keys());
    cp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_incremental_and_reproduces_the_tree() {
    let mut log = TestLog::new().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("tiles");
    // (log size, written, skipped, the files in the directory afterwards besides `checkpoint`)
    let steps: &[(u64, u64, u64, &[&str])] = &[
        (70, 2, 0, &["tile/0/000.p/70", "tile/entries/000.p/70"]),
        (
            300,
            5,
            0,
            &[
                "tile/0/000",
                "tile/0/000.p/70",
                "tile/0/001.p/44",
                "tile/1/000.p/1",
                "tile/entries/000",
                "tile/entries/000.p/70",
                "tile/entries/001.p/44",
            ],
        ),
        (
            600,
            5,
            2,
            &[
                "tile/0/000",
                "tile/0/000.p/70",
                "tile/0/001",
                "tile/0/001.p/44",
                "tile/0/002.p/88",
                "tile/1/000.p/1",
                "tile/1/000.p/2",
                "tile/entries/000",
                "tile/entries/000.p/70",
                "tile/entries/001",
                "tile/entries/001.p/44",
                "tile/entries/002.p/88",
            ],
        ),
        (600, 0, 7, &[]),
    ];
    // Every file seen so far, with its inode and contents when first seen.
    let mut seen: BTreeMap<String, (u64, Vec<u8>)> = BTreeMap::new();
    for &(size, written, skipped, want_files) in steps {
        log.append_n(size - log.appended).await;
        let report = export_tiles(&log.reader(), &dir).await.unwrap();
        assert_eq!(report, ExportReport { size, written, skipped }, "export at {size}");
        let now = files(&dir);
        if !want_files.is_empty() {
            let mut names: Vec<&str> = now.keys().map(String::as_str).filter(|f| *f != "checkpoint").collect();
            names.sort_unstable();
            assert_eq!(names, want_files, "files after the export at {size}");
        }
        for (name, contents) in &now {
            if name == "checkpoint" {
                continue;
            }
            let ino = inode(&dir.join(name));
            let (first_ino, first) = seen.entry(name.clone()).or_insert_with(|| (ino, contents.clone()));
            assert_eq!((*first_ino, &*first), (ino, contents), "{name} was rewritten by the export at {size}");
        }
        let cp = check_export_dir(&dir);
        assert_eq!((cp.size, cp.root), (size, log.reader().tree_hash(size).await.unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_of_an_empty_log_writes_nothing() {
    let log = TestLog::new().await;
    let out = tempfile::tempdir().unwrap();
    let err = export_tiles(&log.reader(), out.path()).await.unwrap_err();
    assert!(matches!(err, ExportError::Read(ReadError::Empty)), "{err}");
    assert!(files(out.path()).is_empty());
}
