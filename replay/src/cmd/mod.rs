//! One file per subcommand, each with a `run` that `main` calls with the parsed flags and that
//! returns the exit code.

pub mod audit;
pub mod drop;
pub mod inspect;
pub mod pull;
pub mod push;
