//! The doorbell between request code and the delivery worker.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::slug::Slug;

/// Request code pokes it with the practice's slug after committing a queued mail; the
/// worker wakes up and delivers that practice's mail at once. Cheap and non-blocking.
#[derive(Debug, Default)]
pub struct MailSignal {
    dirty: Mutex<HashSet<String>>,
    notify: Notify,
}

impl MailSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `slug` as having fresh mail and wakes the worker.
    pub fn poke(&self, slug: &Slug) {
        if let Ok(mut d) = self.dirty.lock() {
            d.insert(slug.to_string());
        }
        self.notify.notify_one();
    }

    /// The slugs poked since the last call.
    pub fn take(&self) -> Vec<String> {
        self.dirty
            .lock()
            .map(|mut d| d.drain().collect())
            .unwrap_or_default()
    }

    /// Waits for the next poke (returns at once if one came since the last wait).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pokes_are_collected_and_wake_the_waiter() {
        let s = MailSignal::new();
        let a = Slug::parse("praxis-a").unwrap();
        s.poke(&a);
        s.poke(&a);
        s.notified().await; // the stored permit: returns at once
        assert_eq!(s.take(), vec!["praxis-a".to_owned()]);
        assert!(s.take().is_empty());
    }
}
