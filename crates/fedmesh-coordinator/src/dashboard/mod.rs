//! The coordinator's dashboard for the consortium's operators: HTML pages (French or English,
//! readable on a laptop and a phone, charts drawn server-side in SVG, refreshed in place every
//! 30 seconds by a static script) and the JSON behind each page under `/api/`.
//!
//! - [`views`]: one typed view model per page, read from the store, serialized for `/api/`
//!   and rendered by the page's template (askama, HTML auto-escaped: every value is escaped by
//!   construction).
//! - [`words`]: the pages' words in French and English.
//!
//! HTTPS with the coordinator's certificate, CA and CRL, from the same reloadable
//! configuration as the gRPC listener (a rotated certificate or a new CRL applies to both).
//! Read access: a client certificate identified exactly as the gRPC auth layer does
//! ([`fedmesh_grpc::AccessPolicy::identify`]: this federation, not removed) that is a
//! consortium operator's or the coordinator's, or the configured bearer token (at least 32
//! characters, compared in constant time; `?token=` once sets a cookie and redirects to the
//! same page without it). Every response carries a strict Content-Security-Policy, no framing,
//! no sniffing, no referrer and no caching.

mod views;
mod words;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use fedmesh_core::Identity;
use fedmesh_grpc::AccessPolicy;
use fedmesh_store::{Store, StoreError};
use fedmesh_tls::ReloadableServerConfig;
use serde::{Deserialize, Serialize};

use views::{IncidentRow, Source};
use words::{Lang, Words};

/// The shortest token `dashboard.token` accepts.
pub const MIN_TOKEN_LEN: usize = 32;

/// Section `[dashboard]` of the coordinator's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Serve the dashboard at all.
    pub enabled: bool,
    /// HTTPS address of the dashboard.
    pub listen: SocketAddr,
    /// A bearer token granting read access (at least [`MIN_TOKEN_LEN`] characters of
    /// `A-Z a-z 0-9 - _`, e.g. 32 random hex digits); none by default.
    pub token: Option<String>,
    /// Whether a client certificate of a consortium operator (or the coordinator's own)
    /// grants read access.
    pub client_certificates: bool,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9443)),
            token: None,
            client_certificates: true,
        }
    }
}

impl DashboardConfig {
    /// Checks the token: long enough to be guessed by nobody, of characters that travel
    /// unencoded in a header, a cookie and a query. The error is `(key, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        if !acceptable_token(token) {
            return Err((
                "dashboard.token".to_owned(),
                format!(
                    "must be at least {MIN_TOKEN_LEN} random characters of A-Z, a-z, 0-9, '-' and '_' (e.g. `openssl rand -hex 16`), or unset"
                ),
            ));
        }
        Ok(())
    }
}

/// Whether `token` may be the dashboard's: at least [`MIN_TOKEN_LEN`] characters of
/// `A-Z a-z 0-9 - _`.
pub fn acceptable_token(token: &str) -> bool {
    token.len() >= MIN_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Compares two byte strings in a time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the pages read, and who may.
#[derive(Debug)]
struct Ctx {
    source: Source,
    token: Option<String>,
    client_certificates: bool,
}

/// Who the connection's client certificate says the caller is, as the gRPC auth layer
/// identifies it; `None` without a certificate, the reason when it is refused.
#[derive(Debug, Clone)]
struct Presented(Option<Result<Identity, String>>);

const COOKIE: &str = "fedmesh_dashboard";

/// Lets in the token (header, cookie, or `?token=` once, which sets the cookie and redirects
/// without it), or a consortium identity's certificate.
async fn authorize(State(ctx): State<Arc<Ctx>>, request: Request, next: Next) -> Response {
    if let Some(token) = ctx.token.as_deref() {
        let headers = request.headers();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| same_secret(v.as_bytes(), token.as_bytes()));
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|c| c.split(';'))
            .filter_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .any(|v| same_secret(v.as_bytes(), token.as_bytes()));
        if bearer || cookie {
            return next.run(request).await;
        }
        let query = request.uri().query().unwrap_or_default();
        let given = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("token="))
            .any(|v| same_secret(v.as_bytes(), token.as_bytes()));
        if given {
            // The token leaves the address bar (and the history) at once.
            let rest: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.starts_with("token=") && !kv.is_empty())
                .collect();
            let path = request.uri().path();
            let target = if rest.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", rest.join("&"))
            };
            let mut response = Redirect::to(&target).into_response();
            if let Ok(value) = HeaderValue::from_str(&format!(
                "{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict"
            )) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            return response;
        }
    }
    let presented = request
        .extensions()
        .get::<Presented>()
        .cloned()
        .and_then(|p| p.0);
    match presented {
        Some(Ok(identity)) if ctx.client_certificates && identity.is_consortium() => {
            next.run(request).await
        }
        Some(Ok(identity)) if ctx.client_certificates => (
            StatusCode::FORBIDDEN,
            format!(
                "{identity} may not read the dashboard: it is for the consortium's operators (an operator certificate, `fedmesh certs issue --operator NAME`)"
            ),
        )
            .into_response(),
        Some(Err(reason)) => (StatusCode::UNAUTHORIZED, reason).into_response(),
        _ => (
            StatusCode::UNAUTHORIZED,
            "a consortium operator's client certificate or the dashboard's token is required",
        )
            .into_response(),
    }
}

/// The security headers of every response.
async fn secure_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

// ------------------------------------------------------------------------------------------
// Pages.

#[derive(Template)]
#[template(path = "layout.html")]
struct Layout<'a> {
    code: &'a str,
    other_code: &'a str,
    other_name: &'a str,
    title: &'a str,
    w: &'a Words,
    /// The page's content, rendered by its own (auto-escaping) template.
    body: &'a str,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage<'a> {
    w: &'a Words,
    code: &'a str,
    v: &'a views::Overview,
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct IncidentsPage<'a> {
    w: &'a Words,
    rows: &'a [IncidentRow],
}

/// A bar of a chart, placed.
#[derive(Debug)]
struct Bar {
    x: usize,
    y: f64,
    height: f64,
    center: usize,
    value_y: f64,
    label: String,
    value: i64,
}

/// A bar chart in SVG coordinates.
#[derive(Debug)]
struct Chart {
    width: usize,
    bars: Vec<Bar>,
}

impl Chart {
    fn of(points: impl IntoIterator<Item = (String, i64)>) -> Self {
        let points: Vec<(String, i64)> = points.into_iter().collect();
        let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
        let bars = points
            .into_iter()
            .enumerate()
            .map(|(i, (label, value))| {
                let height = (value as f64 / max * 120.0).round();
                Bar {
                    x: i * 70 + 10,
                    y: 140.0 - height,
                    height,
                    center: i * 70 + 35,
                    value_y: 135.0 - height,
                    label,
                    value,
                }
            })
            .collect::<Vec<_>>();
        Self {
            width: 70 * bars.len().max(1),
            bars,
        }
    }
}

#[derive(Template)]
#[template(path = "offer.html")]
struct OfferPage<'a> {
    w: &'a Words,
    v: &'a views::OfferDetail,
    rows: &'a [IncidentRow],
    chart: Chart,
}

#[derive(Template)]
#[template(path = "member.html")]
struct MemberPage<'a> {
    w: &'a Words,
    code: &'a str,
    v: &'a views::MemberDetail,
}

type Q = Query<BTreeMap<String, String>>;

fn lang(query: &BTreeMap<String, String>, headers: &HeaderMap) -> Lang {
    Lang::pick(query.get("lang").map(String::as_str).or_else(|| {
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
    }))
}

/// A store that cannot be read: the page says so rather than showing nothing.
fn unavailable(error: &StoreError) -> Response {
    tracing::error!(%error, "the dashboard cannot read the store");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the coordinator cannot read its database right now; see its log",
    )
        .into_response()
}

/// A page: its content alone for the in-place refresh (`X-Fragment`), else in the layout.
fn page(
    lang: Lang,
    title: &str,
    body: Result<String, askama::Error>,
    headers: &HeaderMap,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "a dashboard page failed to render");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if headers.contains_key("x-fragment") {
        return Html(body).into_response();
    }
    let (other_code, other_name) = lang.other();
    let layout = Layout {
        code: lang.code(),
        other_code,
        other_name,
        title,
        w: lang.words(),
        body: &body,
    };
    match layout.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "the dashboard layout failed to render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn index(State(ctx): State<Arc<Ctx>>, Query(q): Q, headers: HeaderMap) -> Response {
    let lang = lang(&q, &headers);
    match ctx.source.overview() {
        Ok(v) => {
            let body = OverviewPage {
                w: lang.words(),
                code: lang.code(),
                v: &v,
            }
            .render();
            page(lang, lang.words().federation, body, &headers)
        }
        Err(e) => unavailable(&e),
    }
}

async fn incidents(State(ctx): State<Arc<Ctx>>, Query(q): Q, headers: HeaderMap) -> Response {
    let lang = lang(&q, &headers);
    match ctx.source.incidents() {
        Ok(v) => {
            let body = IncidentsPage {
                w: lang.words(),
                rows: &v.incidents,
            }
            .render();
            page(lang, lang.words().incidents, body, &headers)
        }
        Err(e) => unavailable(&e),
    }
}

async fn offer(
    State(ctx): State<Arc<Ctx>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let lang = lang(&q, &headers);
    match ctx.source.offer(&id) {
        Ok(Some(v)) => {
            let body = OfferPage {
                w: lang.words(),
                rows: &v.open_incidents,
                chart: Chart::of(v.trend.iter().map(|p| (p.month.clone(), p.users))),
                v: &v,
            }
            .render();
            page(lang, &v.offer_id, body, &headers)
        }
        Ok(None) => (StatusCode::NOT_FOUND, "no such offer").into_response(),
        Err(e) => unavailable(&e),
    }
}

async fn member(
    State(ctx): State<Arc<Ctx>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let lang = lang(&q, &headers);
    match ctx.source.member(&id) {
        Ok(Some(v)) => {
            let body = MemberPage {
                w: lang.words(),
                code: lang.code(),
                v: &v,
            }
            .render();
            page(lang, &v.member_id, body, &headers)
        }
        Ok(None) => (StatusCode::NOT_FOUND, "no such member").into_response(),
        Err(e) => unavailable(&e),
    }
}

/// A view as JSON: 404 with `{"error": ...}` for something that does not exist, 503 when the
/// store cannot be read.
fn api<T: Serialize>(view: Result<Option<T>, StoreError>, missing: &str) -> Response {
    match view {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": missing })),
        )
            .into_response(),
        Err(e) => unavailable(&e),
    }
}

async fn api_overview(State(ctx): State<Arc<Ctx>>) -> Response {
    api(ctx.source.overview().map(Some), "")
}

async fn api_incidents(State(ctx): State<Arc<Ctx>>) -> Response {
    api(ctx.source.incidents().map(Some), "")
}

async fn api_offer(State(ctx): State<Arc<Ctx>>, Path(id): Path<String>) -> Response {
    api(ctx.source.offer(&id), "no such offer")
}

async fn api_member(State(ctx): State<Arc<Ctx>>, Path(id): Path<String>) -> Response {
    api(ctx.source.member(&id), "no such member")
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/dashboard.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/refresh.js"),
    )
        .into_response()
}

/// The dashboard server, bound.
pub struct Dashboard {
    listener: tokio::net::TcpListener,
    tls: ReloadableServerConfig,
    policy: AccessPolicy,
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Binds the dashboard of `store` per `config`. `tls` is the coordinator's reloadable TLS
    /// configuration (the dashboard uses its web side); `policy` identifies client
    /// certificates as the gRPC listener does.
    pub async fn bind(
        config: &DashboardConfig,
        tls: ReloadableServerConfig,
        policy: AccessPolicy,
        store: Store,
        staleness: crate::liveness::Staleness,
    ) -> Result<Self, fedmesh_grpc::StartError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| fedmesh_grpc::StartError::BindOther {
                key: "dashboard.listen",
                addr: config.listen,
                source,
            })?;
        Ok(Self {
            listener,
            tls,
            policy,
            ctx: Arc::new(Ctx {
                source: Source { store, staleness },
                token: config.token.clone(),
                client_certificates: config.client_certificates,
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop` turns true.
    pub async fn serve(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let pages = axum::Router::new()
            .route("/", axum::routing::get(index))
            .route("/incidents", axum::routing::get(incidents))
            .route("/offers/{id}", axum::routing::get(offer))
            .route("/members/{id}", axum::routing::get(member))
            .route("/api/overview", axum::routing::get(api_overview))
            .route("/api/incidents", axum::routing::get(api_incidents))
            .route("/api/offers/{id}", axum::routing::get(api_offer))
            .route("/api/members/{id}", axum::routing::get(api_member))
            .route_layer(axum::middleware::from_fn_with_state(
                self.ctx.clone(),
                authorize,
            ));
        let app = pages
            .route("/static/dashboard.css", axum::routing::get(stylesheet))
            .route("/static/refresh.js", axum::routing::get(script))
            .layer(axum::middleware::from_fn(secure_headers))
            .with_state(self.ctx.clone());
        loop {
            let (tcp, _) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "dashboard accept failed");
                        continue;
                    }
                },
                _ = stop.wait_for(|s| *s) => return,
            };
            // The configuration in force now: a rotated certificate or a new CRL applies to
            // the next connection.
            let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.web());
            let app = app.clone();
            let policy = self.policy.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let presented = tls.get_ref().1.peer_certificates().map(|certs| {
                    let der: Vec<Vec<u8>> = certs.iter().map(|c| c.to_vec()).collect();
                    policy
                        .identify(Some(&der))
                        .map_err(|s| s.message().to_owned())
                });
                let app = app.layer(axum::Extension(Presented(presented)));
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_be_long_and_plain() {
        let with = |token: &str| DashboardConfig {
            token: Some(token.to_owned()),
            ..DashboardConfig::default()
        };
        assert!(DashboardConfig::default().validate().is_ok(), "no token");
        assert!(with(&"a1".repeat(16)).validate().is_ok());
        for bad in [
            "",
            "secret",
            &"a".repeat(31),
            &format!("{}!", "a".repeat(40)),
        ] {
            let (key, message) = with(bad).validate().unwrap_err();
            assert_eq!(key, "dashboard.token", "{bad}");
            assert!(message.contains("at least 32"), "{message}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(!same_secret(b"", b"a"));
    }
}
