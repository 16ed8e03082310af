//! What may leave the trail, each verifiable afterwards: pruning closed sessions after a
//! chained event that commits to what went (`prune.rs`), erasing a person's content after
//! a chained event that keeps its digests (`erase.rs`), and copying a live file
//! consistently (`backup.rs`). What may enter it is redaction's business
//! ([`crate::redaction`]). The PostgreSQL halves of pruning and erasure are in
//! `store/postgres/`, beside the rest of that store.

pub(crate) mod backup;
pub(crate) mod erase;
pub(crate) mod prune;
