//! The Unicode facts the value types share: which characters are invisible or controlling,
//! which are marks, and the one normalization form stored (NFC).

use std::borrow::Cow;

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_normalizer::properties::CanonicalCombiningClassMapBorrowed;
use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
use icu_properties::{CodePointMapData, CodePointSetData};

/// ZERO WIDTH NON-JOINER and JOINER: invisible, but Persian, Indic and other scripts need
/// them inside words; allowed only where [`joiner_allowed`] says.
pub const JOINERS: [char; 2] = ['\u{200C}', '\u{200D}'];

fn category(c: char) -> GeneralCategory {
    CodePointMapData::<GeneralCategory>::new().get(c)
}

/// Characters that have no business in a name, an address, a password or a header: control
/// characters (C0, C1), format characters (bidirectional overrides and isolates, zero-width
/// spaces, the byte order mark, soft hyphens), every other default-ignorable code point
/// (variation selectors, the combining grapheme joiner, Hangul fillers: invisible marks or
/// letters), line and paragraph separators, private-use, surrogate and unassigned code points.
/// `char::is_control` alone finds only the first kind, so U+202E could reverse what an
/// operator reads and U+200B make two names look alike. The [`JOINERS`] are not included:
/// see [`joiner_allowed`].
fn is_disallowed(c: char) -> bool {
    use GeneralCategory as G;
    if JOINERS.contains(&c) {
        return false;
    }
    matches!(
        category(c),
        G::Control
            | G::Format
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::PrivateUse
            | G::Surrogate
            | G::Unassigned
    ) || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// Where a joiner may stand (RFC 5892's CONTEXTJ rules, as IDNA uses them, simplified): either
/// joiner right after a virama (Devanagari, Tamil, Sinhala half forms), and ZERO WIDTH
/// NON-JOINER between two letters of the Arabic script (Persian "می‌رود").
fn joiner_allowed(before: Option<char>, joiner: char, after: Option<char>) -> bool {
    // Canonical combining class 9 (Virama), from the NFC data already linked: the
    // icu_properties maps of combining classes and scripts would add their own tables to
    // every binary (and its start-up), for these two questions.
    const VIRAMA: u8 = 9;
    let virama_before = before.is_some_and(|b| {
        CanonicalCombiningClassMapBorrowed::new().get32_u8(u32::from(b)) == VIRAMA
    });
    // The Arabic script's blocks (Arabic, Supplement, Extended-A/B/C, Presentation Forms).
    let arabic = |c: Option<char>| {
        c.is_some_and(|c| {
            is_letter(c)
                && matches!(c,
                    '\u{0600}'..='\u{06FF}'
                    | '\u{0750}'..='\u{077F}'
                    | '\u{0870}'..='\u{08FF}'
                    | '\u{10EC0}'..='\u{10EFF}'
                    | '\u{FB50}'..='\u{FDFF}'
                    | '\u{FE70}'..='\u{FEFF}')
        })
    };
    virama_before || (joiner == '\u{200C}' && arabic(before) && arabic(after))
}

/// Whether `text` holds a disallowed character, or a joiner where none may stand.
pub fn has_disallowed(text: &str) -> bool {
    let mut before = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if is_disallowed(c)
            || (JOINERS.contains(&c) && !joiner_allowed(before, c, chars.peek().copied()))
        {
            return true;
        }
        before = Some(c);
    }
    false
}

/// A letter of any script (general category L: upper, lower, title case, modifier, other).
/// Not `char::is_alphabetic`, whose Alphabetic property also holds Roman numerals ("Ⅻ", a
/// number) and circled or squared letters ("Ⓜ", "🄰", symbols).
pub fn is_letter(c: char) -> bool {
    use GeneralCategory as G;
    matches!(
        category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
    )
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
            // Default-ignorable marks and letters: variation selector, combining grapheme
            // joiner, Mongolian free variation selector, Hangul filler, half-width filler.
            ('\u{FE0F}', true),
            ('\u{E0100}', true),
            ('\u{034F}', true),
            ('\u{180B}', true),
            ('\u{3164}', true),
            ('\u{FFA0}', true),
        ];
        for (c, disallowed) in cases {
            assert_eq!(is_disallowed(c), disallowed, "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn joiners_stand_only_after_a_virama_or_between_arabic_letters() {
        let cases = [
            // Devanagari half form (KA, VIRAMA, ZWJ, SSA), Sinhala, Persian.
            ("\u{0915}\u{094D}\u{200D}\u{0937}", false),
            ("\u{0DC1}\u{0DCA}\u{200D}\u{0DBB}", false),
            ("\u{0645}\u{06CC}\u{200C}\u{0631}\u{0648}\u{062F}", false),
            // Between Latin letters, at the edges, alone, ZWJ between Arabic letters.
            ("Mar\u{200D}cus", true),
            ("Mar\u{200C}cus", true),
            ("\u{200C}", true),
            ("\u{0645}\u{06CC}\u{200C}", true),
            ("\u{0645}\u{200D}\u{0631}", true),
            ("Marcus", false),
        ];
        for (text, disallowed) in cases {
            assert_eq!(has_disallowed(text), disallowed, "{text:?}");
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
