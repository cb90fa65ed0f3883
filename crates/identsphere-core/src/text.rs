//! Rules for text that people read: display names, organization, API-key,
//! client and passkey names, machine-user identifiers, and email addresses.
//!
//! The danger is not odd characters as such but text that *looks* like other
//! text: a right-to-left override shows `Ann`, U+202E, `nimda` as "Annadmin", a
//! zero-width space makes two identical-looking names different, and a NUL
//! cannot even be stored by PostgreSQL. So every such field refuses:
//!
//! - control characters (`Cc`: U+0000–U+001F, U+007F–U+009F), NUL included;
//! - format characters (`Cf`), which are all invisible: the bidi embeddings,
//!   overrides and isolates (U+202A–U+202E, U+2066–U+2069), the marks
//!   U+200E, U+200F and U+061C, zero-width space, non-joiner and joiner
//!   (U+200B–U+200D), word joiner (U+2060), the byte-order mark (U+FEFF),
//!   soft hyphen, tag characters and the rest of the category;
//! - line and paragraph separators (`Zl`, `Zp`), which break log lines;
//! - the invisible fillers and joiners that are not `Cf` but are
//!   default-ignorable or render as nothing: U+034F, U+115F, U+1160, U+3164,
//!   U+FFA0 (the Hangul fillers are a known "blank name" trick).
//!
//! Refusing U+200C/U+200D also refuses some Persian spellings and emoji
//! sequences in names: a deliberate trade, since the same characters let two
//! names that render alike differ. Variation selectors stay allowed (emoji
//! need U+FE0F and they do not hide text).
use crate::error::{CoreError, Result};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Default-ignorable or blank characters outside the refused categories.
const INVISIBLE: [char; 5] = [
    '\u{034F}', // combining grapheme joiner
    '\u{115F}', // Hangul choseong filler
    '\u{1160}', // Hangul jungseong filler
    '\u{3164}', // Hangul filler
    '\u{FFA0}', // halfwidth Hangul filler
];

/// Why a character is refused, if it is.
pub fn refused(c: char) -> Option<&'static str> {
    match c.general_category() {
        GeneralCategory::Control => Some("must not contain control characters"),
        GeneralCategory::Format
        | GeneralCategory::LineSeparator
        | GeneralCategory::ParagraphSeparator => {
            Some("must not contain invisible or text-direction characters")
        }
        _ if INVISIBLE.contains(&c) => {
            Some("must not contain invisible or text-direction characters")
        }
        _ => None,
    }
}

/// The first refusal for `text`, as a message for a `validation_failed` entry.
pub fn check(text: &str) -> std::result::Result<(), &'static str> {
    match text.chars().find_map(refused) {
        Some(message) => Err(message),
        None => Ok(()),
    }
}

/// A required, trimmed label (display, organization, API-key, client and
/// passkey names): 1 to `max` characters, none refused by [`check`].
///
/// # Errors
/// `Validation` naming `field`.
pub fn label(field: &str, raw: &str, max: usize) -> Result<String> {
    let text = raw.trim();
    if text.is_empty() || text.chars().count() > max {
        return Err(CoreError::field(
            field,
            format!("must be 1–{max} characters"),
        ));
    }
    check(text).map_err(|m| CoreError::field(field, m))?;
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED: [char; 24] = [
        '\u{0}',
        '\u{7}',
        '\n',
        '\u{85}', // controls
        '\u{202A}',
        '\u{202B}',
        '\u{202C}',
        '\u{202D}',
        '\u{202E}', // embeddings, overrides
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}', // isolates
        '\u{200E}',
        '\u{200F}',
        '\u{061C}', // marks
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{2060}',
        '\u{FEFF}', // zero-width
        '\u{2028}', // line separator
        '\u{3164}',
        '\u{E0041}', // Hangul filler, tag A
    ];

    #[test]
    fn refuses_controls_bidi_and_invisible_characters() {
        for c in REFUSED {
            assert!(refused(c).is_some(), "U+{:04X} accepted", c as u32);
            let err = label("name", &format!("Ann{c}Lee"), 100).unwrap_err();
            let CoreError::Validation(list) = err else {
                panic!("not a validation error")
            };
            assert_eq!(list[0].field, "name");
        }
    }

    #[test]
    fn keeps_ordinary_text_of_any_script() {
        for ok in [
            "Ann Lee",
            "Zoë O'Brien-Smith",
            "李小龙",
            "Дмитрий",
            "محمد",
            "ａｎｎ",
            "❤\u{FE0F} team",
        ] {
            assert_eq!(label("name", ok, 100).unwrap(), ok);
        }
    }

    #[test]
    fn trims_and_bounds() {
        assert_eq!(label("name", "  Acme ", 100).unwrap(), "Acme");
        assert!(label("name", "   ", 100).is_err());
        assert!(label("name", &"é".repeat(101), 100).is_err());
        assert!(label("name", &"é".repeat(100), 100).is_ok());
    }
}
