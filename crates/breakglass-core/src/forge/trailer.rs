//! The `Break-Glass: <grant-id>` trailer of a commit message, read by the
//! rule the Git hooks use.
//!
//! The hooks ask git itself (`git log --format=%(trailers:key=Break-Glass,
//! valueonly,separator=%x1f)`) and then split git's answer at the separator,
//! trim each value and drop empty ones. A forge sends only the message, so
//! this is git's trailer parsing (`trailer.c`, as `%(trailers)` runs it:
//! no `---` divider, default configuration) written out, followed by the
//! hooks' splitting and trimming. The integration tests compare it with the
//! `git` on the machine for a table of messages.
//!
//! Git's rule, in short: the trailers are the last paragraph of the message
//! (after trailing comment lines, blank lines and an old `Conflicts:` block
//! are set aside, and never the first paragraph, the title), and only if
//! every line of it is a trailer (`Token: value`, the token letters, digits
//! and `-`) or a continuation (a line starting with a space or tab), or if
//! it has a `Signed-off-by: ` or `(cherry picked from commit ` line and at
//! least a quarter of its lines are trailers. Tokens match ignoring case.

/// The trailer that tags a commit with the grant it was made under.
pub const GRANT_TRAILER: &str = "Break-Glass";

/// Trailers git itself writes; one of them lets a mixed block count.
const GIT_GENERATED_PREFIXES: [&[u8]; 2] = [b"Signed-off-by: ", b"(cherry picked from commit "];
/// `core.commentChar`'s default.
const COMMENT: &[u8] = b"#";
/// The scissors line `git commit --verbose` writes; what follows is ignored.
const CUT_LINE: &[u8] = b"\n# ------------------------ >8 ------------------------\n";

/// The values of the `Break-Glass` trailers of `message`, in order: the
/// grant ids a commit is tagged with, exactly as the pre-receive hook reads
/// them.
pub fn grant_trailers(message: &str) -> Vec<String> {
    trailer_values(message, GRANT_TRAILER)
}

/// The values of the trailers named `key` (ignoring ASCII case), each split
/// at U+001F, trimmed, empty ones dropped (the hooks' post-processing).
pub(super) fn trailer_values(message: &str, key: &str) -> Vec<String> {
    // git reads the message as a C string.
    let text = message.split('\0').next().unwrap_or("");
    let buf = text.as_bytes();
    let end = log_message_end(buf);
    let start = trailer_block_start(buf, end);
    let mut items: Vec<&str> = Vec::new();
    let mut joined: Vec<String> = Vec::new();
    let mut last_is_trailer = false;
    for line in text[start..end].split_inclusive('\n') {
        if last_is_trailer && is_space(line.as_bytes()[0]) {
            // A continuation belongs to the trailer above it.
            let idx = items.len() - 1;
            joined[idx].push_str(line);
            continue;
        }
        last_is_trailer = find_separator(line.as_bytes()).is_some_and(|pos| pos >= 1);
        items.push(line);
        joined.push(line.to_owned());
    }
    let mut out = Vec::new();
    for item in &joined {
        if item.as_bytes().starts_with(COMMENT) {
            continue;
        }
        let Some(pos) = find_separator(item.as_bytes()).filter(|pos| *pos >= 1) else { continue };
        let token = item[..pos].trim_matches(|c: char| c.is_ascii() && is_space(c as u8));
        if !token.eq_ignore_ascii_case(key) {
            continue;
        }
        for value in item[pos + 1..].split('\u{1f}') {
            let value = value.trim();
            if !value.is_empty() {
                out.push(value.to_owned());
            }
        }
    }
    out
}

/// git's `isspace`: space, tab, line feed and carriage return only.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Where the token of a `Token: value` line ends (the `:`), if the line is
/// one: the token is letters, digits and `-`, optionally followed by spaces
/// or tabs.
fn find_separator(line: &[u8]) -> Option<usize> {
    let mut whitespace_found = false;
    for (idx, &c) in line.iter().enumerate() {
        if c == b':' {
            return Some(idx);
        }
        if !whitespace_found && (c.is_ascii_alphanumeric() || c == b'-') {
            continue;
        }
        if idx != 0 && (c == b' ' || c == b'\t') {
            whitespace_found = true;
            continue;
        }
        break;
    }
    None
}

/// The start of the line after the one at `pos`.
fn next_line(buf: &[u8], pos: usize) -> usize {
    match buf[pos..].iter().position(|&b| b == b'\n') {
        Some(i) => pos + i + 1,
        None => buf.len(),
    }
}

/// The start of the last line of `buf[..len]` (a final newline belongs to
/// it), or `None` when `len` is 0.
fn last_line(buf: &[u8], len: usize) -> Option<usize> {
    match len {
        0 => None,
        1 => Some(0),
        _ => Some(buf[..len - 1].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)),
    }
}

fn is_blank_line(buf: &[u8], pos: usize) -> bool {
    buf[pos..].iter().take_while(|&&b| b != b'\n').all(|&b| is_space(b))
}

/// The end of the message for trailer purposes: before the scissors line
/// and before a final run of comment lines, empty lines and an old
/// `Conflicts:` block (git's `ignored_log_message_bytes`).
fn log_message_end(buf: &[u8]) -> usize {
    let len = buf.len();
    let cutoff = if buf.starts_with(&CUT_LINE[1..]) {
        0
    } else {
        match buf.windows(CUT_LINE.len()).position(|w| w == CUT_LINE) {
            Some(p) => (p + 1).min(len),
            None => len,
        }
    };
    // As in git, 0 means "no run started" (so a run that starts on the first
    // line does not count).
    let mut boc = 0;
    let mut bol = 0;
    let mut in_old_conflicts_block = false;
    while bol < cutoff {
        let next = next_line(buf, bol);
        if buf[bol..cutoff].starts_with(COMMENT) || buf[bol] == b'\n' {
            if boc == 0 {
                boc = bol;
            }
        } else if buf[bol..].starts_with(b"Conflicts:\n") {
            in_old_conflicts_block = true;
            if boc == 0 {
                boc = bol;
            }
        } else if in_old_conflicts_block && buf[bol] == b'\t' {
            // A path in the conflicts block.
        } else if boc != 0 {
            boc = 0;
            in_old_conflicts_block = false;
        }
        bol = next;
    }
    if boc != 0 { boc } else { cutoff }
}

/// Where the trailer block of `buf[..len]` starts, or `len` when there is
/// none (git's `find_trailer_block_start`).
fn trailer_block_start(buf: &[u8], len: usize) -> usize {
    // The first paragraph is the title and never holds trailers.
    let mut s = 0;
    while s < len {
        if buf[s..].starts_with(COMMENT) {
            s = next_line(buf, s);
            continue;
        }
        if is_blank_line(buf, s) {
            break;
        }
        s = next_line(buf, s);
    }
    let end_of_title = s;

    let mut only_spaces = true;
    let mut recognized_prefix = false;
    let mut trailer_lines = 0usize;
    let mut non_trailer_lines = 0usize;
    // Lines that continue a trailer if one comes above them, else count as
    // non-trailers.
    let mut possible_continuation_lines = 0usize;
    let mut cursor = last_line(buf, len);
    while let Some(bol) = cursor.filter(|l| *l >= end_of_title) {
        cursor = last_line(buf, bol);
        let line = &buf[bol..];
        if line.starts_with(COMMENT) {
            non_trailer_lines += possible_continuation_lines;
            possible_continuation_lines = 0;
            continue;
        }
        if is_blank_line(buf, bol) {
            if only_spaces {
                continue;
            }
            non_trailer_lines += possible_continuation_lines;
            if (recognized_prefix && trailer_lines * 3 >= non_trailer_lines)
                || (trailer_lines > 0 && non_trailer_lines == 0)
            {
                return next_line(buf, bol);
            }
            return len;
        }
        only_spaces = false;
        if GIT_GENERATED_PREFIXES.iter().any(|p| line.starts_with(p)) {
            trailer_lines += 1;
            possible_continuation_lines = 0;
            recognized_prefix = true;
            continue;
        }
        let first = line[0];
        if find_separator(line).is_some_and(|pos| pos >= 1) && !is_space(first) {
            trailer_lines += 1;
            possible_continuation_lines = 0;
        } else if is_space(first) {
            possible_continuation_lines += 1;
        } else {
            non_trailer_lines += 1 + possible_continuation_lines;
            possible_continuation_lines = 0;
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_paragraph_holds_the_trailers() {
        for (message, expect) in [
            ("Fix it\n\nBreak-Glass: g-1\n", vec!["g-1"]),
            ("Fix it\n\nBreak-Glass: g-1", vec!["g-1"]),
            ("Fix it\n\nbreak-glass:g-1\nBREAK-GLASS :  g-2  \n", vec!["g-1", "g-2"]),
            // The title is never a trailer.
            ("Break-Glass: g-1\n", vec![]),
            ("Break-Glass: g-1\nBreak-Glass: g-2\n", vec![]),
            // Not the last paragraph.
            ("Fix\n\nBreak-Glass: g-1\n\nMore text.\n", vec![]),
            // A paragraph with prose is no trailer block...
            ("Fix\n\nSome prose.\nBreak-Glass: g-1\n", vec![]),
            // ...unless git wrote a trailer in it and a quarter are trailers.
            ("Fix\n\nSome prose.\nBreak-Glass: g-1\nSigned-off-by: A <a@example.com>\n", vec!["g-1"]),
            // Trailing comments and blank lines are set aside.
            ("Fix\n\nBreak-Glass: g-1\n\n# a comment\n\n", vec!["g-1"]),
            // A continuation line joins the value (and so it is no grant id).
            ("Fix\n\nBreak-Glass: g-1\n  continued\n", vec!["g-1\n  continued"]),
            // No space in the token, and another key.
            ("Fix\n\nBreak Glass: g-1\n", vec![]),
            ("Fix\n\nBreak-Glasses: g-1\nX-Break-Glass: g-2\n", vec![]),
            // The hooks split at U+001F and drop empty values.
            ("Fix\n\nBreak-Glass:\nBreak-Glass: a\u{1f}b\n", vec!["a", "b"]),
            ("Fix\r\n\r\nBreak-Glass: g-1\r\n", vec!["g-1"]),
            ("", vec![]),
        ] {
            assert_eq!(grant_trailers(message), expect, "{message:?}");
        }
    }
}
