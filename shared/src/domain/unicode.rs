//! The Unicode facts the value types share: which characters are invisible or controlling,
//! which are marks, and the one normalization form stored (NFC).

use std::borrow::Cow;

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

/// ZERO WIDTH NON-JOINER and JOINER: format characters that Persian, Indic and other scripts
/// need inside words.
pub const JOINERS: [char; 2] = ['\u{200C}', '\u{200D}'];

fn category(c: char) -> GeneralCategory {
    CodePointMapData::<GeneralCategory>::new().get(c)
}

/// Characters that have no business in a name, an address or a header: control characters
/// (C0, C1), format characters (bidirectional overrides and isolates, zero-width spaces, the
/// byte order mark, soft hyphens; the two [`JOINERS`] excepted), line and paragraph
/// separators, private-use, surrogate and unassigned code points. `char::is_control` alone
/// finds only the first kind, so U+202E could reverse what an operator reads.
pub fn is_disallowed(c: char) -> bool {
    use GeneralCategory as G;
    match category(c) {
        G::Control
        | G::LineSeparator
        | G::ParagraphSeparator
        | G::PrivateUse
        | G::Surrogate
        | G::Unassigned => true,
        G::Format => !JOINERS.contains(&c),
        _ => false,
    }
}

/// A combining mark (nonspacing, spacing or enclosing): accents, viramas, vowel signs.
pub fn is_mark(c: char) -> bool {
    use GeneralCategory as G;
    matches!(
        category(c),
        G::NonspacingMark | G::SpacingMark | G::EnclosingMark
    )
}

/// `text` in Normalization Form C, the one spelling stored and compared: a name typed as
/// "e" + U+0301 is the same name as "é".
pub fn nfc(text: &str) -> Cow<'_, str> {
    ComposingNormalizerBorrowed::new_nfc().normalize(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_controlling_characters_are_disallowed() {
        let cases = [
            ('a', false),
            ('ž', false),
            (' ', false),
            ('\u{0301}', false),
            ('\u{094D}', false),
            ('\u{200C}', false),
            ('\u{200D}', false),
            ('\u{0}', true),
            ('\u{1B}', true),
            ('\u{85}', true),
            ('\u{AD}', true),
            ('\u{200B}', true),
            ('\u{200E}', true),
            ('\u{202E}', true),
            ('\u{2066}', true),
            ('\u{2028}', true),
            ('\u{2029}', true),
            ('\u{FEFF}', true),
            ('\u{E000}', true),
            ('\u{FFFF}', true),
            ('\u{E0001}', true),
        ];
        for (c, disallowed) in cases {
            assert_eq!(is_disallowed(c), disallowed, "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn marks_and_nfc() {
        for mark in ['\u{0301}', '\u{094D}', '\u{0BCD}', '\u{0E49}', '\u{3099}'] {
            assert!(is_mark(mark), "U+{:04X}", u32::from(mark));
        }
        assert!(!is_mark('a') && !is_mark('\''));
        assert_eq!(nfc("Zoe\u{0308}"), "Zoë");
        assert!(matches!(nfc("Zoë"), Cow::Borrowed(_)));
    }
}
