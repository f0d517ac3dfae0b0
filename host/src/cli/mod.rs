//! Subcommands of the `tug` command line that live in the library (so that tests and other
//! tools can drive them): `tug plugin …`.

pub mod agent;
pub mod plugin;
