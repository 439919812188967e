//! What a push tells the Git hooks, parsed without IO: the update lines git
//! writes to `pre-receive` and `post-receive` on standard input, the push
//! options (`git push -o …`) that carry a grant token, and the rules by
//! which a ref name is well-formed and matches a protected pattern.
//!
//! Security: the pusher chooses the ref names, the object ids and the push
//! options. This module accepts only well-formed input (exactly the line
//! format git writes, ref names git itself would accept, one grant token at
//! most), refuses everything else with an error naming the input, never
//! panics on any bytes, and does work linear in the input with fixed bounds
//! (lines, line length, options, token length), so a hostile push can
//! neither make the hook misread which ref it updates nor make it spin.

use std::fmt;

/// The most update lines one push may carry (a mirror push of a very large
/// repository stays well below this; more is refused, not truncated).
pub const MAX_UPDATES: usize = 100_000;
/// The longest ref name accepted, in bytes (git's own limit is the file
/// system's; 4096 is PATH_MAX on Linux).
pub const MAX_REFNAME: usize = 4096;
/// The most push options looked at (git passes every option the client sent).
pub const MAX_PUSH_OPTIONS: usize = 1000;
/// The longest grant token accepted, in bytes (real ones are about 1 KiB).
pub const MAX_TOKEN: usize = 16 * 1024;
/// The push option that carries a grant token: `breakglass=<token>`.
pub const TOKEN_OPTION: &str = "breakglass=";

/// One update line: `<old> <new> <refname>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub old: String,
    pub new: String,
    pub refname: String,
}

/// Input the hook refuses, with the 1-based line it was on (0: not a line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "hook input line {}: {}", self.line, self.problem)
        }
    }
}

impl std::error::Error for InputError {}

/// A hex object id of SHA-1 (40) or SHA-256 (64) length, lower case as git writes it.
pub fn is_oid(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The all-zero object id git uses for "no object" (a creation's old value,
/// a deletion's new value).
pub fn is_zero(oid: &str) -> bool {
    !oid.is_empty() && oid.bytes().all(|b| b == b'0')
}

/// Shows at most 80 bytes of untrusted input, escaped, for an error message.
fn preview(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(80)];
    let mut s: String = String::from_utf8_lossy(cut).escape_debug().collect();
    if bytes.len() > cut.len() {
        s.push('…');
    }
    format!("\"{s}\"")
}

/// Parses the hook's standard input: one `<old> SP <new> SP <refname>` per
/// line, exactly as git writes it (single spaces, both ids of one length,
/// the ref name well-formed). Empty lines are skipped; anything else that
/// deviates is refused, naming the line.
pub fn parse_updates(input: &[u8]) -> Result<Vec<Update>, InputError> {
    let mut out = Vec::new();
    for (idx, raw) in input.split(|b| *b == b'\n').enumerate() {
        let line = idx + 1;
        if raw.is_empty() {
            continue;
        }
        if out.len() == MAX_UPDATES {
            return Err(InputError { line, problem: format!("more than {MAX_UPDATES} updates in one push") });
        }
        let err = |problem: String| InputError { line, problem };
        if raw.len() > 2 * 64 + 2 + MAX_REFNAME {
            return Err(err(format!("the line is longer than {} bytes", 2 * 64 + 2 + MAX_REFNAME)));
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(err(format!("{} is not UTF-8 (ref names here must be)", preview(raw))));
        };
        let mut fields = text.splitn(3, ' ');
        let (Some(old), Some(new), Some(refname)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(err(format!("expected '<old> <new> <refname>', got {}", preview(raw))));
        };
        if !is_oid(old) || !is_oid(new) || old.len() != new.len() {
            return Err(err(format!("expected two object ids of one length, got {}", preview(raw))));
        }
        check_refname(refname).map_err(err)?;
        out.push(Update { old: old.to_owned(), new: new.to_owned(), refname: refname.to_owned() });
    }
    Ok(out)
}

/// Checks a full ref name by git's rules (`git check-ref-format`): it starts
/// with `refs/`, no component is empty, starts with `.` or ends with
/// `.lock`; no `..`, `@{`, control character, space, `~ ^ : ? * [ \`; it
/// does not end with `/` or `.`, and is not `@`. Git refuses such names on
/// push ("funny refname") only after `pre-receive` ran, so the hook checks
/// them itself: a name that passes is safe to use as a path under the
/// repository and as a command-line argument.
pub fn check_refname(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("ref name {} {why}", preview(name.as_bytes())));
    if name.len() > MAX_REFNAME {
        return bad(&format!("is longer than {MAX_REFNAME} bytes"));
    }
    if !name.starts_with("refs/") {
        return bad("does not start with refs/");
    }
    if name.ends_with('/') || name.ends_with('.') {
        return bad("ends with '/' or '.'");
    }
    if name.contains("..") || name.contains("@{") {
        return bad("contains '..' or '@{'");
    }
    if let Some(c) =
        name.chars().find(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return bad(&format!("contains {c:?}"));
    }
    for component in name.split('/') {
        if component.is_empty() {
            return bad("has an empty component ('//')");
        }
        if component.starts_with('.') {
            return bad("has a component starting with '.'");
        }
        if component.ends_with(".lock") {
            return bad("has a component ending in '.lock'");
        }
    }
    Ok(())
}

/// Whether `refname` matches `pattern`: an exact ref, or a prefix ending in `*`.
pub fn matches(pattern: &str, refname: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => refname.starts_with(prefix),
        None => refname == pattern,
    }
}

/// The protected pattern `refname` matches only when case is ignored, if
/// any: in a `core.ignoreCase` repository (a case-insensitive file system)
/// `refs/heads/MAIN` may be the very file of `refs/heads/main`. Unicode
/// lower-casing on both sides, so the Kelvin sign folds to `k` as it does on
/// such file systems. `None` when the name matches a pattern exactly (then
/// it is plainly protected) or none at all.
pub fn case_variant_of<'a>(patterns: &'a [String], refname: &str) -> Option<&'a str> {
    if patterns.iter().any(|p| matches(p, refname)) {
        return None;
    }
    let folded = refname.to_lowercase();
    patterns.iter().find(|p| matches(&p.to_lowercase(), &folded)).map(String::as_str)
}

/// The protected pattern `refname` matches once canonically normalised, if
/// it matches none as it is: file systems that ignore Unicode normalisation
/// (APFS, HFS+) store canonically equivalent names as one file, even when
/// they respect case. Protected names are ASCII (the scope grammar), and
/// the only non-ASCII character canonically equivalent to an ASCII one in
/// them is the Kelvin sign (U+212A, equivalent to `K`).
pub fn normalization_variant_of<'a>(patterns: &'a [String], refname: &str) -> Option<&'a str> {
    if !refname.contains('\u{212a}') || patterns.iter().any(|p| matches(p, refname)) {
        return None;
    }
    let normalised = refname.replace('\u{212a}', "K");
    patterns.iter().find(|p| matches(p, &normalised)).map(String::as_str)
}

/// The number of push options, from git's `GIT_PUSH_OPTION_COUNT` (unset: none).
pub fn option_count(raw: Option<&str>) -> Result<usize, InputError> {
    let Some(raw) = raw else { return Ok(0) };
    raw.trim().parse::<usize>().map(|n| n.min(MAX_PUSH_OPTIONS)).map_err(|_| InputError {
        line: 0,
        problem: format!("GIT_PUSH_OPTION_COUNT is {}, not a number", preview(raw.as_bytes())),
    })
}

/// The grant token among the push options (`breakglass=<token>`), if one was
/// given. Refused: an empty or oversized token, one with characters no
/// token has (tokens are base64url parts joined by dots), and two different
/// tokens (which of them would the pusher mean?).
pub fn grant_token<'a, I>(options: I) -> Result<Option<String>, InputError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut found: Option<&str> = None;
    for option in options.into_iter().take(MAX_PUSH_OPTIONS) {
        let Some(token) = option.strip_prefix(TOKEN_OPTION) else { continue };
        let token = token.trim();
        let err = |problem: String| InputError { line: 0, problem };
        if token.is_empty() {
            return Err(err("the push option breakglass= carries no token".into()));
        }
        if token.len() > MAX_TOKEN {
            return Err(err(format!("the grant token in the push options is longer than {MAX_TOKEN} bytes")));
        }
        if let Some(c) = token.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '='))) {
            return Err(err(format!("the grant token in the push options contains {c:?}, which no token has")));
        }
        match found {
            Some(prev) if prev != token => {
                return Err(err("two different grant tokens were given as push options; give one".into()));
            }
            _ => found = Some(token),
        }
    }
    Ok(found.map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z() -> String {
        "0".repeat(40)
    }
    fn a() -> String {
        "a".repeat(40)
    }

    #[test]
    fn update_lines_are_parsed_exactly_as_git_writes_them() {
        let (z, a) = (z(), a());
        let u = parse_updates(format!("{z} {a} refs/heads/main\n\n{a} {z} refs/tags/v1\n").as_bytes()).unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].refname.as_str(), u[1].new.as_str()), ("refs/heads/main", z.as_str()));
        assert!(is_zero(&u[0].old) && !is_zero(&u[0].new));
        // The last line may lack its newline.
        assert_eq!(parse_updates(format!("{z} {a} refs/heads/x").as_bytes()).unwrap().len(), 1);
        assert!(parse_updates(b"").unwrap().is_empty());
        let sha256 = "b".repeat(64);
        assert!(parse_updates(format!("{sha256} {sha256} refs/heads/x\n").as_bytes()).is_ok());
    }

    #[test]
    fn malformed_lines_are_refused_naming_the_line() {
        let (z, a) = (z(), a());
        let cases: &[(String, &str)] = &[
            ("garbage\n".into(), "expected '<old> <new> <refname>'"),
            (format!("{z} {a} refs/heads/main extra\n"), "contains ' '"),
            (format!("{z}  {a} refs/heads/main\n"), "two object ids"),
            (format!("{z} {} refs/heads/main\n", "A".repeat(40)), "two object ids"),
            (format!("{z} {} refs/heads/main\n", "b".repeat(64)), "one length"),
            (format!("{z} {a} refs/heads/main\r\n"), "contains '\\r'"),
            (format!("{z} {a} main\n"), "does not start with refs/"),
            (format!("{z} {a} refs/heads/../../config\n"), "'..'"),
            (format!("{z} {a} refs/heads//main\n"), "empty component"),
            (format!("{z} {a} refs/heads/.hidden\n"), "starting with '.'"),
            (format!("{z} {a} refs/heads/main.lock\n"), ".lock"),
            (format!("{z} {a} refs/heads/main/\n"), "ends with"),
            (format!("{z} {a} refs/heads/ma@{{1}}\n"), "'@{'"),
            (format!("{z} {a} refs/heads/m\u{1b}[31m\n"), "contains"),
            (format!("{z} {a} refs/heads/a*\n"), "contains '*'"),
        ];
        for (input, want) in cases {
            let e = parse_updates(format!("{z} {a} refs/heads/ok\n{input}").as_bytes()).unwrap_err();
            assert_eq!(e.line, 2, "{input:?}");
            assert!(e.to_string().contains(want), "{input:?}: {e}");
        }
        let e = parse_updates(b"\xff\xfe refs\n").unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_work_is_bounded() {
        // A deterministic spread of hostile inputs: every byte value in
        // every position of a short line, long lines, many lines.
        let (z, a) = (z(), a());
        let base = format!("{z} {a} refs/heads/main");
        for pos in 0..base.len() {
            for b in 0..=255u8 {
                let mut line = base.clone().into_bytes();
                line[pos] = b;
                let _ = parse_updates(&line);
            }
        }
        let long = vec![b'a'; 1 << 20];
        assert!(parse_updates(&long).unwrap_err().to_string().contains("longer than"));
        let many = format!("{z} {a} refs/heads/x\n").repeat(MAX_UPDATES + 1);
        assert!(parse_updates(many.as_bytes()).unwrap_err().to_string().contains("more than"));
        let _ = grant_token(["breakglass=\u{0}\u{ffff}", "breakglass"]);
        let _ = option_count(Some("\u{0}99999999999999999999999999"));
    }

    #[test]
    fn protected_patterns_and_case_variants() {
        let p = vec!["refs/heads/main".to_owned(), "refs/heads/release/*".to_owned()];
        assert!(matches(&p[0], "refs/heads/main") && !matches(&p[0], "refs/heads/mainline"));
        assert!(matches(&p[1], "refs/heads/release/1.2"));
        assert_eq!(case_variant_of(&p, "refs/heads/main"), None, "exact: plainly protected");
        assert_eq!(case_variant_of(&p, "refs/heads/MAIN"), Some("refs/heads/main"));
        assert_eq!(case_variant_of(&p, "refs/HEADS/Main"), Some("refs/heads/main"));
        assert_eq!(case_variant_of(&p, "refs/heads/Release/9"), Some("refs/heads/release/*"));
        assert_eq!(case_variant_of(&p, "refs/heads/feature"), None);
        let k = vec!["refs/heads/hotfix-k".to_owned()];
        assert_eq!(case_variant_of(&k, "refs/heads/hotfix-\u{212a}"), Some("refs/heads/hotfix-k"), "Kelvin sign");
        let upper = vec!["refs/heads/KEEP".to_owned()];
        assert_eq!(normalization_variant_of(&upper, "refs/heads/\u{212a}EEP"), Some("refs/heads/KEEP"));
        assert_eq!(normalization_variant_of(&upper, "refs/heads/KEEP"), None);
        assert_eq!(normalization_variant_of(&k, "refs/heads/hotfix-\u{212a}"), None, "a case variant, not this");
    }

    #[test]
    fn push_options_carry_at_most_one_well_formed_token() {
        assert_eq!(option_count(None).unwrap(), 0);
        assert_eq!(option_count(Some("2")).unwrap(), 2);
        assert_eq!(option_count(Some("99999999")).unwrap(), MAX_PUSH_OPTIONS);
        assert!(option_count(Some("two")).is_err());
        assert_eq!(grant_token(["ci.skip", "breakglass=abc.def-_.ghi"]).unwrap().as_deref(), Some("abc.def-_.ghi"));
        assert_eq!(grant_token(["ci.skip"]).unwrap(), None);
        assert_eq!(grant_token(["breakglass=a.b", "breakglass=a.b"]).unwrap().as_deref(), Some("a.b"));
        for (opts, want) in [
            (vec!["breakglass="], "no token"),
            (vec!["breakglass=a.b", "breakglass=c.d"], "two different"),
            (vec!["breakglass=a b"], "contains ' '"),
            (vec!["breakglass=a\nb"], "contains"),
        ] {
            let e = grant_token(opts.clone()).unwrap_err();
            assert!(e.to_string().contains(want), "{opts:?}: {e}");
        }
        let huge = format!("breakglass={}", "a".repeat(MAX_TOKEN + 1));
        assert!(grant_token([huge.as_str()]).unwrap_err().to_string().contains("longer than"));
    }
}
