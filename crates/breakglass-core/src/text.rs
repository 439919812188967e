//! Free text that people type and other people read: grant reasons,
//! approval comments, deny, revoke and extend reasons, review notes,
//! lessons and follow-ups.
//!
//! Security: a requester writes a reason, and an approver reads it in a
//! terminal (`breakglass show`), a Slack message or an HTML report. Control
//! characters in it (an ANSI or OSC escape, a carriage return that
//! overprints a line, a NUL that cuts a C string short) or invisible format
//! characters (bidirectional overrides, zero-width spaces) would let the
//! requester decide what the approver sees. So new text is refused when it
//! holds any of them ([`check`], naming the field, the position and the
//! code point), and text already stored (written before the check existed)
//! is shown with each such character replaced by a visible escape
//! ([`escape`], [`escape_multiline`]), never raw.
//!
//! Which fields may span lines is the caller's [`Lines`]: reasons, approval
//! comments and review notes are prose and may hold newlines and tabs
//! (nothing else: a carriage return overprints); lessons and follow-ups are
//! list items, one line each, since a newline would fake an item of its own.
//! Displays that show prose on one line (a field beside its label, a table
//! cell, a timeline summary) escape its newlines too ([`escape`]), so no
//! text can fake a line of output.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether a field may span several lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    /// One line: no control character at all (newline and tab included).
    Single,
    /// Prose: newline (LF) and tab are allowed; carriage return and every
    /// other control character are not.
    Multi,
}

/// Why a text field was refused: the field, the 1-based character position
/// and the code point of the first character that is not allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field}: character {position} is {} ({}), which is not allowed{}",
    code_point_name(*code_point),
    describe(*code_point),
    hint(*lines)
)]
pub struct TextError {
    pub field: String,
    pub position: usize,
    pub code_point: u32,
    pub lines: Lines,
}

fn hint(lines: Lines) -> &'static str {
    match lines {
        Lines::Single => "; this field is one line of printable text",
        Lines::Multi => "; only printable text, newlines and tabs are accepted here",
    }
}

/// `U+001B`.
fn code_point_name(c: u32) -> String {
    format!("U+{c:04X}")
}

/// A few words for a character a person would not recognise by its number.
fn describe(c: u32) -> &'static str {
    match c {
        0x00 => "NUL",
        0x07 => "BEL, the terminal bell",
        0x08 => "BS, backspace",
        0x09 => "TAB",
        0x0A => "LF, a newline",
        0x0D => "CR, a carriage return",
        0x1B => "ESC, which starts a terminal escape sequence",
        0x7F => "DEL",
        0x9B => "CSI, a terminal control sequence",
        0x9D => "OSC, a terminal command",
        0x00..=0x1F | 0x80..=0x9F => "a control character",
        0x200B..=0x200D | 0x2060 | 0xFEFF => "an invisible zero-width character",
        0x200E | 0x200F | 0x202A..=0x202E | 0x2066..=0x2069 => "an invisible text-direction control",
        _ => "an invisible format character",
    }
}

/// Control characters (Unicode Cc: C0, DEL, C1), and the invisible format
/// characters (zero-width spaces and joiners, direction marks, overrides
/// and isolates, the word joiner, the BOM) that can make one text look like
/// another. The one definition every check and escape here uses (the
/// incident parsers too).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn allowed(c: char, lines: Lines) -> bool {
    !is_unsafe_char(c) || (lines == Lines::Multi && matches!(c, '\n' | '\t'))
}

/// Refuses `text` if it holds a character [`Lines`] does not allow; the
/// error names `field`, the position and the code point.
pub fn check(field: &str, text: &str, lines: Lines) -> Result<(), TextError> {
    match text.chars().enumerate().find(|(_, c)| !allowed(*c, lines)) {
        None => Ok(()),
        Some((idx, c)) => {
            Err(TextError { field: field.to_owned(), position: idx + 1, code_point: u32::from(c), lines })
        }
    }
}

/// [`check`] on each item of a list; the field is named `field[index]`.
pub fn check_each(field: &str, items: &[String], lines: Lines) -> Result<(), TextError> {
    for (idx, item) in items.iter().enumerate() {
        check(&format!("{field}[{idx}]"), item, lines)?;
    }
    Ok(())
}

/// `text` for display on one line: every unsafe character (newline, tab and
/// carriage return included) becomes a visible escape (`\n`, `\t`, `\r`,
/// `\u{1b}`). Text without one is returned as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, Lines::Single)
}

/// `text` for display as prose: newlines and tabs are kept, every other
/// unsafe character becomes a visible escape.
pub fn escape_multiline(text: &str) -> Cow<'_, str> {
    escape_with(text, Lines::Multi)
}

fn escape_with(text: &str, lines: Lines) -> Cow<'_, str> {
    if text.chars().all(|c| allowed(c, lines)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if allowed(c, lines) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(other));
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_passes_and_each_refusal_names_field_position_and_code_point() {
        for ok in ["INC-42: hotfix", "naïve café ✓", "日本語の理由", "tabs\tare\tfine"] {
            assert!(check("notes", ok, Lines::Multi).is_ok(), "{ok}");
        }
        assert!(check("notes", "line one\nline two", Lines::Multi).is_ok());
        for (text, lines, position, code) in [
            ("fix\u{1b}]8;;http://evil\u{7}", Lines::Single, 4, 0x1B),
            ("ok\rAPPROVED", Lines::Single, 3, 0x0D),
            ("ok\rAPPROVED", Lines::Multi, 3, 0x0D),
            ("two\nlines", Lines::Single, 4, 0x0A),
            ("tab\there", Lines::Single, 4, 0x09),
            ("nul\0", Lines::Multi, 4, 0x00),
            ("csi\u{9b}31m", Lines::Multi, 4, 0x9B),
            ("abc\u{202E}gnp.exe", Lines::Single, 4, 0x202E),
            ("zero\u{200B}width", Lines::Multi, 5, 0x200B),
        ] {
            let err = check("reason", text, lines).unwrap_err();
            assert_eq!((err.position, err.code_point), (position, code), "{text:?}");
            let msg = err.to_string();
            assert!(msg.starts_with("reason: character "), "{msg}");
            assert!(msg.contains(&format!("U+{code:04X}")), "{msg}");
        }
        let err = check_each("lessons", &["fine".into(), "bad\u{1b}".into()], Lines::Single).unwrap_err();
        assert!(err.to_string().starts_with("lessons[1]: character 4 is U+001B (ESC"), "{err}");
    }

    #[test]
    fn escaping_makes_every_unsafe_character_visible() {
        assert!(matches!(escape("plain text"), Cow::Borrowed(_)));
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("a\r\nb\tc\0"), "a\\r\\nb\\tc\\u{0}");
        assert_eq!(escape("\u{9d}8;;x\u{9c}"), "\\u{9d}8;;x\\u{9c}");
        assert_eq!(escape("rtl\u{202E}"), "rtl\\u{202e}");
        assert_eq!(escape_multiline("one\ntwo\tthree\r\u{1b}"), "one\ntwo\tthree\\r\\u{1b}");
        // What is left is printable: nothing a terminal would act on.
        let hostile: String = (0u32..0x300).filter_map(char::from_u32).collect();
        assert!(escape(&hostile).chars().all(|c| !is_unsafe_char(c)));
        assert!(escape_multiline(&hostile).chars().all(|c| !is_unsafe_char(c) || c == '\n' || c == '\t'));
    }
}
