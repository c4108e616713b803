//! Client text made safe to repeat in a log line. Defined once, in the wire crate, whose
//! request errors repeat client text too.

pub use spr_protocol::wire::loggable;
