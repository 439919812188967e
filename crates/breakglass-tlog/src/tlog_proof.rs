//! The `c2sp.org/tlog-proof@v1` format: an offline-verifiable proof that an
//! entry is in the log, made of its index, its inclusion proof and the signed
//! checkpoint it is proven against.
//!
//! Security: whoever hands over a proof controls all of it;
//! [`TlogProof::verify`] is what `breakglass audit
//! verify-proof` and report verification rely on. It checks the checkpoint's
//! signature first, then the inclusion of the exact entry bytes.

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hash::{Hash, leaf_hash};
use crate::note::NoteVerifier;
use crate::proof::{ProofError, verify_inclusion};

pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlogProofError {
    #[error("malformed tlog-proof: {0}")]
    Malformed(&'static str),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("inclusion proof: {0}")]
    Proof(#[from] ProofError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    pub extra: Option<String>,
    pub index: u64,
    pub hashes: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

impl TlogProof {
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {extra}\n"));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.hashes {
            out.push_str(&h.to_base64());
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    pub fn parse(text: &str) -> Result<TlogProof, TlogProofError> {
        let malformed = TlogProofError::Malformed;
        let Some((head, checkpoint)) = text.split_once("\n\n") else {
            return Err(malformed("no blank line before the checkpoint"));
        };
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(malformed("first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or(malformed("missing index line"))?;
        let mut extra = None;
        if let Some(e) = line.strip_prefix("extra ") {
            extra = Some(e.to_owned());
            line = lines.next().ok_or(malformed("missing index line"))?;
        }
        let index = line.strip_prefix("index ").ok_or(malformed("missing index line"))?;
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) || (index.len() > 1 && index.starts_with('0'))
        {
            return Err(malformed("index is not a decimal without leading zeroes"));
        }
        let index = index.parse().map_err(|_| malformed("index out of range"))?;
        let hashes = lines
            .map(|l| Hash::from_base64(l).ok_or(malformed("proof line is not a base64 SHA-256 hash")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TlogProof { extra, index, hashes, checkpoint: checkpoint.to_owned() })
    }

    /// Verifies the checkpoint's signature by `key` (with origin `origin`)
    /// and that `entry` is at `self.index` in that tree.
    pub fn verify(&self, entry: &[u8], origin: &str, key: &NoteVerifier) -> Result<Checkpoint, TlogProofError> {
        let cp = Checkpoint::open(&self.checkpoint, origin, std::slice::from_ref(key))?;
        verify_inclusion(self.index, cp.size, &leaf_hash(entry).0, &self.hashes, &cp.root.0)?;
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;
    use crate::tree::{MemoryTree, prove_inclusion};

    #[test]
    fn proofs_round_trip_and_verify() {
        let signer = NoteSigner::from_seed("example.com/log", &[5; 32]).unwrap();
        let entries: Vec<Vec<u8>> = (0..11u8).map(|i| vec![i; 3]).collect();
        let mut tree = MemoryTree::default();
        for e in &entries {
            tree.append(leaf_hash(e));
        }
        let cp = Checkpoint { origin: "example.com/log".into(), size: tree.size(), root: tree.root() };
        let note = cp.sign(&signer).unwrap();
        let proof =
            TlogProof { extra: None, index: 6, hashes: prove_inclusion(11, 6, &tree).unwrap(), checkpoint: note };
        let text = proof.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 6\n"));
        let parsed = TlogProof::parse(&text).unwrap();
        assert_eq!(parsed, proof);
        let key = signer.verifier();
        assert_eq!(parsed.verify(&entries[6], "example.com/log", &key).unwrap(), cp);
        // The wrong entry, the wrong index, or another key: rejected.
        assert!(parsed.verify(&entries[5], "example.com/log", &key).is_err());
        let mut moved = parsed.clone();
        moved.index = 5;
        assert!(moved.verify(&entries[6], "example.com/log", &key).is_err());
        let other = NoteSigner::from_seed("example.com/log", &[6; 32]).unwrap().verifier();
        assert!(parsed.verify(&entries[6], "example.com/log", &other).is_err());
        let mut with_extra = proof.clone();
        with_extra.extra = Some("aGVsbG8=".into());
        assert_eq!(TlogProof::parse(&with_extra.to_text()).unwrap(), with_extra);
        for bad in [
            "",
            "c2sp.org/tlog-proof@v1\n\n",
            "c2sp.org/tlog-proof@v2\nindex 1\n\nx",
            "c2sp.org/tlog-proof@v1\nindex 01\n\nx",
        ] {
            assert!(TlogProof::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
