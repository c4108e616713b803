//! Diagnostics on stderr through `tracing`: `SPR_LOG` chooses what is shown, `-v` raises
//! the level, and stdout is never written to (it carries `spr serve --stdio` responses).

use std::io::IsTerminal;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// spr's own crates: the default filter raises these and leaves dependencies at warn.
const OWN_TARGETS: &[&str] = &[
    "spr",
    "spr_cli",
    "spr_core",
    "spr_engine_local",
    "spr_engine_docker",
    "spr_policy",
    "spr_protocol",
];

/// The filter in force: `SPR_LOG` when set (`info`, `debug`, `spr_cli=debug,hyper=info`,
/// as `RUST_LOG` would say it without regexes), else spr's crates at `base` raised by
/// `verbose` steps, dependencies at warn.
pub fn filter(spr_log: Option<&str>, base: LevelFilter, verbose: u8) -> Result<Targets, String> {
    if let Some(spec) = spr_log.filter(|s| !s.trim().is_empty()) {
        return spec
            .parse::<Targets>()
            .map_err(|e| format!("SPR_LOG={spec:?} is not a valid filter ({e}); expected a level such as info, or target=level pairs such as spr_cli=debug,hyper=warn"));
    }
    const LADDER: [LevelFilter; 6] = [
        LevelFilter::OFF,
        LevelFilter::ERROR,
        LevelFilter::WARN,
        LevelFilter::INFO,
        LevelFilter::DEBUG,
        LevelFilter::TRACE,
    ];
    let at = LADDER.iter().position(|l| *l == base).unwrap_or(2);
    let level = LADDER[(at + usize::from(verbose)).min(LADDER.len() - 1)];
    // The MCP SDK reports a client's own mistakes (an unknown tool) as warnings and a
    // cancelled call's unsent answer as an error: noise in an operator's log, where spr
    // logs each call itself. `SPR_LOG=rmcp=warn` shows them.
    let quiet = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("rmcp", LevelFilter::OFF);
    Ok(OWN_TARGETS
        .iter()
        .fold(quiet, |t, target| t.with_target(*target, level)))
}

/// Install the subscriber. Servers log at info by default, one-shot commands at warn.
pub fn init(server: bool, verbose: u8) -> Result<(), String> {
    let base = if server {
        LevelFilter::INFO
    } else {
        LevelFilter::WARN
    };
    let spr_log = std::env::var("SPR_LOG").ok();
    let targets = filter(spr_log.as_deref(), base, verbose)?;
    let layer = layer(std::io::stderr, std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(layer.with_filter(targets))
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}

/// The formatting layer, writing each event to `writer` (colours with `ansi`).
///
/// Every field is written escaped ([`escape_controls`]), whoever logs it. spr's own
/// lines escape client text already (`front::loggable`), but a dependency may not: the
/// MCP SDK writes a request's id with `Display`, so a client's id holding a newline and
/// a line of its own would otherwise forge a log line, and a terminal escape would
/// reach the operator's terminal.
fn layer<S, W>(writer: W, ansi: bool) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let fields = tracing_subscriber::fmt::format::debug_fn(|out, field, value| {
        let text = format!("{value:?}");
        let text = escape_controls(&text);
        match field.name() {
            "message" => out.write_str(&text),
            name => write!(out, "{name}={text}"),
        }
    })
    .delimited(" ");
    tracing_subscriber::fmt::layer()
        .fmt_fields(fields)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false)
}

/// `text` with every control character (newlines, escapes, C1 controls) and every
/// bidirectional override escaped as Rust writes them (`\n`, `\u{1b}`), the rest as is.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.contains(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    /// What a dependency logs (the MCP SDK logs a request's id with `Display`) reaches
    /// the log escaped like spr's own fields: one event is one line, with no terminal
    /// escapes, whatever a client put in it.
    #[test]
    fn every_field_is_escaped_whoever_logs_it() {
        #[derive(Clone, Default)]
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = {
            let sink = sink.clone();
            move || sink.clone()
        };
        let subscriber = tracing_subscriber::registry().with(layer(writer, false));
        tracing::subscriber::with_default(subscriber, || {
            let id = "a\nFORGED line\u{1b}[2J\u{202e}";
            tracing::warn!(id = %id, text = ?id, name = id, "response error {}", "x\r\ny");
        });
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        assert!(out.ends_with('\n'), "{out:?}");
        assert!(!out.contains(['\u{1b}', '\r', '\u{202e}']), "{out:?}");
        assert!(
            out.contains("response error x\\r\\ny id=a\\nFORGED line\\u{1b}[2J\\u{202e} "),
            "{out:?}"
        );
        assert!(out.contains(" name=\"a\\nFORGED"), "{out:?}");
    }

    #[test]
    fn verbosity_raises_spr_and_spr_log_wins() {
        let t = filter(None, LevelFilter::INFO, 0).unwrap();
        assert!(t.would_enable("spr_cli", &Level::INFO));
        assert!(!t.would_enable("spr_cli", &Level::DEBUG));
        assert!(!t.would_enable("hyper", &Level::INFO));
        assert!(!t.would_enable("rmcp", &Level::ERROR));
        let t = filter(None, LevelFilter::INFO, 1).unwrap();
        assert!(t.would_enable("spr_cli", &Level::DEBUG));
        let t = filter(None, LevelFilter::WARN, 1).unwrap();
        assert!(t.would_enable("spr_engine_local", &Level::INFO));
        assert!(!t.would_enable("spr_engine_local", &Level::DEBUG));
        let t = filter(None, LevelFilter::WARN, 3).unwrap();
        assert!(t.would_enable("spr_core", &Level::TRACE));
        let t = filter(Some("hyper=debug"), LevelFilter::INFO, 2).unwrap();
        assert!(t.would_enable("hyper", &Level::DEBUG));
        assert!(!t.would_enable("spr_cli", &Level::ERROR));
        assert!(filter(Some("spr_cli=loud"), LevelFilter::INFO, 0).is_err());
    }
}
