//! `spr._native`: the Rust half of spr's Python package (engines, runs, sessions).
//!
//! The Python half (`python/spr`, `python/safe_py_runner`) owns the public API: dataclasses,
//! argument checks with the original's messages, asyncio. This module takes and returns
//! JSON text at its edges, so the two halves agree on one wire, the one every other door
//! of spr speaks (`spr_protocol`'s `RunnerResult`, policies as the TOML `[policy]` table).

mod convert;
mod engine;
mod errors;
mod runtime;
mod session;
mod task;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<session::PySession>()?;
    m.add_class::<task::PyTask>()?;
    m.add_function(wrap_pyfunction!(convert::default_policy, m)?)?;
    m.add_function(wrap_pyfunction!(convert::load_policy_file, m)?)?;
    m.add_function(wrap_pyfunction!(convert::check_policy, m)?)?;
    m.add_function(wrap_pyfunction!(convert::validate_pinned_packages, m)?)?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
