//! The library half of the `ensi` command-line tool: the readers of files a user hands the
//! tool that are not ensi's binary objects (those are decoded by `ensi-ckks`), and the atomic
//! file writer. They live here so that fuzz targets and tests can drive them; the commands
//! themselves are in the `ensi` binary.

pub mod calibration;
pub mod files;
pub mod heap;
