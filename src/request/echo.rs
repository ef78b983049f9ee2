//! What the gateway repeats of a caller's input, in answers and logs: never more than
//! [`MAX_ECHO_CHARS`] of it, so that a huge field name, value or header costs neither a huge
//! answer nor a huge log line, and the reader still sees where it went wrong.

use std::borrow::Cow;

/// Characters of caller input quoted at most; enough for any GUID, path segment, field name or
/// media type a real caller sends.
pub const MAX_ECHO_CHARS: usize = 64;

/// `text` as is when short enough, else its first [`MAX_ECHO_CHARS`] characters and `…`.
pub fn cut(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

/// `text` cut as by [`cut`], in double quotes with Rust's escapes (so control characters and
/// quotes show as such).
pub fn quoted(text: &str) -> String {
    format!("{:?}", cut(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_with_an_ellipsis() {
        assert_eq!(cut("operationStatus"), "operationStatus");
        let exact = "é".repeat(MAX_ECHO_CHARS);
        assert_eq!(cut(&exact), exact.as_str());
        let long = format!("{exact}x");
        assert_eq!(cut(&long), format!("{exact}…"));
        let huge = "a".repeat(900 * 1024);
        assert_eq!(cut(&huge).chars().count(), MAX_ECHO_CHARS + 1);
        assert_eq!(quoted("a\"b\n"), r#""a\"b\n""#);
        assert_eq!(quoted(&huge).len(), MAX_ECHO_CHARS + "…".len() + 2);
    }
}
