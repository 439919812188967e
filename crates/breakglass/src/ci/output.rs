//! What `breakglass ci status` leaves for the rest of a pipeline: GitHub
//! Actions step outputs (`$GITHUB_OUTPUT`) and a Markdown job summary
//! (`$GITHUB_STEP_SUMMARY`), and a GitLab dotenv file for
//! `artifacts:reports:dotenv`.
//!
//! Formats:
//! - GitHub outputs: `name=value` lines; a value with a line break uses the
//!   heredoc form `name<<DELIMITER` / value lines / `DELIMITER`, with a
//!   random delimiter that does not occur in the value.
//! - GitLab dotenv: `KEY=value` lines only, as GitLab accepts them: no
//!   empty lines, no comments, no quotes or multi-line values (line breaks
//!   become spaces; `$` is written `$$`, which GitLab reads as a literal
//!   `$`), keys of ASCII letters, digits and `_`, under 5 KB.

use std::fmt::Write as _;

/// The values a status exports, in order.
pub type Outputs = Vec<(String, String)>;

/// `$GITHUB_OUTPUT` text for `outputs`; `delimiter_seed` makes the heredoc
/// delimiter unique (random in real use).
pub fn github_outputs(outputs: &Outputs, delimiter_seed: &str) -> String {
    let mut out = String::new();
    for (name, value) in outputs {
        if value.contains('\n') || value.contains('\r') {
            let mut delim = format!("ghadelimiter_{delimiter_seed}");
            while value.contains(&delim) {
                delim.push('_');
            }
            let _ = write!(out, "{name}<<{delim}\n{value}\n{delim}\n");
        } else {
            let _ = writeln!(out, "{name}={value}");
        }
    }
    out
}

/// A GitLab dotenv file for `outputs` (keys upper-cased with a prefix).
pub fn gitlab_dotenv(outputs: &Outputs, prefix: &str) -> String {
    let mut out = String::new();
    for (name, value) in outputs {
        let key: String = format!("{prefix}{name}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
            .collect();
        // GitLab expands `$` in variables it passes on: `$$` is a literal `$`.
        let value: String = value.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }).collect();
        let _ = writeln!(out, "{key}={}", value.trim().replace('$', "$$"));
    }
    out
}

/// Escapes text for a Markdown table cell.
pub fn md_cell(s: &str) -> String {
    // Newlines become spaces (a cell is one line); every other control or
    // invisible character becomes a visible escape.
    let s = s.replace(['\n', '\r'], " ");
    crate::display::line(&s).replace('\\', "\\\\").replace('|', "\\|").replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outs() -> Outputs {
        vec![
            ("active".into(), "true".into()),
            ("grant".into(), "gr_0abc".into()),
            ("reason".into(), "INC-7: payments down\nrollback failed".into()),
        ]
    }

    #[test]
    fn github_outputs_use_the_heredoc_form_for_multi_line_values() {
        let text = github_outputs(&outs(), "42");
        assert_eq!(
            text,
            "active=true\ngrant=gr_0abc\nreason<<ghadelimiter_42\nINC-7: payments down\nrollback failed\nghadelimiter_42\n"
        );
        // A value that contains the delimiter gets a longer one.
        let tricky = vec![("x".into(), "a\nghadelimiter_42\nb".into())];
        assert_eq!(github_outputs(&tricky, "42"), "x<<ghadelimiter_42_\na\nghadelimiter_42\nb\nghadelimiter_42_\n");
    }

    #[test]
    fn gitlab_dotenv_is_single_line_key_value_pairs() {
        let text = gitlab_dotenv(&outs(), "breakglass_");
        assert_eq!(
            text,
            "BREAKGLASS_ACTIVE=true\nBREAKGLASS_GRANT=gr_0abc\nBREAKGLASS_REASON=INC-7: payments down rollback failed\n"
        );
        assert!(!text.contains("\n\n") && !text.contains('#'));
        let dollar = vec![("reason".into(), "costs $5".into())];
        assert_eq!(gitlab_dotenv(&dollar, ""), "REASON=costs $$5\n");
        assert_eq!(md_cell("a|b\nc<d>"), "a\\|b c&lt;d>");
    }
}
