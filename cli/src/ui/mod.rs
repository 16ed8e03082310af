//! `reasonkit-audit ui`: the audit trail as a local web app — the sessions, a session's
//! waterfall with its decisions (live while it runs), search, per-module statistics, a run
//! against its replay, and the chain's verdict — read-only, offline, on 127.0.0.1.
//!
//! Every page is a call to the library's [`Reader`](reasonkit_audit::read::Reader), made on
//! a blocking thread with a reader of its own (a SQLite file opened read-only and
//! query-only; PostgreSQL in read-only transactions), rendered on the server by maud, which
//! escapes every recorded value. The pages carry no script at all, and the
//! Content-Security-Policy forbids any; a running session's page reloads itself every two
//! seconds (`<meta http-equiv="refresh">`), so a developer watches a run happen.
//!
//! | file | what it does |
//! |---|---|
//! | `mod.rs` | the command: where it listens, who may ask, the server and its limits |
//! | `access.rs` | the token check and the security headers every answer carries |
//! | `pages.rs` | one handler per page: read the request, ask the reader, render |
//! | `query.rs` | what each page's query string carries |
//! | `views.rs` | the HTML of each page (maud) |
//! | `style.css` | the one stylesheet, embedded in the binary |

mod access;
mod pages;
mod query;
mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::get;
use reasonkit_audit::VerifyOptions;

use crate::{Failure, Outcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to listen. Any address other than loopback needs --token (one is made and
    /// printed when none is given)
    #[arg(long, default_value = "127.0.0.1:7420", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Every request must carry this token: `Authorization: Bearer TOKEN`, or `?token=TOKEN`
    /// once (the browser then keeps it in a cookie for this server)
    #[arg(long, env = "REASONKIT_AUDIT_UI_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the address, then open it in the default browser
    #[arg(long)]
    open: bool,
    /// Keep at most this many connections open; more wait to be accepted. A client has
    /// 10 s to send a request's headers, so slow ones cannot hold the slots
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_connections: usize,
    /// Verify the chain for the pages' marks at start and then every SECONDS, apart from
    /// the requests; 0: only when /verify is asked (a large chain takes seconds each time)
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    verify_every: u64,
    #[command(flatten)]
    verify: crate::verify::Sources,
}

/// At most this many requests are served at once; more wait their turn.
const CONCURRENT_REQUESTS: usize = 64;

/// What every page shares: the store, the token, and the chain's last verdict.
pub struct App {
    store: PathBuf,
    /// Readers not in use, kept open for the next request (opening one checks the file's
    /// schema, or connects to PostgreSQL).
    idle: Mutex<Vec<reasonkit_audit::read::Reader>>,
    /// As many pages are read at once as there are cores; the rest wait their turn in
    /// order, so that under load every request waits about as long as the others.
    reading: tokio::sync::Semaphore,
    token: Option<String>,
    verify: VerifyOptions,
    evidence: Mutex<Option<Verdict>>,
}

/// The chain's verdict at a time.
pub struct Verdict {
    at: SystemTime,
    evidence: Result<crate::report::Evidence, String>,
}

/// The most readers kept open between requests.
const IDLE_READERS: usize = 8;

impl App {
    /// Runs `read` on a blocking thread once a core is free for it.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&App) -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let _turn = self.reading.acquire().await;
        let app = self.clone();
        tokio::task::spawn_blocking(move || read(&app)).await
    }

    /// Runs `read` with an idle reader, or a new one; keeps the reader for the next request
    /// unless `read` failed (a broken connection is not kept).
    fn with_reader<T, E: From<reasonkit_audit::Error>>(
        &self,
        read: impl FnOnce(&reasonkit_audit::read::Reader) -> Result<T, E>,
    ) -> Result<T, E> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let reader = match idle {
            Some(reader) => reader,
            None => reasonkit_audit::read::Reader::open(&self.store)?,
        };
        let result = read(&reader);
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(reader);
            }
        }
        result
    }

    /// The last verdict, if one was reached.
    fn verdict<T>(&self, read: impl FnOnce(Option<&Verdict>) -> T) -> T {
        let guard = self.evidence.lock().unwrap_or_else(|p| p.into_inner());
        read(guard.as_ref())
    }

    /// Verifies the chain now (and checks the checkpoints given); keeps the verdict.
    fn verify_now(&self) {
        let evidence = verify(&self.store, &self.verify).map_err(|e| e.to_string());
        let verdict = Verdict {
            at: SystemTime::now(),
            evidence,
        };
        *self.evidence.lock().unwrap_or_else(|p| p.into_inner()) = Some(verdict);
    }
}

fn verify(
    store: &std::path::Path,
    options: &VerifyOptions,
) -> Result<crate::report::Evidence, Failure> {
    let report = match store
        .to_str()
        .filter(|s| reasonkit_audit::postgres::is_postgres_url(s))
    {
        Some(url) => reasonkit_audit::postgres::verify(url, options)?,
        None => reasonkit_audit::verify_with(store, options)?,
    };
    Ok(crate::report::Evidence::of(&report))
}

pub fn run(store: PathBuf, args: &Args) -> Result<Outcome, Failure> {
    // The store must open before anything listens: a wrong path is one line, not a server
    // that answers every page with an error.
    reasonkit_audit::read::Reader::open(&store)?;
    let token = crate::serve::token_for("ui", &args.listen, args.token.as_deref())?;
    let app = Arc::new(App {
        store,
        idle: Mutex::new(Vec::new()),
        reading: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        ),
        token,
        verify: args.verify.options()?,
        evidence: Mutex::new(None),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
        .map_err(|e| format!("cannot start the web server's runtime: {e}"))?;
    runtime.block_on(serve(app, args))?;
    Ok(Outcome::Done)
}

/// The routes, the limits, and the headers every answer carries.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::sessions))
        .route("/session", get(pages::session))
        .route("/session.json", get(pages::session_json))
        .route("/report", get(pages::report))
        .route("/search", get(pages::search))
        .route("/stats", get(pages::stats))
        .route("/compare", get(pages::compare))
        .route("/verify", get(pages::verify))
        .route("/style.css", get(pages::style))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            access::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            CONCURRENT_REQUESTS,
        ))
        .with_state(app)
}

async fn serve(app: Arc<App>, args: &Args) -> Result<(), Failure> {
    let listener = crate::serve::listen(args.listen, "ui", "--listen").await?;
    let addr = listener.local_addr()?;
    let url = match &app.token {
        Some(token) => format!("http://{addr}/?token={token}"),
        None => format!("http://{addr}/"),
    };
    // The first line of standard output is the address: scripts and tests read it.
    println!(
        "reasonkit-audit ui: serving {} at {url}",
        app.store.display()
    );
    use std::io::Write;
    std::io::stdout().flush()?;
    if args.open {
        open_browser(&url);
    }
    // The chain's verdict for the pages' marks: at start, then every --verify-every
    // seconds, apart from the requests (a large chain takes seconds to verify).
    if args.verify_every > 0 {
        let every = Duration::from_secs(args.verify_every);
        let verifier = app.clone();
        tokio::spawn(async move {
            loop {
                let app = verifier.clone();
                let _ = tokio::task::spawn_blocking(move || app.verify_now()).await;
                tokio::time::sleep(every).await;
            }
        });
    }
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    crate::serve::accept_loop(listener, router(app), args.max_connections, None, stop).await;
    Ok(())
}

/// Opens `url` in the desktop's browser, if there is one; says so when there is not.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener).arg(url).spawn() {
        eprintln!("reasonkit-audit ui: cannot open a browser ({opener}: {e}); open {url}");
    }
}
