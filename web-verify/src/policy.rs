//! The headers every answer carries: a content security policy that lets the page run only its
//! own script and style (by hash), no framing, no sniffing, no referrer; and the CORS policy.

use std::sync::OnceLock;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

/// `'sha256-…'` of the text of the first `<tag>…</tag>` element of `page`.
fn element_hash(page: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = page.find(&open)? + open.len();
    let end = start + page[start..].find(&format!("</{tag}>"))?;
    let digest = Sha256::digest(&page.as_bytes()[start..end]);
    Some(format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    ))
}

/// The policy for the page (and, harmlessly, every other answer): only the page's own inline
/// script and style run; its preview reads the visitor's file through a `blob:` URL; its only
/// request is the upload to this origin; nothing may frame it.
pub fn content_security_policy(page: &str) -> String {
    // A page without its script or style gets a policy that allows none.
    let none = "'none'".to_string();
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src 'self' blob:; media-src blob:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        element_hash(page, "script").unwrap_or_else(|| none.clone()),
        element_hash(page, "style").unwrap_or(none),
    )
}

fn csp_header() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        HeaderValue::from_str(&content_security_policy(crate::PAGE))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
    })
}

/// Adds the security headers to an answer.
pub async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp_header().clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The soft-binding resolution API is public data meant for other tools and sites: any origin
/// may read it (no credentials). Nothing else carries CORS headers, so other sites' scripts
/// cannot read the verification API's answers through a visitor's browser.
pub async fn any_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// Reports about a visitor's file are not to be kept by caches on the way.
pub async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_policy_names_the_pages_own_script_and_style() {
        let page = "<style>b{}</style><script>\"use strict\";</script>";
        let csp = super::content_security_policy(page);
        // echo -n '"use strict";' | openssl dgst -sha256 -binary | base64
        assert!(
            csp.contains("script-src 'sha256-Xs8vTYPmJg2r1uxI522N3rzPlWVj80ByIhv5YNO4wlU='"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        let csp = super::content_security_policy("<p>no script</p>");
        assert!(csp.contains("script-src 'none'"), "{csp}");
    }
}
