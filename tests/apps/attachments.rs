//! A member's card attachments as a browser handles them: the card page's upload form
//! (multipart, its action carries the CSRF token), the download links, the delete
//! confirmation; and what the practice's file store then holds.

use diesel::prelude::*;
use kollegium_platform::PLATFORM_DB;
use kollegium_platform::schema::{file_blobs, task_attachments};

use crate::apps::chat::Member;
use crate::harness::{TestApp, files_under};

/// A `multipart/form-data` body with one file part `file`: (content type, body).
pub fn multipart(filename: &str, content_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----kollegium-test-7d1f0a";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The upload form's action on a card page (with its CSRF token), if the page has one.
pub fn upload_action(card_html: &str) -> Option<String> {
    let marker = "enctype=\"multipart/form-data\" action=\"";
    let start = card_html.find(marker)? + marker.len();
    let end = card_html[start..].find('"')?;
    Some(
        card_html[start..start + end]
            .replace("&amp;", "&")
            .replace("&#38;", "&"),
    )
}

/// The attachment ids a card page links to for download, in order.
pub fn attachment_ids(card_html: &str) -> Vec<i64> {
    card_html
        .split("href=\"/tasks/attachments/")
        .skip(1)
        .filter_map(|s| {
            let (id, rest) = s.split_once('"')?;
            rest.starts_with(" download").then(|| id.parse().ok())?
        })
        .collect()
}

impl Member<'_> {
    /// Sends a file through `action` as the upload form does.
    pub async fn upload_to(
        &self,
        action: &str,
        name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> reqwest::Response {
        let (ct, body) = multipart(name, content_type, bytes);
        self.client
            .post(self.url(action))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Opens the card page and uploads a file with its form.
    pub async fn attach(
        &self,
        card: i64,
        name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> reqwest::Response {
        let page = self.page(&format!("/tasks/cards/{card}")).await;
        let action = upload_action(&page).expect("the card page has an upload form");
        self.upload_to(&action, name, content_type, bytes).await
    }

    /// The attachments a card page lists (their ids).
    pub async fn attachments(&self, card: i64) -> Vec<i64> {
        attachment_ids(&self.page(&format!("/tasks/cards/{card}")).await)
    }

    /// Deletes an attachment through its confirmation page.
    pub async fn delete_attachment(&self, id: i64) -> reqwest::Response {
        let confirm = format!("/tasks/attachments/{id}/delete");
        self.form(&confirm, &confirm, &[("confirm", "1")]).await
    }
}

/// What a practice's file store holds: files under `files/` (temp files included),
/// `file_blobs` rows and `task_attachments` rows.
#[derive(Debug, PartialEq, Eq)]
pub struct Stored {
    pub files: Vec<String>,
    pub blobs: i64,
    pub attachments: i64,
}

impl Stored {
    pub fn empty() -> Self {
        Self {
            files: Vec::new(),
            blobs: 0,
            attachments: 0,
        }
    }
}

impl TestApp {
    pub fn stored(&self, slug: &str) -> Stored {
        let tenant = self.tenant(slug);
        let mut files: Vec<String> = files_under(&tenant.files_dir())
            .into_iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut conn = tenant.conn(&PLATFORM_DB).unwrap();
        Stored {
            files,
            blobs: file_blobs::table.count().get_result(&mut *conn).unwrap(),
            attachments: task_attachments::table
                .count()
                .get_result(&mut *conn)
                .unwrap(),
        }
    }
}
