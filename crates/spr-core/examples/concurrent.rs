//! Many runs at once on one engine: the warm pool serves them, each in a fresh process.
//!
//! `cargo run -p spr-core --example concurrent`

use spr_core::{run_code, Json, LocalEngine, LocalEngineConfig, PolicySource};
use std::sync::Arc;

async fn demo() -> Result<Vec<Json>, Box<dyn std::error::Error>> {
    let engine = Arc::new(LocalEngine::new(LocalEngineConfig::new(
        std::env::temp_dir().join("spr-example-venv"),
    ))?);
    // Prepare the engine (the venv) and start every worker before the clock starts.
    engine.warm_up().await?;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for n in 0..20 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let input = serde_json::json!({"n": n});
            run_code(
                "result = sum(range(n + 1))",
                &engine,
                Some(input),
                PolicySource::Default,
            )
            .await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await??.result);
    }
    println!(
        "20 runs on {} workers in {:?}: {:?}",
        engine.pool_size(),
        started.elapsed(),
        results
    );
    engine.shutdown().await;
    Ok(results)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    demo().await.map(|_| ())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn every_run_gets_its_own_answer() {
        let results = super::demo().await.unwrap();
        for (n, r) in results.iter().enumerate() {
            assert_eq!(*r, serde_json::json!(n * (n + 1) / 2));
        }
    }
}
