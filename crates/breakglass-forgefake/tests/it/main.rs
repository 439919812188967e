//! The fake GitHub against its documentation: each documented behaviour the
//! breakglass adapter relies on, over real HTTP on loopback, and each kept
//! example (`fixtures/github/`) against the fake's answer for the same state.

mod auth;
mod common;
mod fixtures;
mod gitlab;
mod gitlab_fixtures;
mod limits;
mod rulesets;
mod shape;
mod suites;
mod teams;
mod webhook;
