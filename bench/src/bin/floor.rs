//! `floor`: the bare server the services are measured against. Same axum and Tokio (multi-thread
//! runtime) as the services; `POST /` reads the whole body and parses it as JSON, nothing else.

// The services' allocator, so that what is measured is what they run.
pipeline::use_mimalloc!();

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

async fn push(body: Bytes) -> impl IntoResponse {
    let (status, text) = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(_) => (StatusCode::OK, r#"{"outcome":"written"}"#),
        Err(_) => (StatusCode::BAD_REQUEST, r#"{"outcome":"invalid"}"#),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], text)
}

async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok","service":"floor"}"#,
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = bench::address_from_env();
    let app = Router::new()
        .route("/", post(push))
        .route("/healthz", get(healthz))
        // The services accept push bodies up to this size too.
        .layer(DefaultBodyLimit::max(pipeline::limits::MAX_PUSH_BODY_BYTES));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
