//! The words of the domain, with no I/O: the instance's records as `collect` hands them to
//! `evaluate` (`records.rs`), what `evaluate` concludes (`finding.rs`), and the instance's time
//! format ([`sn_time`]).

mod finding;
mod records;
pub mod sn_time;

pub use finding::*;
pub use records::*;
