//! Phone numbers (§3.2): a valid international number (Google's libphonenumber metadata via
//! the `rlibphonenumber` crate), stored in E.164.
//!
//! Loading the metadata of all ~250 regions takes ~4 ms (make bench) — in every cold start,
//! while a number needs only the entries of its own country calling code. So the metadata is
//! indexed by calling code at build time (`shared/build.rs`: byte ranges, nothing decoded)
//! and the library is built over the calling codes this process has seen: the first number
//! of a new calling code rebuilds it over all codes seen so far (~0.5 ms for the first, more
//! as they add up: make bench); the code after [`LOAD_ALL_AFTER`] of them loads all codes,
//! once (~3 ms). The metadata is the crate's own file, copied to
//! `shared/data/phone-metadata.bin` because the crate does not export it; `make test` checks
//! that the copy is identical.

use std::sync::{Arc, PoisonError, RwLock};

use prost::Message;
use rlibphonenumber::{PhoneMetadata, PhoneMetadataCollection, PhoneNumberFormat, PhoneNumberUtil};

/// `rlibphonenumber`'s `src/generated/metadata/metadata.bin` (a `PhoneMetadataCollection`).
static METADATA: &[u8] = include_bytes!("../../data/phone-metadata.bin");

/// A process that has seen more calling codes than this loads them all (~3 ms, once) rather
/// than rebuilding the library for each new one (each rebuild holds only the codes seen).
const LOAD_ALL_AFTER: usize = 8;

// CALLING_CODES: each calling code with the byte ranges of its entries in METADATA.
include!(concat!(env!("OUT_DIR"), "/phone_index.rs"));

/// The process's library, grown on demand.
static LIBRARY: Library = Library::new();

/// A valid phone number in E.164 form (`+37060012345`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        LIBRARY.parse(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The encoded metadata entries of a calling code (one per region sharing it: 25 for +1).
fn entries(code: u16) -> Option<&'static [(usize, usize)]> {
    CALLING_CODES
        .binary_search_by_key(&code, |(c, _)| *c)
        .ok()
        .map(|i| CALLING_CODES[i].1)
}

/// The calling code a number starts with, read as libphonenumber reads it: the shortest
/// of its first 1 to 3 digits that is a known code (none starts with 0). The library then
/// finds the same code, as the codes it is given are known ones and include this one.
fn calling_code(international: &str) -> Option<u16> {
    let digits: String = international
        .chars()
        .filter(char::is_ascii_digit)
        .take(3)
        .collect();
    if digits.starts_with('0') {
        return None;
    }
    (1..=digits.len())
        .filter_map(|n| digits[..n].parse().ok())
        .find(|code| entries(*code).is_some())
}

/// A libphonenumber over the calling codes needed so far.
struct Library {
    loaded: RwLock<Option<Arc<Loaded>>>,
}

struct Loaded {
    codes: Vec<u16>,
    util: PhoneNumberUtil,
}

impl Library {
    const fn new() -> Self {
        Self {
            loaded: RwLock::new(None),
        }
    }

    fn parse(&self, raw: &str) -> Result<Phone, &'static str> {
        const INVALID: &str = "is not a valid international phone number";
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required");
        }
        // Digits and the usual separators only: the library would read letters as keypad
        // digits ("+37060O12345" → …6…) and store a number nobody typed.
        let allowed =
            |c: char| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.' | '/');
        if trimmed.len() > 32 || !trimmed.chars().all(allowed) {
            return Err(INVALID);
        }
        if !trimmed.starts_with('+') && !trimmed.starts_with("00") {
            return Err("must be in international format, starting with + and the country code");
        }
        // "00" is the international call prefix most of the world dials instead of "+".
        let international = match trimmed.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => trimmed.to_owned(),
        };
        let code = calling_code(&international).ok_or(INVALID)?;
        // Under libphonenumber's shortest national number (2 digits) nothing is loaded for it.
        let digits = international.chars().filter(char::is_ascii_digit).count();
        if digits < code.ilog10() as usize + 1 + 2 {
            return Err(INVALID);
        }
        let loaded = self.with_code(code);
        let number = loaded
            .util
            .parse(&international, None)
            .map_err(|_| INVALID)?;
        if !loaded.util.is_valid_number(&number) {
            return Err(INVALID);
        }
        Ok(Phone(
            loaded
                .util
                .format(&number, PhoneNumberFormat::E164)
                .into_owned(),
        ))
    }

    /// A library that knows `code`: the current one, or a rebuild with `code` added.
    fn with_code(&self, code: u16) -> Arc<Loaded> {
        let knows = |slot: &Option<Arc<Loaded>>| {
            slot.as_ref()
                .filter(|loaded| loaded.codes.contains(&code))
                .cloned()
        };
        if let Some(loaded) = knows(&self.loaded.read().unwrap_or_else(PoisonError::into_inner)) {
            return loaded;
        }
        let mut slot = self.loaded.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(loaded) = knows(&slot) {
            return loaded;
        }
        let mut codes = slot
            .as_ref()
            .map(|loaded| loaded.codes.clone())
            .unwrap_or_default();
        codes.push(code);
        if codes.len() > LOAD_ALL_AFTER {
            codes = CALLING_CODES.iter().map(|(code, _)| *code).collect();
        }
        let loaded = Arc::new(self.load(codes));
        *slot = Some(loaded.clone());
        loaded
    }

    fn load(&self, codes: Vec<u16>) -> Loaded {
        let metadata = codes
            .iter()
            .flat_map(|code| entries(*code).unwrap_or_default())
            .map(|&(start, end)| {
                PhoneMetadata::decode(&METADATA[start..end])
                    .expect("every embedded phone metadata entry decodes (tested)")
            })
            .collect();
        let util = PhoneNumberUtil::new_for_metadata(PhoneMetadataCollection { metadata })
            .expect("every embedded phone metadata region is known to the crate (tested)");
        Loaded { codes, util }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlibphonenumber::PHONE_NUMBER_UTIL;
    use std::collections::BTreeMap;

    #[test]
    fn phones_are_validated_and_stored_as_e164() {
        let cases = [
            ("+37060012345", Some("+37060012345")),
            ("+370 600 12345", Some("+37060012345")),
            ("+44 20 7946 0958", Some("+442079460958")),
            ("+1 650 253 0000", Some("+16502530000")),
            ("+1 (650) 253-0000", Some("+16502530000")),
            ("0037060012345", Some("+37060012345")),
            ("+800 1234 5678", Some("+80012345678")),
            ("060012345", None),
            ("+370", None),
            ("+3706", None),
            ("+1", None),
            ("+7 1", None),
            ("+", None),
            ("+999 123456", None),
            ("+037060012345", None),
            ("phone", None),
            ("+37060O12345", None),
            ("+370 CALL MARCUS", None),
            ("", None),
            ("+3706001234567890123456789", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                Phone::parse(raw).ok().as_ref().map(Phone::as_str),
                expected,
                "{raw:?}"
            );
        }
    }

    /// The build-time index covers the whole file, in order, each range one entry of its code.
    #[test]
    fn the_calling_code_index_matches_the_metadata_file() {
        let collection = PhoneMetadataCollection::decode(METADATA).unwrap();
        let mut ranges: Vec<(usize, usize, u16)> = CALLING_CODES
            .iter()
            .flat_map(|(code, ranges)| ranges.iter().map(|&(start, end)| (start, end, *code)))
            .collect();
        ranges.sort_unstable();
        assert_eq!(ranges.len(), collection.metadata.len());
        assert!(CALLING_CODES.is_sorted_by_key(|(code, _)| *code));
        for ((start, end, code), expected) in ranges.iter().zip(&collection.metadata) {
            let entry = PhoneMetadata::decode(&METADATA[*start..*end]).unwrap();
            assert_eq!(&entry, expected);
            assert_eq!(entry.country_code, Some(i32::from(*code)), "{}", entry.id);
        }
    }

    /// The crate's own full metadata (its `PHONE_NUMBER_UTIL`) is the oracle: the same
    /// calling codes, the same regions per code, and the same answer for every region's
    /// example numbers and for numbers of every length under every calling code.
    #[test]
    fn loading_by_calling_code_answers_as_the_full_metadata_does() {
        let library = Library::new();
        let mut full_codes: Vec<u16> = PHONE_NUMBER_UTIL
            .get_supported_calling_codes()
            .map(|code| u16::try_from(code).unwrap())
            .collect();
        full_codes.sort_unstable();
        let codes: Vec<u16> = CALLING_CODES.iter().map(|(code, _)| *code).collect();
        assert_eq!(codes, full_codes);
        assert!(codes.len() > 200, "{} calling codes", codes.len());

        let oracle = |number: &str| {
            let parsed = PHONE_NUMBER_UTIL.parse(number, None).ok()?;
            PHONE_NUMBER_UTIL.is_valid_number(&parsed).then(|| {
                PHONE_NUMBER_UTIL
                    .format(&parsed, PhoneNumberFormat::E164)
                    .into_owned()
            })
        };
        let mut numbers = Vec::new();
        for region in PHONE_NUMBER_UTIL.get_supported_regions() {
            for kind in PHONE_NUMBER_UTIL
                .get_supported_types_for_region(region)
                .unwrap_or_default()
            {
                if let Ok(example) =
                    PHONE_NUMBER_UTIL.get_example_number_for_type_and_region(region, kind)
                {
                    numbers.push(
                        PHONE_NUMBER_UTIL
                            .format(&example, PhoneNumberFormat::E164)
                            .into_owned(),
                    );
                }
            }
        }
        let examples = numbers.len();
        assert!(examples > 1000, "{examples} example numbers");
        // Numbers of 4 to 13 digits under every calling code, from a fixed xorshift stream.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for code in &codes {
            for length in 4..=13 {
                for _ in 0..3 {
                    let national: String = (0..length)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            char::from(b'0' + (state % 10) as u8)
                        })
                        .collect();
                    numbers.push(format!("+{code}{national}"));
                }
            }
        }
        // Each code's numbers go to a library that has loaded that code alone, and all of
        // them to one that grows to every code.
        let mut by_code: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
        for number in &numbers {
            let code = calling_code(number).expect(number);
            by_code.entry(code).or_default().push(number);
        }
        let mut valid = 0;
        for (code, numbers) in by_code {
            let one_code = Library::new();
            for number in numbers {
                let expected = oracle(number);
                valid += usize::from(expected.is_some());
                let ours = one_code.parse(number).ok().map(|phone| phone.0);
                assert_eq!(ours, expected, "{number}");
                assert_eq!(
                    library.parse(number).ok().map(|phone| phone.0),
                    expected,
                    "{number}"
                );
            }
            assert_eq!(
                one_code.loaded.read().unwrap().as_ref().unwrap().codes,
                [code]
            );
        }
        // Both outcomes are exercised, not only one.
        assert!(
            valid >= examples && valid < numbers.len(),
            "{valid} of {}",
            numbers.len()
        );
    }

    #[test]
    fn the_library_holds_only_the_calling_codes_it_has_needed() {
        let library = Library::new();
        let loaded = |library: &Library| {
            let slot = library.loaded.read().unwrap();
            let loaded = slot.as_ref().unwrap();
            (
                loaded.codes.clone(),
                loaded.util.get_supported_regions().count(),
            )
        };
        assert!(
            library.loaded.read().unwrap().is_none(),
            "nothing loaded up front"
        );
        // Too short for any number under its code (2 national digits at least): not loaded.
        for number in ["+1", "+7 1", "+3706", "+370"] {
            assert!(library.parse(number).is_err(), "{number}");
        }
        assert!(
            library.loaded.read().unwrap().is_none(),
            "nothing loaded for those"
        );
        library.parse("+37060012345").unwrap();
        assert_eq!(loaded(&library), (vec![370], 1));
        library.parse("+16502530000").unwrap();
        let (codes, regions) = loaded(&library);
        assert_eq!(codes, [370, 1]);
        assert!(regions > 20, "+1 is shared by {regions} regions");
        // A number refused for its digits still loads its code; an unknown code loads nothing.
        assert!(library.parse("+999123456").is_err());
        assert_eq!(loaded(&library).0, [370, 1]);
        for number in [
            "+442079460958",
            "+4930123456",
            "+33123456789",
            "+34912345678",
        ] {
            library.parse(number).unwrap();
        }
        for number in ["+390612345678", "+48123456789"] {
            library.parse(number).unwrap();
        }
        assert_eq!(loaded(&library).0.len(), LOAD_ALL_AFTER);
        library.parse("+31201234567").unwrap();
        assert_eq!(
            loaded(&library).0.len(),
            CALLING_CODES.len(),
            "all, once past the limit"
        );
        assert_eq!(
            library.parse("+37060012345").unwrap().as_str(),
            "+37060012345"
        );
    }
}
