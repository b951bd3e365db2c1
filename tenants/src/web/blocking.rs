//! Blocking work (database calls, hashing) from request handlers, inside the request's log
//! span: what the work logs carries the request id, client address and practice of the
//! request that asked for it. Use [`block`] wherever a handler would call `web::block`.

use actix_web::error::BlockingError;

/// Runs `f` on actix's blocking thread pool within the caller's current span (and the
/// caller's subscriber, which matters where it is not the global one, as in tests).
pub async fn block<F, R>(f: F) -> Result<R, BlockingError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    actix_web::web::block(move || tracing::dispatcher::with_default(&dispatch, || span.in_scope(f)))
        .await
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing::Instrument;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[actix_web::test]
    async fn what_the_blocking_work_logs_carries_the_request_span() {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let span = tracing::info_span!("request", id = "req-4711");
        let got = block(|| {
            tracing::warn!("inside the blocking work");
            42
        })
        .instrument(span)
        .await
        .unwrap();
        assert_eq!(got, 42);
        // Without the span, as `web::block` alone would run it (the caller's subscriber
        // carried by hand, so that only the span is missing).
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        actix_web::web::block(move || {
            tracing::dispatcher::with_default(&dispatch, || tracing::warn!("without the span"))
        })
        .instrument(tracing::info_span!("request", id = "req-0815"))
        .await
        .unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle} not logged: {text}"))
                .to_owned()
        };
        assert!(
            line("inside the blocking work").contains("req-4711"),
            "{text}"
        );
        assert!(!line("without the span").contains("req-0815"), "{text}");
    }
}
