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
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    tracing_subscriber::registry()
        .with(layer.with_filter(targets))
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

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
