//! Stored text on a terminal: the one place the CLI makes text that others
//! wrote safe to print.
//!
//! Security: reasons, comments, notes, titles and error messages that come
//! back from the server were written by someone else (a requester, a
//! webhook sender, a remote endpoint). New text with control characters is
//! refused by the server, but entries stored before that check, and text
//! from elsewhere, may still hold an ANSI or OSC escape or a carriage
//! return, which a terminal would obey. Every printing site passes such text
//! through [`line`] (or [`prose`] for multi-line notes), which shows each
//! such character as a visible escape (`\u{1b}`) instead; the rule itself is
//! `breakglass_core::text`'s, shared with the HTML and Markdown reports.

use std::borrow::Cow;

/// Text for one line of output: every control or invisible character,
/// newlines included, becomes a visible escape.
pub fn line(text: &str) -> Cow<'_, str> {
    breakglass_core::text::escape(text)
}

/// Text printed as prose (review notes): newlines and tabs are kept, every
/// other control or invisible character becomes a visible escape.
pub fn prose(text: &str) -> Cow<'_, str> {
    breakglass_core::text::escape_multiline(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 14: what `breakglass show` prints of a reason stored before
    // control characters were refused.
    #[test]
    fn issue14_stored_escapes_are_shown_not_obeyed() {
        let stored = "hotfix\u{1b}[2J\u{1b}]8;;https://evil.example\u{7}x\rAPPROVED\nstate active\u{0}";
        let shown = line(stored);
        assert_eq!(shown, "hotfix\\u{1b}[2J\\u{1b}]8;;https://evil.example\\u{7}x\\rAPPROVED\\nstate active\\u{0}");
        assert!(shown.chars().all(|c| !c.is_control()));
        assert_eq!(prose("checked:\n\t- the push\u{1b}[31m"), "checked:\n\t- the push\\u{1b}[31m");
        assert!(matches!(line("plain reason"), Cow::Borrowed("plain reason")));
    }
}
