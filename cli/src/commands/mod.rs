pub mod bench;
pub mod classify;
pub mod eval;
pub mod ingest;
pub mod run;
pub mod train;
