//! The principals file: the named identities that may break glass, with their
//! groups, the SSH keys they log in with and the e-mail addresses other systems
//! know them by.
//!
//! The file is TOML, one `[[principal]]` table per identity
//! ([`EXAMPLE_PRINCIPALS`] documents every key). Policy refers to principals by
//! name and by group; this file only says who they are and how they prove it.
//!
//! Loading is strict and all-or-nothing, because a mistake here decides who can
//! log in: unknown keys are errors (a typo such as `ssh_key` would otherwise
//! silently drop a principal's keys), and so are bad names, malformed keys or
//! e-mail addresses, a name used twice, and an SSH key or e-mail address given
//! to two principals (each must identify exactly one). Every problem found is
//! reported, each naming the file, the principal and the field.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use ssh_key::PublicKey;
use ssh_key::public::KeyData;

use crate::sshsig;

/// Names and groups are at most this many characters.
pub const MAX_NAME_CHARS: usize = 64;
/// E-mail addresses are at most this many bytes (RFC 5321's limit on a path).
pub const MAX_EMAIL_BYTES: usize = 254;

/// An example principals file, with a comment for every key. `breakglass init`
/// can write it as a starting point.
pub const EXAMPLE_PRINCIPALS: &str = r#"# breakglass principals: the identities that may break glass.
#
# Each [[principal]] table below is one identity. Cedar policy refers to
# principals by name and by group; this file grants nothing by itself. Unknown
# keys are errors, so a typo cannot silently drop, say, someone's SSH keys.
#
# name      Required. 1 to 64 characters of A-Z a-z 0-9 . _ @ -, not starting
#           with '-'. Unique, ignoring case ("alice" and "Alice" cannot both
#           exist, so that they cannot be confused).
# groups    Optional. Group names, with the same characters as names. Policy
#           uses them, for example to say who may approve a request.
# ssh_keys  Optional. OpenSSH public key lines, as in ~/.ssh/id_ed25519.pub
#           ('ssh-keygen -y -f KEY' prints one). A person logs in by signing a
#           challenge with one of them. Ed25519, ECDSA, RSA of 2048 to 4096
#           bits and FIDO security keys (sk-ssh-ed25519@openssh.com, which must
#           be touched at every login) are accepted. A key may be listed for one
#           principal only.
# emails    Optional. E-mail addresses by which other systems (for example an
#           incident tool naming its responders) refer to this principal.
#           Matched ignoring case; each may belong to one principal only.
# kind      "human" (the default) or "service": a CI job, server or hook
#           rather than a person.
# accounts  Optional. Accounts in other systems that are this principal, each
#           by an id that system never gives to anyone else. Each account may
#           belong to one principal.
#           CI (the issuer's name in breakglass.toml): "<issuer>:id:<user id>",
#           e.g. "github:id:4242" (the actor_id claim; `gh api users/LOGIN
#           --jq .id` prints it) or "gitlab:id:17" (user_id). The person who
#           triggers a pipeline is then this principal. A login ("github:alice")
#           identifies nobody: a login can be renamed and then registered by
#           someone else, who would inherit the grants.
#           Incidents: "<source>:<provider user id>", e.g. "pagerduty:PABC123"
#           or "opsgenie:<user id>": this principal responds when the incident
#           tool names that user.

[[principal]]
name = "alice"
groups = ["oncall"]
# Add alice's public keys, one "ssh-ed25519 AAAA... alice@laptop" line each:
ssh_keys = []
emails = ["alice@example.com"]
kind = "human"

[[principal]]
name = "bob"
groups = ["approvers", "sre"]
# Add bob's public keys, one "ssh-ed25519 AAAA... bob@laptop" line each:
ssh_keys = []
emails = ["bob@example.com"]

[[principal]]
name = "carol"
groups = ["approvers"]
# Add carol's public keys, one "ssh-ed25519 AAAA... carol@laptop" line each:
ssh_keys = []
emails = ["carol@example.com"]
"#;

/// Whether a principal is a person or a machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    #[default]
    Human,
    Service,
}

/// One identity from the principals file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub groups: Vec<String>,
    pub ssh_keys: Vec<PublicKey>,
    /// Lowercased (ASCII only, see [`Principals::by_email`]).
    pub emails: Vec<String>,
    pub kind: PrincipalKind,
    /// Accounts in other systems (exact, case-sensitive): `<issuer>:id:<id>`
    /// for CI issuers, `<source>:<user id>` for incident tools.
    pub accounts: Vec<String>,
}

/// Everything that was wrong with a principals file, one problem a line, each
/// naming the file, the principal and the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PrincipalsError {
    pub problems: Vec<String>,
}

impl fmt::Display for PrincipalsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

/// A validated principals file: names, SSH keys and e-mail addresses each
/// identify at most one principal.
#[derive(Clone, Debug, Default)]
pub struct Principals {
    /// In file order.
    list: Vec<Principal>,
    /// Name to index in `list`.
    by_name: HashMap<String, usize>,
    /// Lowercased e-mail address to index in `list`.
    by_email: HashMap<String, usize>,
    /// Account (`github:id:4242`, `pagerduty:PABC123`) to index in `list`.
    by_account: HashMap<String, usize>,
}

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    principal: Vec<RawPrincipal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    ssh_keys: Vec<String>,
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    kind: PrincipalKind,
    #[serde(default)]
    accounts: Vec<String>,
}

impl Principals {
    /// Parses and validates a principals file. `source` names the file in
    /// errors (e.g. `principals.toml`). Either every principal is valid and
    /// all are returned, or the error lists every problem found.
    pub fn parse(text: &str, source: &str) -> Result<Principals, PrincipalsError> {
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| PrincipalsError { problems: vec![format!("{source}: {}", e.to_string().trim_end())] })?;

        let mut problems = Vec::new();
        let mut principals = Principals::empty();
        // Names are unique ignoring case, so this maps lowercased names.
        let mut folded_names: HashMap<String, usize> = HashMap::new();
        // Each key belongs to one principal: key data (without the comment) to
        // the index of the principal that listed it first.
        let mut key_owner: HashMap<KeyData, usize> = HashMap::new();

        for (index, raw) in raw.principal.into_iter().enumerate() {
            let position = index + 1;
            let name_check = check_name(&raw.name);
            let name_ok = name_check.is_ok();
            let earlier = if name_ok { folded_names.get(&raw.name.to_ascii_lowercase()).copied() } else { None };
            // A principal is named by its name in errors, except when the name
            // is bad (it would repeat whatever the name contains) or already
            // taken (it would be ambiguous); then by its position.
            let label = match (name_ok, earlier) {
                (true, None) => format!("principal {:?}", raw.name),
                (true, Some(_)) => format!("principal #{position} ({:?})", raw.name),
                (false, _) => format!("principal #{position}"),
            };
            let mut problem = |what: String| problems.push(format!("{source}: {label}: {what}"));

            if let Err(why) = name_check {
                problem(format!("name: {why}"));
            } else if let Some(first) = earlier {
                let other = &principals.list[first].name;
                let how =
                    if *other == raw.name { "is already used by" } else { "differs only in case from the name of" };
                problem(format!("name {how} principal #{} ({other:?}); names must be unique", first + 1));
            }

            let mut groups: Vec<String> = Vec::new();
            for (i, group) in raw.groups.into_iter().enumerate() {
                if let Err(why) = check_name(&group) {
                    problem(format!("groups[{i}]: {why}"));
                } else if groups.contains(&group) {
                    problem(format!("groups[{i}]: group {group:?} is listed twice"));
                } else {
                    groups.push(group);
                }
            }

            let mut ssh_keys: Vec<PublicKey> = Vec::new();
            for (i, line) in raw.ssh_keys.iter().enumerate() {
                let key = match sshsig::parse_public_key(line) {
                    Ok(key) => key,
                    Err(e) => {
                        problem(format!("ssh_keys[{i}]: {e}"));
                        continue;
                    }
                };
                let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256);
                if ssh_keys.iter().any(|k| k.key_data() == key.key_data()) {
                    problem(format!("ssh_keys[{i}]: key {fingerprint} is listed twice"));
                } else if let Some(&owner) = key_owner.get(key.key_data()) {
                    problem(format!(
                        "ssh_keys[{i}]: key {fingerprint} is already listed for {}; a key must identify exactly one principal",
                        describe(&principals.list, owner)
                    ));
                } else {
                    key_owner.insert(key.key_data().clone(), index);
                    ssh_keys.push(key);
                }
            }

            let mut emails: Vec<String> = Vec::new();
            for (i, email) in raw.emails.iter().enumerate() {
                if let Err(why) = check_email(email) {
                    problem(format!("emails[{i}]: {why}"));
                    continue;
                }
                let email = email.to_ascii_lowercase();
                if emails.contains(&email) {
                    problem(format!("emails[{i}]: {email:?} is listed twice"));
                } else if let Some(&owner) = principals.by_email.get(&email) {
                    problem(format!(
                        "emails[{i}]: {email:?} is already listed for {}; an e-mail address must identify exactly one principal",
                        describe(&principals.list, owner)
                    ));
                } else {
                    emails.push(email);
                }
            }

            // Every principal is recorded, even an invalid one, so that later
            // principals are checked against it (and its position stays its
            // index). Nothing is returned unless there were no problems.
            if name_ok {
                folded_names.entry(raw.name.to_ascii_lowercase()).or_insert(index);
                principals.by_name.entry(raw.name.clone()).or_insert(index);
            }
            for email in &emails {
                principals.by_email.insert(email.clone(), index);
            }
            let mut accounts: Vec<String> = Vec::new();
            for (i, account) in raw.accounts.iter().enumerate() {
                let well_formed = account.split_once(':').is_some_and(|(issuer, login)| {
                    !issuer.is_empty()
                        && !login.is_empty()
                        && account.len() <= 128
                        && account.chars().all(|c| c.is_ascii_graphic())
                });
                // `<issuer>:id:` with nothing after it is a CI account without its id.
                let empty_id = account.split_once(':').is_some_and(|(_, rest)| rest == "id:");
                if !well_formed || empty_id {
                    problem(format!(
                        "accounts[{i}]: {account:?} is not <issuer>:id:<user id> (CI, e.g. github:id:4242) or <source>:<user id> (incidents, e.g. pagerduty:PABC123)"
                    ));
                } else if accounts.contains(account) {
                    problem(format!("accounts[{i}]: {account:?} is listed twice"));
                } else if let Some(&other) = principals.by_account.get(account) {
                    problem(format!(
                        "accounts[{i}]: {account:?} is already listed for principal {:?}; an account must identify exactly one principal",
                        principals.list[other].name
                    ));
                } else {
                    accounts.push(account.clone());
                }
            }
            for account in &accounts {
                principals.by_account.insert(account.clone(), index);
            }
            principals.list.push(Principal { name: raw.name, groups, ssh_keys, emails, kind: raw.kind, accounts });
        }

        if problems.is_empty() { Ok(principals) } else { Err(PrincipalsError { problems }) }
    }

    /// No principals at all: nobody can log in.
    pub fn empty() -> Principals {
        Principals::default()
    }

    /// The principal with exactly this name (names are case-sensitive).
    pub fn get(&self, name: &str) -> Option<&Principal> {
        self.by_name.get(name).map(|&i| &self.list[i])
    }

    /// The principal with this e-mail address, ignoring ASCII case. Only ASCII
    /// letters are folded: Unicode case folding would let, for instance, the
    /// Kelvin sign `K` (U+212A) in an address from elsewhere match a `k` here.
    pub fn by_email(&self, email: &str) -> Option<&Principal> {
        self.by_email.get(&email.to_ascii_lowercase()).map(|&i| &self.list[i])
    }

    /// The principal an account (`github:id:4242`, `pagerduty:PABC123`) belongs to.
    pub fn by_account(&self, account: &str) -> Option<&Principal> {
        self.by_account.get(account).map(|&i| &self.list[i])
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The principals, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Principal> {
        self.list.iter()
    }

    /// The principals' names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|p| p.name.as_str())
    }
}

impl<'a> IntoIterator for &'a Principals {
    type Item = &'a Principal;
    type IntoIter = std::slice::Iter<'a, Principal>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

/// Checks a principal or group name: 1 to [`MAX_NAME_CHARS`] characters of
/// `[A-Za-z0-9._@-]`, not starting with `-` (so that a name can never be
/// taken for a command-line option). The error says what is wrong without
/// repeating the name, which may be anything.
/// Whether `name` is a well-formed principal name (whether or not anyone
/// has it).
pub fn is_valid_name(name: &str) -> bool {
    check_name(name).is_ok()
}

pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.len() > MAX_NAME_CHARS {
        return Err(format!("is longer than {MAX_NAME_CHARS} characters"));
    }
    if let Some(c) = name.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))) {
        return Err(format!("contains {c:?}; use only A-Z a-z 0-9 . _ @ -"));
    }
    if name.starts_with('-') {
        return Err("starts with '-'".to_owned());
    }
    Ok(())
}

/// Checks an e-mail address, loosely: exactly one `@` with text on each side,
/// no whitespace or control characters, at most [`MAX_EMAIL_BYTES`] bytes.
/// It is a name to match, not an address to send to.
fn check_email(email: &str) -> Result<(), String> {
    if email.len() > MAX_EMAIL_BYTES {
        return Err(format!("e-mail address is longer than {MAX_EMAIL_BYTES} bytes"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("e-mail address {email:?} contains whitespace or a control character"));
    }
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => Ok(()),
        _ => Err(format!("{email:?} is not an e-mail address: expected exactly one '@' with text on each side")),
    }
}

/// Names principal number `index` (from 0) in an error: by name if it has a
/// valid one, by position otherwise.
fn describe(list: &[Principal], index: usize) -> String {
    let name = &list[index].name;
    if check_name(name).is_ok() { format!("principal {name:?}") } else { format!("principal #{}", index + 1) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use ssh_key::public::Ed25519PublicKey;

    /// An OpenSSH public key line for the Ed25519 key with this seed.
    fn key_line(seed: u8, comment: &str) -> String {
        let public = SigningKey::from_bytes(&[seed; 32]).verifying_key().to_bytes();
        PublicKey::new(KeyData::Ed25519(Ed25519PublicKey(public)), comment).to_openssh().unwrap()
    }

    fn parse(text: &str) -> Result<Principals, PrincipalsError> {
        Principals::parse(text, "principals.toml")
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(p) => panic!("expected an error, got {} principals", p.len()),
            Err(e) => e.problems,
        }
    }

    #[test]
    fn the_example_parses() {
        let p = parse(EXAMPLE_PRINCIPALS).unwrap();
        assert_eq!(p.names().collect::<Vec<_>>(), ["alice", "bob", "carol"]);
        assert_eq!(p.get("alice").unwrap().groups, ["oncall"]);
        assert_eq!(p.get("bob").unwrap().groups, ["approvers", "sre"]);
        assert_eq!(p.get("carol").unwrap().groups, ["approvers"]);
        assert!(p.iter().all(|p| p.ssh_keys.is_empty() && p.kind == PrincipalKind::Human));
        assert_eq!(p.by_email("bob@example.com").unwrap().name, "bob");
    }

    #[test]
    fn parses_every_field() {
        let text = format!(
            r#"
            [[principal]]
            name = "alice"
            groups = ["oncall", "sre"]
            ssh_keys = ["{}", "{}"]
            emails = ["Alice@Example.COM"]

            [[principal]]
            name = "ci.deploy@payments"
            kind = "service"
            "#,
            key_line(1, "alice@laptop"),
            key_line(2, ""),
        );
        let p = parse(&text).unwrap();
        assert_eq!(p.len(), 2);
        assert!(!p.is_empty());
        let alice = p.get("alice").unwrap();
        assert_eq!(alice.groups, ["oncall", "sre"]);
        assert_eq!(alice.ssh_keys.len(), 2);
        assert_eq!(alice.ssh_keys[0].comment(), "alice@laptop");
        assert_eq!(alice.emails, ["alice@example.com"]);
        assert_eq!(alice.kind, PrincipalKind::Human);
        let ci = p.get("ci.deploy@payments").unwrap();
        assert_eq!(ci.kind, PrincipalKind::Service);
        assert!(ci.groups.is_empty() && ci.ssh_keys.is_empty() && ci.emails.is_empty());
        assert_eq!((&p).into_iter().count(), 2);
    }

    #[test]
    fn lookups() {
        let p = parse(EXAMPLE_PRINCIPALS).unwrap();
        assert!(p.get("Alice").is_none(), "names are case-sensitive");
        assert!(p.get("mallory").is_none());
        assert_eq!(p.by_email("ALICE@example.com").unwrap().name, "alice");
        assert!(p.by_email("alice@example.org").is_none());
        // The Kelvin sign lowercases to 'k' in Unicode; it must not match.
        let text = r#"
            [[principal]]
            name = "kate"
            emails = ["kate@example.com"]
        "#;
        let p = parse(text).unwrap();
        assert!(p.by_email("\u{212A}ate@example.com").is_none());
        assert_eq!(p.by_email("KATE@example.com").unwrap().name, "kate");
    }

    #[test]
    fn empty_files() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("# nobody yet\n").unwrap().is_empty());
        let p = Principals::empty();
        assert_eq!(p.len(), 0);
        assert!(p.get("alice").is_none() && p.by_email("a@b").is_none());
        assert_eq!(p.names().count(), 0);
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_errors() {
        for (text, needle) in [
            ("[[principal]]\nname = \"alice\"\nssh_key = []\n", "ssh_key"),
            ("[[principals]]\nname = \"alice\"\n", "principals"),
            ("[[principal]]\ngroups = []\n", "name"),
            ("[[principal]]\nname = \"alice\"\nkind = \"robot\"\n", "robot"),
            ("[[principal]]\nname = \"alice\"\ngroups = \"sre\"\n", "groups"),
            ("[[principal]\n", "principal"),
        ] {
            let problems = problems(text);
            assert_eq!(problems.len(), 1, "{text:?}: {problems:?}");
            assert!(problems[0].starts_with("principals.toml: "), "{problems:?}");
            assert!(problems[0].contains(needle), "{text:?}: {problems:?}");
        }
    }

    #[test]
    fn names_and_groups_are_checked() {
        for bad in ["", "-alice", "al ice", "alice\n", "alïce", "a/b", "a:b", &"a".repeat(65)] {
            let text = format!("[[principal]]\nname = {bad:?}\n");
            let problems = problems(&text);
            assert_eq!(problems.len(), 1, "{bad:?}: {problems:?}");
            assert!(problems[0].starts_with("principals.toml: principal #1: name: "), "{problems:?}");

            let text = format!("[[principal]]\nname = \"alice\"\ngroups = [\"sre\", {bad:?}]\n");
            let problems = self::problems(&text);
            assert_eq!(problems.len(), 1, "{bad:?}: {problems:?}");
            assert!(problems[0].starts_with("principals.toml: principal \"alice\": groups[1]: "), "{problems:?}");
        }
        for good in ["a", "A.b_c-d@e", "0", "x-", &"a".repeat(64)] {
            let text = format!("[[principal]]\nname = {good:?}\ngroups = [{good:?}]\n");
            assert_eq!(parse(&text).unwrap().names().collect::<Vec<_>>(), [good]);
        }
        let problems = problems("[[principal]]\nname = \"alice\"\ngroups = [\"sre\", \"sre\"]\n");
        assert_eq!(problems, ["principals.toml: principal \"alice\": groups[1]: group \"sre\" is listed twice"]);
    }

    #[test]
    fn duplicate_names_are_refused_even_in_another_case() {
        let text = "[[principal]]\nname = \"bob\"\n[[principal]]\nname = \"alice\"\n[[principal]]\nname = \"bob\"\n\
                    [[principal]]\nname = \"Alice\"\n";
        assert_eq!(
            problems(text),
            [
                "principals.toml: principal #3 (\"bob\"): name is already used by principal #1 (\"bob\"); names must be unique",
                "principals.toml: principal #4 (\"Alice\"): name differs only in case from the name of principal #2 (\"alice\"); names must be unique",
            ]
        );
    }

    #[test]
    fn ssh_keys_are_checked() {
        let text = format!(
            "[[principal]]\nname = \"bob\"\nssh_keys = [\"{}\", \"ssh-ed25519 AAAAnotakey\", \"\", \"ssh-dss AAAA\"]\n",
            key_line(1, "bob@laptop")
        );
        let problems = problems(&text);
        assert_eq!(problems.len(), 3, "{problems:?}");
        for (problem, index) in problems.iter().zip(1..) {
            let prefix = format!("principals.toml: principal \"bob\": ssh_keys[{index}]: invalid OpenSSH public key");
            assert!(problem.starts_with(&prefix), "{problem}");
        }
    }

    #[test]
    fn a_key_identifies_one_principal() {
        // The same key under another comment is still the same key.
        let text = format!(
            "[[principal]]\nname = \"alice\"\nssh_keys = [\"{}\"]\n[[principal]]\nname = \"bob\"\nssh_keys = [\"{}\", \"{}\"]\n",
            key_line(1, "alice@laptop"),
            key_line(2, "bob@laptop"),
            key_line(1, "bob@other"),
        );
        let problems = problems(&text);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("principals.toml: principal \"bob\": ssh_keys[1]: key SHA256:"),
            "{problems:?}"
        );
        assert!(problems[0].contains("already listed for principal \"alice\""), "{problems:?}");

        let text = format!(
            "[[principal]]\nname = \"alice\"\nssh_keys = [\"{}\", \"{}\"]\n",
            key_line(1, "a"),
            key_line(1, "b")
        );
        let problems = self::problems(&text);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].ends_with("is listed twice"), "{problems:?}");
    }

    #[test]
    fn emails_are_checked_and_identify_one_principal() {
        for bad in ["alice", "@example.com", "alice@", "a@b@c", "alice @example.com", "alice@exa\tmple.com", ""] {
            let text = format!("[[principal]]\nname = \"alice\"\nemails = [{bad:?}]\n");
            let problems = problems(&text);
            assert_eq!(problems.len(), 1, "{bad:?}: {problems:?}");
            assert!(problems[0].starts_with("principals.toml: principal \"alice\": emails[0]: "), "{problems:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(problems(&format!("[[principal]]\nname = \"a\"\nemails = [{long:?}]\n"))[0].contains("longer than"));

        let text = "[[principal]]\nname = \"alice\"\nemails = [\"alice@example.com\"]\n\
                    [[principal]]\nname = \"bob\"\nemails = [\"ALICE@example.com\"]\n";
        assert_eq!(
            problems(text),
            [
                "principals.toml: principal \"bob\": emails[0]: \"alice@example.com\" is already listed for principal \"alice\"; an e-mail address must identify exactly one principal"
            ]
        );
        let text = "[[principal]]\nname = \"alice\"\nemails = [\"alice@example.com\", \"Alice@example.com\"]\n";
        assert_eq!(
            problems(text),
            ["principals.toml: principal \"alice\": emails[1]: \"alice@example.com\" is listed twice"]
        );
    }

    #[test]
    fn every_problem_is_reported_and_nothing_is_returned() {
        let text = format!(
            "[[principal]]\nname = \"alice\"\n\
             [[principal]]\nname = \"b ob\"\ngroups = [\"-x\"]\nssh_keys = [\"garbage\"]\nemails = [\"nope\"]\n\
             [[principal]]\nname = \"alice\"\nssh_keys = [\"{}\"]\n",
            key_line(3, "")
        );
        let err = parse(&text).unwrap_err();
        assert_eq!(err.problems.len(), 5, "{err}");
        assert!(err.problems[0].starts_with("principals.toml: principal #2: name: contains ' '"), "{err}");
        assert!(err.problems[1].starts_with("principals.toml: principal #2: groups[0]: starts with '-'"), "{err}");
        assert!(err.problems[2].starts_with("principals.toml: principal #2: ssh_keys[0]: "), "{err}");
        assert!(err.problems[3].starts_with("principals.toml: principal #2: emails[0]: "), "{err}");
        assert!(
            err.problems[4].starts_with("principals.toml: principal #3 (\"alice\"): name is already used"),
            "{err}"
        );
        // Display is one problem a line.
        assert_eq!(err.to_string().lines().count(), 5);
    }

    #[test]
    fn ci_accounts_identify_one_principal() {
        let text = "[[principal]]\nname = \"alice\"\naccounts = [\"github:id:4242\", \"gitlab:id:17\", \"pagerduty:PALICE1\"]\n";
        let p = Principals::parse(text, "principals.toml").unwrap();
        assert_eq!(p.by_account("github:id:4242").map(|p| p.name.as_str()), Some("alice"));
        assert_eq!(p.by_account("pagerduty:PALICE1").map(|p| p.name.as_str()), Some("alice"));
        assert!(p.by_account("github:alice").is_none());
        assert!(p.by_account("github:id:42").is_none());
        for bad in ["alice", ":x", "github:", "github:a b", "github:id:"] {
            let text = format!("[[principal]]\nname = \"a\"\naccounts = [{bad:?}]\n");
            assert!(problems(&text)[0].contains("accounts[0]"), "{bad}");
        }
        let twice = "[[principal]]\nname = \"a\"\naccounts = [\"github:x\"]\n[[principal]]\nname = \"b\"\naccounts = [\"github:x\"]\n";
        assert!(problems(twice)[0].contains("already listed for principal \"a\""));
    }
}
