//! The HTTP/1.1 server loop: accept, serve each connection with hyper, stop gracefully.
//!
//! In place of `axum::serve` for one reason: hyper refuses a request with more than 100 headers
//! (431) before any handler runs, and an unwrapped push carries each of up to 100 attributes as a
//! header. Here the limit is [`limits::MAX_REQUEST_HEADERS`]. A connection that does not send a
//! whole request head within [`limits::HEADER_READ_TIMEOUT`] (of opening, or of its previous
//! response: idle keep-alive) is closed. On shutdown the listener closes, every connection
//! finishes the request it is serving and closes, and this returns then, or after
//! [`limits::SHUTDOWN_DRAIN`] at the latest, within Cloud Run's grace (Pub/Sub redelivers
//! whatever is not answered).

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::limits;
use crate::shutdown::Shutdown;

/// Serves `router` on `listener` until `shutdown` fires, then drains the open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.max_headers(limits::MAX_REQUEST_HEADERS)
        // Without a timer hyper applies no header-read timeout at all.
        .timer(TokioTimer::new())
        .header_read_timeout(limits::HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away mid-request is not the server's failure.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(limits::SHUTDOWN_DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight requests still open after {:?}: stopping anyway (Pub/Sub redelivers them)",
            limits::SHUTDOWN_DRAIN
        );
    }
    Ok(())
}
