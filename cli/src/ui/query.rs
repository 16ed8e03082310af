//! What each page's query string carries, as the forms and links write it: read by the
//! handlers (`pages.rs`) and written back into links and forms by the views (`views.rs`).

use serde::Deserialize;

/// The sessions list's filters, order and page, as the form and the links carry them.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SessionsQuery {
    pub since: Option<String>,
    pub status: Option<String>,
    pub profile: Option<String>,
    pub below: Option<String>,
    pub page: Option<usize>,
    pub n: Option<usize>,
    /// A column to order by (`steps`, `duration_ms`, … as `sessions --json` names them).
    pub sort: Option<String>,
    /// `asc` or `desc` (the default).
    pub dir: Option<String>,
    /// Only sessions whose steps or decisions say this (as search finds it), or whose id
    /// starts with it.
    pub text: Option<String>,
}

/// One session: `?id=`.
/// One session: `?id=`.
#[derive(Debug, Deserialize)]
pub struct SessionQuery {
    pub id: Option<String>,
}

/// A search: `?q=`.
/// A search: `?q=`.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    pub q: Option<String>,
}

/// The stats since a time: `?since=`.
/// The stats since a time: `?since=`.
#[derive(Debug, Default, Deserialize)]
pub struct StatsQuery {
    pub since: Option<String>,
}

/// Two runs: `?a=` the original, `?b=` the re-run (default: its newest replay).
/// Two runs: `?a=` the original, `?b=` the re-run (default: its newest replay).
#[derive(Debug, Default, Deserialize)]
pub struct CompareQuery {
    pub a: Option<String>,
    pub b: Option<String>,
}
