//! Integration tests of breakglass-core: the public RFC 6962 / RFC 9162
//! transparency-dev test vectors, and SSH signatures checked against the real
//! `ssh-keygen`.

mod incident;
mod oidc;
mod sshsig;
mod token;
mod vectors;
