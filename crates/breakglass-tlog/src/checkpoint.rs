//! C2SP tlog-checkpoint bodies: `<origin>\n<size>\n<base64 root>\n`, plus
//! optional extension lines, signed as a [`crate::note`].
//!
//! Security: a checkpoint arrives as bytes from anyone; [`Checkpoint::open`]
//! is the only way to get a trusted
//! checkpoint out of bytes; it verifies the signature before parsing the body
//! and checks the origin.

use crate::hash::Hash;
use crate::note::{self, NoteError, NoteSigner, NoteVerifier};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    #[error("checkpoint origin is {got:?}, expected {want:?}")]
    WrongOrigin { got: String, want: String },
}

/// A checkpoint body: which log, how big, and its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note text of this checkpoint.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, self.root.to_base64())
    }

    /// Parses a checkpoint body (the note text, not the signed note).
    pub fn parse_text(text: &str) -> Result<Checkpoint, CheckpointError> {
        let mut lines = text.split_inclusive('\n');
        let origin =
            lines.next().and_then(|l| l.strip_suffix('\n')).ok_or(CheckpointError::Malformed("missing origin line"))?;
        let size =
            lines.next().and_then(|l| l.strip_suffix('\n')).ok_or(CheckpointError::Malformed("missing size line"))?;
        let root =
            lines.next().and_then(|l| l.strip_suffix('\n')).ok_or(CheckpointError::Malformed("missing root line"))?;
        if origin.is_empty() {
            return Err(CheckpointError::Malformed("empty origin"));
        }
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || (size.len() > 1 && size.starts_with('0')) {
            return Err(CheckpointError::Malformed("size is not a decimal without leading zeroes"));
        }
        let size: u64 = size.parse().map_err(|_| CheckpointError::Malformed("size out of range"))?;
        let root = Hash::from_base64(root).ok_or(CheckpointError::Malformed("root is not a base64 SHA-256 hash"))?;
        // Extension lines are allowed but must be non-empty.
        for line in lines {
            if line == "\n" || !line.ends_with('\n') {
                return Err(CheckpointError::Malformed("empty or unterminated extension line"));
            }
        }
        Ok(Checkpoint { origin: origin.to_owned(), size, root })
    }

    /// Signs this checkpoint as a note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        Ok(signer.sign(&self.to_text())?)
    }

    /// Verifies a signed checkpoint note against trusted keys and parses it.
    /// The origin must equal `origin`.
    pub fn open(note: &str, origin: &str, trusted: &[NoteVerifier]) -> Result<Checkpoint, CheckpointError> {
        let opened = note::open(note, trusted)?;
        let cp = Checkpoint::parse_text(&opened.text)?;
        if cp.origin != origin {
            return Err(CheckpointError::WrongOrigin { got: cp.origin, want: origin.to_owned() });
        }
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn round_trips_and_verifies() {
        let signer = NoteSigner::from_seed("example.com/log", &[3; 32]).unwrap();
        let cp = Checkpoint { origin: "example.com/log".into(), size: 42, root: leaf_hash(b"x") };
        let note = cp.sign(&signer).unwrap();
        assert!(note.starts_with(&format!("example.com/log\n42\n{}\n\n\u{2014} example.com/log ", cp.root)));
        assert_eq!(Checkpoint::open(&note, "example.com/log", &[signer.verifier()]).unwrap(), cp);
        assert!(matches!(
            Checkpoint::open(&note, "other", &[signer.verifier()]),
            Err(CheckpointError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        let root = leaf_hash(b"x").to_base64();
        for bad in [
            String::new(),
            "o\n".into(),
            format!("o\n01\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n1\n{root}"),
            "o\n1\nAAAA\n".into(),
            format!("\n1\n{root}\n"),
            format!("o\n1\n{root}\n\n"),
            format!("o\n99999999999999999999999\n{root}\n"),
        ] {
            assert!(Checkpoint::parse_text(&bad).is_err(), "accepted {bad:?}");
        }
        assert!(Checkpoint::parse_text(&format!("o\n1\n{root}\next\n")).is_ok());
    }
}
