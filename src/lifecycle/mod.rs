//! What may leave the trail, each verifiable afterwards, as both stores share it: what a
//! pruning asks and what its chained event commits to (`prune.rs`), what an erasure asks,
//! keeps and refuses (`erase.rs`). Each store carries them out beside its other
//! operations — `store/sqlite/{prune,erase,backup}.rs`, `store/postgres/{prune,erase}.rs` —
//! and `verify` accepts what they did by `chain/verify_lifecycle.rs`. What may enter the
//! trail is redaction's business ([`crate::redaction`]).

pub(crate) mod erase;
pub(crate) mod prune;
