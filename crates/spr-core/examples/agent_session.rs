//! The agent loop of docs/SESSIONS.md: one session, cells that build on each other, a
//! cell that runs too long and is interrupted, and the session still there after it.
//!
//! `cargo run -p spr-core --example agent_session`

use spr_core::{
    Engine, LocalEngine, LocalEngineConfig, PolicySource, RunnerPolicy, RunnerResult, Sessions,
};
use std::sync::Arc;

/// What a model would write, one cell at a time, each after reading the last result.
const CELLS: &[&str] = &[
    "import statistics\nscores = [72, 88, 95, 61, 79]",
    "mean = statistics.mean(scores)\nround(mean, 1)",
    // Too slow: interrupted at the timeout, the session keeps `scores` and `mean`.
    "while True:\n    pass",
    "[s for s in scores if s > mean]",
];

async fn demo() -> Result<Vec<RunnerResult>, Box<dyn std::error::Error>> {
    let engine = LocalEngine::new(LocalEngineConfig::new(example_venv()))?;
    let sessions = Sessions::new(Arc::new(engine) as Arc<dyn Engine>);
    let policy = RunnerPolicy {
        timeout_seconds: 2,
        ..RunnerPolicy::default()
    };
    let id = sessions
        .create(PolicySource::Policy(policy), Some(300))
        .await?;
    let mut results = Vec::new();
    for cell in CELLS {
        let result = sessions.run(&id, cell, None).await?;
        match (&result.value, &result.error) {
            (_, Some(error)) => println!("error: {error}"),
            (Some(value), None) => println!("value: {value}"),
            (None, None) => println!("ok"),
        }
        if result.session_lost {
            println!("the session was lost; a new one starts empty");
            break;
        }
        results.push(result);
    }
    sessions.close(&id).await?;
    Ok(results)
}

/// Examples share one venv so that only the first run pays for creating it.
fn example_venv() -> std::path::PathBuf {
    std::env::var_os("SPR_VENV_DIR")
        .map(Into::into)
        .unwrap_or_else(|| std::env::temp_dir().join("spr-example-venv"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    demo().await.map(|_| ())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_session_keeps_its_state_through_an_interrupted_cell() {
        let results = super::demo().await.unwrap();
        assert_eq!(results.len(), 4);
        assert_eq!(results[1].value.as_ref().unwrap().get(), "79");
        assert!(results[2].timed_out && !results[2].session_lost);
        assert_eq!(results[3].value.as_ref().unwrap().get(), "[88,95]");
    }
}
