//! Client text made safe to repeat in an error message or a log line.

/// Longest piece of client text a message repeats.
const LOGGABLE_CHARS: usize = 64;

/// Client text made safe for a message or a log line: escaped (no newlines, no terminal
/// escapes) and cut to a few dozen characters.
pub fn loggable(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == LOGGABLE_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_in_logs_is_escaped_and_short() {
        assert_eq!(loggable("\"a\"\n\u{1b}[2J"), "\\\"a\\\"\\n\\u{1b}[2J");
        let long = loggable(&"x".repeat(1000));
        assert_eq!(long.chars().count(), LOGGABLE_CHARS + 1);
    }
}
