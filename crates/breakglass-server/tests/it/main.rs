//! The server's integration tests: the grant service through its HTTP
//! router (in process, `oneshot`), with real SSH keys from `ssh-keygen`,
//! real signatures from `ssh-keygen -Y sign`, real SQLite files, and a real
//! PostgreSQL when `BREAKGLASS_TEST_PG_URL` is set. Time is an input: the
//! service runs on a clock the tests move.

mod drift;
mod effects;
mod events;
mod forges;
mod grants;
mod harness;
mod http_errors;
mod incidents;
mod login;
mod multi;
mod receiver;
mod reviews;
mod security_api;
mod security_input;
mod tls;
