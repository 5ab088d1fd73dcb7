//! The web console at `/ui`: a page and its scripts, compiled into the binary (no build step,
//! no separate service). The assets hold no data: the page reads and acts through the REST API
//! with the token the user types (kept in the tab's `sessionStorage`, sent as
//! `Authorization: Bearer`), so they are served without authentication, under a Content
//! Security Policy that allows only this origin's scripts and styles and no framing.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::{ApiError, AppState};

/// One file of the console.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_str!(concat!("assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("status.js", JS),
    asset!("connectors.js", JS),
    asset!("connector.js", JS),
    asset!("worker.js", JS),
];

/// `default-src 'self'` without `'unsafe-inline'`: an injected `<script>` or `style` attribute
/// would not run even if a value the page shows escaped its text node.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { serve("index.html") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return ApiError::not_found(format!("HTTP 404 Not Found: /ui/{path}")).into_response();
    };
    let mut response = (StatusCode::OK, asset.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The assets change only with the binary; a short cache spares reloads without keeping an
    // old console after an upgrade.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=60"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module a script imports is served (a missing one would break the page only in a
    /// browser).
    #[test]
    fn every_imported_module_is_an_asset() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for line in asset.body.lines() {
                let Some(rest) = line.trim().strip_prefix("import ") else {
                    continue;
                };
                let Some(module) = rest.split('"').nth(1) else {
                    continue;
                };
                let file = module.trim_start_matches("./");
                assert!(
                    ASSETS.iter().any(|a| a.path == file),
                    "{} imports {module}, which is not in ASSETS",
                    asset.path
                );
            }
        }
    }

    #[test]
    fn the_page_loads_only_served_scripts_and_styles() {
        let page = ASSETS[0].body;
        for reference in page.split(['"', '\'']).filter(|s| s.starts_with("/ui/")) {
            let file = reference.trim_start_matches("/ui/");
            assert!(
                ASSETS.iter().any(|a| a.path == file),
                "index.html references {reference}, which is not served"
            );
        }
        assert!(
            !page.contains("<script>") && !page.contains("style="),
            "inline scripts and styles are refused by the page's Content-Security-Policy"
        );
    }
}
