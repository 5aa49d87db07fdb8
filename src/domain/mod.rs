//! The words of the domain, with no I/O: the instance's records as `collect` hands them to
//! `evaluate` (`records.rs`), whom the built-in job checks (`population.rs`), what `evaluate` concludes
//! (`finding.rs`, the early warnings and observations too), what a watch did (`watched.rs`), and the
//! instance's time format ([`sn_time`]).

mod carry;
mod finding;
mod population;
mod records;
mod selection;
pub mod sn_time;
mod watched;

pub use finding::*;
pub(crate) use population::{Population, users_on};
pub use records::*;
pub(crate) use selection::{KnownNames, ResolvedSelection};
pub use selection::{Scope, Selection};
pub use watched::{WatchEnd, Watched};
