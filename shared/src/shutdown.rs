//! Shutdown, owned by one type (as in mini-redis): a [`ShutdownTrigger`] fires once, and every
//! [`Shutdown`] clone sees it. `startup` hands one to the server, which then stops accepting
//! connections and waits for in-flight requests to finish before
//! `Application::run_until_stopped` returns.
//!
//! In production the trigger is SIGTERM (what Cloud Run sends, 10 s before SIGKILL) or Ctrl-C;
//! tests fire it by hand.

use tokio::sync::watch;

/// Fires the shutdown. Dropping it without firing does not shut anything down.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// Waits for the shutdown. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl ShutdownTrigger {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once the trigger fires (at once if it already has).
    pub async fn wait(mut self) {
        // An error means the trigger was dropped unfired: then never resolve.
        if self.rx.wait_for(|fired| *fired).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// A shutdown fired by SIGTERM or SIGINT.
    pub fn on_signals() -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (trigger, shutdown) = ShutdownTrigger::new();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(
                signal = name,
                "shutting down: no new connections, finishing in-flight requests"
            );
            trigger.trigger();
        });
        Ok(shutdown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let (trigger, shutdown) = ShutdownTrigger::new();
        let other = shutdown.clone();
        assert!(!shutdown.is_triggered());
        let waiter = tokio::spawn(other.wait());
        trigger.trigger();
        waiter.await.unwrap();
        assert!(shutdown.is_triggered());
        shutdown.wait().await;
    }
}
