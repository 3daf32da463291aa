//! Text that one member writes and another member's people read: incident summaries, offer
//! names, reasons, contacts. It crosses a trust boundary, so it must be inert on any screen:
//! no terminal escape sequence (C0 and C1 controls, DEL) that could rewrite a terminal or its
//! title, and no bidirectional override or isolate that could make it read otherwise than it
//! is stored.
//!
//! Validation refuses such characters ([`check`]); a display can also make them visible when
//! data stored before the rule, or relayed by a hostile node, still holds some ([`forbidden`]
//! tells which characters to escape).

use crate::offer::FieldError;

/// Whether a field may span several lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Names, summaries, titles, reasons, addresses: one line, no tab.
    One,
    /// Descriptions, comment bodies, resolutions: `\n` and `\t` allowed.
    Many,
}

/// The message of a field that holds a character [`forbidden`] in it.
pub const CONTROL_CHARACTERS: &str = "must not contain control characters";

/// Whether `c` may not appear in a field of `lines`: every control character (Unicode general
/// category Cc: C0, DEL, C1) but the line break and tab of a multi-line field, and the
/// bidirectional embeddings, overrides (U+202A–U+202E) and isolates (U+2066–U+2069).
pub fn forbidden(c: char, lines: Lines) -> bool {
    match c {
        '\n' | '\t' => lines == Lines::One,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        c => c.is_control(),
    }
}

/// Checks that `value`, the field at path `field`, holds no character [`forbidden`] in it.
pub fn check(field: &str, value: &str, lines: Lines) -> Result<(), FieldError> {
    if value.chars().any(|c| forbidden(c, lines)) {
        return Err(FieldError {
            field: field.to_owned(),
            message: CONTROL_CHARACTERS.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_controls_and_bidi_overrides_are_refused() {
        for bad in [
            "\u{1b}]0;pwned\u{7}",
            "\u{1b}[2J",
            "nul\0",
            "del\u{7f}",
            "csi\u{9b}31m",
            "carriage\rreturn",
            "rtl \u{202e}fdp.exe",
            "isolate \u{2066}x\u{2069}",
        ] {
            for lines in [Lines::One, Lines::Many] {
                let err = check("summary", bad, lines).unwrap_err();
                assert_eq!(
                    err.to_string(),
                    "summary: must not contain control characters"
                );
            }
        }
    }

    #[test]
    fn line_breaks_and_tabs_are_for_multi_line_fields_only() {
        for text in ["two\nlines", "a\ttab"] {
            assert!(check("description", text, Lines::Many).is_ok(), "{text:?}");
            assert_eq!(
                check("offer.service_name", text, Lines::One)
                    .unwrap_err()
                    .field,
                "offer.service_name"
            );
        }
    }

    #[test]
    fn ordinary_text_in_any_script_passes() {
        for text in [
            "Panne de la visioconférence — 10 % des salles",
            "طلب دعم",
            "上传失败",
            "emoji 🚑 and a zero\u{200b}width space",
        ] {
            assert!(check("summary", text, Lines::One).is_ok(), "{text:?}");
        }
    }
}
