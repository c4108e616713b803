//! An error and its causes as one line, for the places that have room for a message only
//! (a run's `error`, a session's refusal, a Python exception).

/// `e`'s message, then each cause's that does not already end the text, joined by ": ".
pub fn message_with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer: gone")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn causes_follow_the_message_once() {
        let io = || std::io::Error::other("gone");
        assert_eq!(message_with_causes(&Outer(io())), "outer: gone");
        assert_eq!(message_with_causes(&Repeats(io())), "outer: gone");
    }
}
