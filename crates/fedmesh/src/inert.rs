//! Human output is inert: what the CLI prints came mostly from other parties (another member's
//! offer, its incident summaries, a node's error messages), and a terminal obeys the escape
//! sequences in what it prints. Validation refuses control characters in such texts
//! ([`fedmesh_core::text`]), but data stored before that rule, or relayed by a hostile node,
//! may still hold some: every line of human output goes through [`inert`] ([`say!`] prints
//! one), which shows them instead of sending them to the terminal.
//!
//! `--json` output is escaped by [`crate::json`] instead, in JSON's own way.

use std::borrow::Cow;
use std::fmt::Write as _;

pub use fedmesh_core::text::Lines;
use fedmesh_core::text::forbidden;

/// `text` with every character [`forbidden`] in a field of `lines` shown as an escape: the C0
/// and C1 controls and DEL as `\x1b`, `\x9b`, `\x7f`; the bidirectional controls as
/// `\u{202e}`. Borrowed when there is nothing to escape.
pub fn inert(text: &str, lines: Lines) -> Cow<'_, str> {
    if !text.chars().any(|c| forbidden(c, lines)) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !forbidden(c, lines) {
            shown.push(c);
            continue;
        }
        let code = u32::from(c);
        // Writing to a String cannot fail.
        let _ = if code <= 0xff {
            write!(shown, "\\x{code:02x}")
        } else {
            write!(shown, "\\u{{{code:x}}}")
        };
    }
    Cow::Owned(shown)
}

/// Prints `line` on stdout, [`inert`]: line breaks and tabs kept (the CLI's own layout and
/// multi-line texts), every other control character shown. The body of [`say!`].
pub fn say(line: std::fmt::Arguments<'_>) {
    print_line(&inert(&line.to_string(), Lines::Many));
}

/// Writes `line` and a line break on stdout. When the reader has gone (`fedmesh ... | head`),
/// the process exits quietly with success, as other command-line tools do, instead of
/// panicking on the broken pipe; another write failure ends it with a message.
pub fn print_line(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(error) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {error}");
        std::process::exit(1);
    }
}

/// `println!` for human output: the line goes through [`inert`](crate::inert::inert).
#[macro_export]
macro_rules! say {
    () => {
        $crate::inert::print_line("")
    };
    ($($arg:tt)*) => {
        $crate::inert::say(::std::format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        // An OSC that sets the terminal's title, then a CSI that clears the screen.
        assert_eq!(
            inert("down\u{1b}]0;pwned\u{7} \u{1b}[2J!", Lines::One),
            "down\\x1b]0;pwned\\x07 \\x1b[2J!"
        );
        // C1's single-character CSI, DEL, NUL and a carriage return that would overwrite.
        assert_eq!(
            inert("a\u{9b}2Jb\u{7f}c\0d\re", Lines::Many),
            "a\\x9b2Jb\\x7fc\\x00d\\x0de"
        );
        // Bidirectional overrides and isolates.
        assert_eq!(
            inert("invoice \u{202e}fdp.exe \u{2066}x\u{2069}", Lines::One),
            "invoice \\u{202e}fdp.exe \\u{2066}x\\u{2069}"
        );
    }

    #[test]
    fn line_breaks_are_kept_only_where_lines_may_break() {
        assert_eq!(inert("one\n\ttwo", Lines::Many), "one\n\ttwo");
        assert_eq!(inert("one\n\ttwo", Lines::One), "one\\x0a\\x09two");
    }

    #[test]
    fn ordinary_text_is_borrowed_as_it_is() {
        let text = "Visioconférence indisponible — 上传失败 🚑";
        assert!(matches!(inert(text, Lines::One), Cow::Borrowed(t) if t == text));
    }
}
