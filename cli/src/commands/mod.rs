pub mod ingest;
pub mod run;
