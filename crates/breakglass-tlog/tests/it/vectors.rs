//! Runs every inclusion and consistency vector in
//! `../shared/testdata/merkle-vectors/`: cases with `wantErr: false` must
//! verify and cases with `wantErr: true` must be rejected.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use breakglass_tlog::Hash;
use breakglass_tlog::proof::{verify_consistency, verify_inclusion};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/merkle-vectors");
    assert!(dir.is_dir(), "test vectors not found at {} (shared/ must sit beside the project root)", dir.display());
    dir
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn bytes(v: &Value, key: &str) -> Vec<u8> {
    match &v[key] {
        Value::String(s) => B64.decode(s).unwrap(),
        Value::Null => Vec::new(),
        other => panic!("{key} is {other}"),
    }
}

/// A proof whose elements are not 32-byte hashes cannot parse, which is a rejection.
fn proof(v: &Value) -> Option<Vec<Hash>> {
    match &v["proof"] {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => {
            items.iter().map(|p| Hash::from_slice(&B64.decode(p.as_str().unwrap()).unwrap())).collect()
        }
        other => panic!("proof is {other}"),
    }
}

fn run(kind: &str) -> (usize, usize) {
    let mut files = Vec::new();
    json_files(&vectors_dir().join(kind), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no {kind} vectors found");
    let (mut accepted, mut rejected) = (0, 0);
    for file in files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let res = proof(&v).ok_or(()).and_then(|p| {
            if kind == "inclusion" {
                let idx = v["leafIdx"].as_u64().unwrap();
                let size = v["treeSize"].as_u64().unwrap();
                verify_inclusion(idx, size, &bytes(&v, "leafHash"), &p, &bytes(&v, "root")).map_err(|_| ())
            } else {
                let s1 = v["size1"].as_u64().unwrap();
                let s2 = v["size2"].as_u64().unwrap();
                verify_consistency(s1, s2, &bytes(&v, "root1"), &bytes(&v, "root2"), &p).map_err(|_| ())
            }
        });
        assert_eq!(res.is_err(), want_err, "{}: {}", file.display(), v["desc"]);
        if want_err { rejected += 1 } else { accepted += 1 }
    }
    (accepted, rejected)
}

#[test]
fn every_inclusion_vector() {
    let (accepted, rejected) = run("inclusion");
    assert!(accepted > 0 && rejected > 0);
}

#[test]
fn every_consistency_vector() {
    let (accepted, rejected) = run("consistency");
    assert!(accepted > 0 && rejected > 0);
}
