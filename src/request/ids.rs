//! GUIDs as Graph writes them: 8-4-4-4-12 hex digits, accepted in any case, kept lower-case.

use std::fmt;

/// A GUID in canonical lower-case form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Guid(String);

impl Guid {
    /// Parses the hyphenated form only; braces, URNs and bare hex are not what Graph sends.
    pub fn parse(value: &str) -> Option<Self> {
        Self::is_well_formed(value).then(|| Self(value.to_ascii_lowercase()))
    }

    /// Whether `value` is a GUID in its hyphenated form, in any case.
    pub fn is_well_formed(value: &str) -> bool {
        let bytes = value.as_bytes();
        bytes.len() == 36
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_hexdigit(),
            })
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Guid> for String {
    fn from(g: Guid) -> Self {
        g.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_case_and_lowercases() {
        let g = Guid::parse("0D7A5B5E-6C6F-4F3E-9C64-1D2B3A4C5E6F").unwrap();
        assert_eq!(g.as_str(), "0d7a5b5e-6c6f-4f3e-9c64-1d2b3a4c5e6f");
    }

    #[test]
    fn rejects_other_forms() {
        for bad in [
            "",
            "0d7a5b5e6c6f4f3e9c641d2b3a4c5e6f",
            "{0d7a5b5e-6c6f-4f3e-9c64-1d2b3a4c5e6f}",
            "0d7a5b5e-6c6f-4f3e-9c64-1d2b3a4c5e6g",
            "0d7a5b5e-6c6f-4f3e-9c641-d2b3a4c5e6f",
            "0d7a5b5e-6c6f-4f3e-9c64-1d2b3a4c5e6f0",
            "ü0d7a5b5e-6c6f-4f3e-9c64-1d2b3a4c5e",
        ] {
            assert!(Guid::parse(bad).is_none(), "{bad}");
        }
    }
}
