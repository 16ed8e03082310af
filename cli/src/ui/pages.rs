//! One handler per page: read the request's query, ask a reader of its own on a blocking
//! thread (SQLite and PostgreSQL calls block), render the page with `views.rs`.
//!
//! Every value a request brings is bounded (ids, text, page sizes) and reaches the store
//! only as a bound parameter of the library's queries; a bad one is a 400 that says which.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::Markup;
use reasonkit_audit::read::{OverviewColumn, Reader, SessionFilter, SortBy};

use super::query::{CompareQuery, SearchQuery, SessionQuery, SessionsQuery, StatsQuery};
use super::{App, views};
use crate::since::Since;

/// The most rows a page lists, whatever is asked.
pub const PAGE_MAX: usize = 200;
/// The rows a page lists when not asked.
const PAGE_DEFAULT: usize = 50;
/// The longest id or text a request may bring.
const TEXT_MAX: usize = 1024;

/// Why a page could not be shown, and the status that says it.
pub struct Failed {
    status: StatusCode,
    message: String,
}

impl Failed {
    fn bad(message: impl Into<String>) -> Self {
        Failed {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn missing(message: impl Into<String>) -> Self {
        Failed {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<reasonkit_audit::Error> for Failed {
    fn from(error: reasonkit_audit::Error) -> Self {
        let status = match error {
            reasonkit_audit::Error::Request { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failed {
            status,
            message: error.to_string(),
        }
    }
}

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        (
            self.status,
            Html(views::failed(self.status, &self.message).into_string()),
        )
            .into_response()
    }
}

/// Runs `page` on a blocking thread with a reader of its own, and answers with its HTML.
async fn render(
    app: Arc<App>,
    page: impl FnOnce(&Reader, &App) -> Result<Markup, Failed> + Send + 'static,
) -> Response {
    let done = app
        .blocking(move |app| app.with_reader(|reader| page(reader, app)))
        .await;
    match done {
        Ok(Ok(markup)) => Html(markup.into_string()).into_response(),
        Ok(Err(failed)) => failed.into_response(),
        Err(e) => Failed {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("the page failed: {e}"),
        }
        .into_response(),
    }
}

/// A text the user typed: trimmed, `None` when empty, refused when too long.
fn given(value: &Option<String>, what: &str) -> Result<Option<String>, Failed> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) if text.len() > TEXT_MAX => Err(Failed::bad(format!(
            "{what} is longer than {TEXT_MAX} bytes"
        ))),
        Some(text) => Ok(Some(text.to_owned())),
    }
}

/// The most sessions a text filter looks through.
const TEXT_SESSIONS: usize = 1000;

impl SessionsQuery {
    fn filter(&self, reader: &Reader) -> Result<(SessionFilter, usize, usize), Failed> {
        let only = match given(&self.text, "text")? {
            Some(text) => {
                let mut ids = reader.ids_starting_with(&text, TEXT_SESSIONS)?;
                ids.extend(
                    reader
                        .search(&text, TEXT_SESSIONS)?
                        .into_iter()
                        .map(|hit| hit.session_id),
                );
                ids.sort();
                ids.dedup();
                Some(ids)
            }
            None => None,
        };
        let since = match given(&self.since, "since")? {
            Some(text) => Some(text.parse::<Since>().map_err(Failed::bad)?.utc()),
            None => None,
        };
        let below = match given(&self.below, "below")? {
            Some(text) => Some(text.parse::<f64>().map_err(|_| {
                Failed::bad(format!(
                    "below: '{text}' is not a number (a confidence, 0 to 1)"
                ))
            })?),
            None => None,
        };
        let sort = match given(&self.sort, "sort")? {
            Some(name) => Some(SortBy {
                column: OverviewColumn::from_name(&name).ok_or_else(|| {
                    Failed::bad(format!("sort: '{name}' is not a column of the list"))
                })?,
                descending: self.dir.as_deref() != Some("asc"),
            }),
            None => None,
        };
        let size = self.n.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX);
        let page = self.page.unwrap_or(0).min(1_000_000);
        let filter = SessionFilter {
            since,
            status: given(&self.status, "status")?,
            profile: given(&self.profile, "profile")?,
            below_confidence: below,
            // One more than the page, to know whether there is a next one.
            limit: Some(size + 1),
            offset: page * size,
            sort,
            only,
            ..SessionFilter::default()
        };
        Ok((filter, page, size))
    }
}

pub async fn sessions(State(app): State<Arc<App>>, Query(query): Query<SessionsQuery>) -> Response {
    render(app, move |reader, _| {
        let (filter, page, size) = query.filter(reader)?;
        let mut rows = reader.overview(&filter)?;
        let more = rows.len() > size;
        rows.truncate(size);
        Ok(views::sessions(&rows, &query, page, more))
    })
    .await
}

fn wanted_id(query: &SessionQuery) -> Result<String, Failed> {
    given(&query.id, "id")?.ok_or_else(|| Failed::bad("give the session: ?id=SESSION_ID"))
}

pub async fn session(State(app): State<Arc<App>>, Query(query): Query<SessionQuery>) -> Response {
    render(app, move |reader, app| {
        let id = wanted_id(&query)?;
        let session = reader
            .session(&id)?
            .ok_or_else(|| Failed::missing(format!("no session has the id '{id}'")))?;
        let replays = reader.replays_of(&id)?;
        let joined = reader.joined_chain(&session.id)?;
        Ok(app.verdict(|verdict| views::session(&session, &replays, &joined, verdict)))
    })
    .await
}

pub async fn session_json(
    State(app): State<Arc<App>>,
    Query(query): Query<SessionQuery>,
) -> Response {
    let done = app
        .blocking(move |app| -> Result<String, Failed> {
            let id = wanted_id(&query)?;
            let record = app
                .with_reader(|reader| reader.session_record(&id))?
                .ok_or_else(|| Failed::missing(format!("no session has the id '{id}'")))?;
            serde_json::to_string_pretty(&record).map_err(|e| Failed {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: e.to_string(),
            })
        })
        .await;
    match done {
        Ok(Ok(json)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Ok(Err(failed)) => failed.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The session's `report` (the self-contained HTML file), to download and keep.
pub async fn report(State(app): State<Arc<App>>, Query(query): Query<SessionQuery>) -> Response {
    let done = app
        .blocking(move |app| -> Result<(String, Vec<u8>), Failed> {
            let id = wanted_id(&query)?;
            if app.verdict(|v| v.is_none_or(|v| v.evidence.is_err())) {
                app.verify_now();
            }
            let evidence = app
                .verdict(|v| v.and_then(|v| v.evidence.as_ref().ok().cloned()))
                .ok_or_else(|| Failed {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "the chain could not be verified for the report: see /verify".into(),
                })?;
            let html = app.with_reader(|reader| {
                if reader.session(&id)?.is_none() {
                    return Err(Failed::missing(format!("no session has the id '{id}'")));
                }
                let mut html = Vec::new();
                crate::report::write(
                    reader,
                    &format!("Audit report: session {id}"),
                    std::slice::from_ref(&id),
                    &evidence,
                    &mut html,
                )
                .map_err(|e| Failed {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: e.to_string(),
                })?;
                Ok(html)
            })?;
            Ok((id, html))
        })
        .await;
    match done {
        Ok(Ok((id, html))) => {
            // A file name of the id's safe characters only.
            let name: String = id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(80)
                .collect();
            (
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"report-{name}.html\""),
                    ),
                    // The report's styles are inline (it is one self-contained file); still
                    // no script.
                    (
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'none'; style-src 'unsafe-inline'".to_owned(),
                    ),
                ],
                html,
            )
                .into_response()
        }
        Ok(Err(failed)) => failed.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub async fn search(State(app): State<Arc<App>>, Query(query): Query<SearchQuery>) -> Response {
    render(app, move |reader, _| {
        let text = given(&query.q, "the search")?;
        let hits = match &text {
            Some(text) => Some(reader.search(text, PAGE_MAX)?),
            None => None,
        };
        Ok(views::search(text.as_deref(), hits.as_deref()))
    })
    .await
}

pub async fn stats(State(app): State<Arc<App>>, Query(query): Query<StatsQuery>) -> Response {
    render(app, move |reader, _| {
        let since = match given(&query.since, "since")? {
            Some(text) => Some(text.parse::<Since>().map_err(Failed::bad)?),
            None => None,
        };
        let since_at = since.as_ref().map(Since::utc);
        let stats = reader.module_stats(since_at)?;
        let days = reader.daily_stats(since_at)?;
        Ok(views::stats(
            &stats,
            &days,
            given(&query.since, "since")?.as_deref(),
        ))
    })
    .await
}

pub async fn compare(State(app): State<Arc<App>>, Query(query): Query<CompareQuery>) -> Response {
    render(app, move |reader, _| {
        let Some(a) = given(&query.a, "a")? else {
            return Ok(views::compare(None, None, None));
        };
        let find = |prefix: &str| -> Result<String, Failed> {
            reader
                .resolve(prefix)?
                .ok_or_else(|| Failed::missing(format!("no session id starts with '{prefix}'")))
        };
        let a = find(&a)?;
        let b = match given(&query.b, "b")? {
            Some(b) => find(&b)?,
            None => match reader.replays_of(&a)?.into_iter().next() {
                Some(replay) => replay.id,
                None => {
                    return Err(Failed::bad(format!(
                        "session {a} has no replay: give the session to compare it with"
                    )));
                }
            },
        };
        let load = |id: &str| -> Result<_, Failed> {
            reader
                .session(id)?
                .ok_or_else(|| Failed::missing(format!("session {id} is gone")))
        };
        let diff = reasonkit_audit::diff::compare(&load(&a)?, &load(&b)?);
        Ok(views::compare(Some(&a), Some(&b), Some(&diff)))
    })
    .await
}

pub async fn verify(State(app): State<Arc<App>>) -> Response {
    render(app, move |_, app| {
        app.verify_now();
        Ok(app.verdict(views::verify))
    })
    .await
}

pub async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("style.css"),
    )
        .into_response()
}

pub async fn not_found() -> Response {
    Failed::missing("no such page").into_response()
}
