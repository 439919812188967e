//! Integration tests of breakglass-core: the public RFC 6962 / RFC 9162
//! transparency-dev test vectors, SSH signatures checked against the real
//! `ssh-keygen`, and the fuzzing corpora replayed through their harnesses.

mod fuzz_corpus;
mod incident;
mod oidc;
mod sshsig;
mod token;
mod vectors;
