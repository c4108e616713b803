//! Per-tenant policy files: the same code under two TOML policies from examples/.
//!
//! `cargo run -p spr-core --example policy_file`

use spr_core::{run_code, LocalEngine, LocalEngineConfig, PolicySource};
use std::path::PathBuf;

fn policy(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

async fn demo() -> Result<Vec<spr_core::RunnerResult>, Box<dyn std::error::Error>> {
    let engine = LocalEngine::new(LocalEngineConfig::new(
        std::env::temp_dir().join("spr-example-venv"),
    ))?;
    let code = "import statistics\nresult = statistics.mean(values)";
    let input = serde_json::json!({"values": [1, 2, 3, 4]});
    let mut results = Vec::new();
    for tenant in ["policy.toml", "allow-policy.toml"] {
        let r = run_code(
            code,
            &engine,
            Some(input.clone()),
            PolicySource::File(policy(tenant)),
        )
        .await?;
        println!(
            "{tenant}: ok={} result={} error={:?}",
            r.ok, r.result, r.error
        );
        results.push(r);
    }
    // A policy that blocks what the code needs fails with the friendly error.
    let r = run_code(
        "import os",
        &engine,
        None,
        PolicySource::File(policy("policy.toml")),
    )
    .await?;
    println!("import os: {}", r.error.clone().unwrap_or_default());
    results.push(r);
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
    async fn both_tenants_compute_the_mean_and_os_stays_blocked() {
        let results = super::demo().await.unwrap();
        assert_eq!(results[0].result, serde_json::json!(2.5));
        assert_eq!(results[1].result, serde_json::json!(2.5));
        assert_eq!(
            results[2].error.as_deref(),
            Some("ImportError: Import 'os' is blocked by policy")
        );
    }
}
