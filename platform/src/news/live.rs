//! The news app's live events on the workspace's one channel (topic `news`, id 0). An event
//! carries no content, only that something changed (`{"type":"news.changed"}`): the page
//! then fetches what the member may see ([`super::routes`]), so no message reaches a member
//! outside its audience and nothing of one practice reaches another.

use std::sync::Arc;

use crate::app::AppContext;
use crate::live::{Audience, Payload, Topic};
use crate::members::MemberId;

const TOPIC: Topic = Topic {
    app: super::APP,
    id: 0,
};

/// "Something changed in the news": the same frame for everyone.
#[derive(Debug, Clone, Copy)]
pub struct Changed;

impl Payload for Changed {
    fn render(&self, _topic: Topic, _reader: i64) -> Option<String> {
        Some(r#"{"type":"news.changed"}"#.to_owned())
    }
}

/// A member's own state changed (read, hidden): their other pages follow.
pub fn changed_for(shared: &AppContext, slug: &str, member: MemberId) {
    shared
        .live
        .publish(slug, TOPIC, Audience::Members(vec![member.0]), Changed);
}

/// Watches the node's broadcasts: whenever entries were stored, every open page of every
/// practice hears that the news changed. `None` without a node feed.
pub fn spawn(shared: Arc<AppContext>) -> Option<tokio::task::JoinHandle<()>> {
    let mut changes = shared.broadcasts.as_ref()?.changes();
    Some(tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            shared.live.publish_everywhere(TOPIC, Changed);
        }
    }))
}
