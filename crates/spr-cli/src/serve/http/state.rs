//! What every request of one server shares: the operator's profiles, the engine, the
//! admission limits, the metrics and the token.

use super::limits::Limits;
use super::metrics::Metrics;
use crate::front::{Profiles, Token};
use crate::serve::EngineSlot;
use std::sync::Arc;

#[derive(Debug)]
pub struct App {
    pub profiles: Profiles,
    pub slot: Arc<EngineSlot>,
    pub limits: Arc<Limits>,
    pub metrics: Metrics,
    /// Largest request body taken, in bytes.
    pub max_body: usize,
    /// The bearer token every route but health requires; none means loopback only.
    pub token: Option<Arc<Token>>,
}
