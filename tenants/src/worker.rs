//! The handle of a node background worker (the job worker, the directory worker): one tokio
//! task with a stop flag and a doorbell, stopped after the work in hand or aborted after a
//! grace period.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// What the worker's task watches: the stop flag (checked between units of work) and the
/// doorbell, rung by [`Worker::kick`] and by [`Worker::stop`].
#[derive(Clone, Default)]
pub struct Control {
    pub stopping: Arc<AtomicBool>,
    pub wake: Arc<Notify>,
}

/// A running background worker.
pub struct Worker {
    name: &'static str,
    control: Control,
    join: JoinHandle<()>,
}

impl Worker {
    /// Starts `run` on the current tokio runtime.
    pub fn spawn<F, Fut>(name: &'static str, run: F) -> Self
    where
        F: FnOnce(Control) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let control = Control::default();
        let join = tokio::spawn(run(control.clone()));
        Self {
            name,
            control,
            join,
        }
    }

    /// Runs a round now (e.g. after a test moved the clock).
    pub fn kick(&self) {
        self.control.wake.notify_one();
    }

    /// Stops the worker after the work in hand; aborts it after `grace`.
    pub async fn stop(self, grace: Duration) {
        self.control.stopping.store(true, Ordering::SeqCst);
        self.control.wake.notify_one();
        let abort = self.join.abort_handle();
        if tokio::time::timeout(grace, self.join).await.is_err() {
            abort.abort();
            tracing::warn!(worker = self.name, "worker did not stop in time; aborted");
        }
    }
}
