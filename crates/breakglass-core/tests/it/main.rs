//! Integration tests of breakglass-core: incident and forge push webhooks, OIDC ID tokens
//! and grant tokens through the public API, SSH signatures checked against
//! the real `ssh-keygen`, and the fuzzing corpora replayed through their
//! harnesses. (The RFC 9162 test vectors are breakglass-tlog's.)

mod forge;
mod fuzz_corpus;
mod incident;
mod oidc;
mod sshsig;
mod token;
