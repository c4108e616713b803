//! The README quick start: one engine, one run, the result or the error.
//!
//! `cargo run -p spr-core --example quickstart`

use spr_core::{run_code, Json, LocalEngine, LocalEngineConfig, PolicySource, RunnerPolicy};

async fn demo() -> Result<Json, Box<dyn std::error::Error>> {
    // The engine is created once (cheap: it only checks the configuration), then
    // prepared: the venv is created if need be. Without `prepare`, the first run does it.
    let engine = LocalEngine::new(LocalEngineConfig::new(example_venv()))?;
    engine.prepare().await?;
    let policy = RunnerPolicy {
        timeout_seconds: 5,
        memory_limit_mb: 128,
        blocked_imports: vec!["os".into(), "subprocess".into(), "socket".into()],
        ..RunnerPolicy::default()
    };
    let result = run_code(
        "import math\nresult = math.sqrt(input_data['x'])",
        &engine,
        Some(serde_json::json!({"x": 81})),
        PolicySource::Policy(policy),
    )
    .await?;
    engine.shutdown().await;
    if result.ok {
        println!("Result: {}", result.result);
    } else {
        println!("Error: {}", result.error.unwrap_or_default());
    }
    Ok(result.result)
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
    async fn the_quick_start_prints_nine() {
        assert_eq!(super::demo().await.unwrap(), serde_json::json!(9.0));
    }
}
