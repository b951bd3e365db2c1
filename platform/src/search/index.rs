//! The search index of one practice: one tantivy index for the documents of every app,
//! each carrying its kind and permission key ([`super::doc`]); schema, German-friendly
//! tokenizer, batch writes, and queries restricted to what a reader may read.
//!
//! One index per practice, not one per app (see `ARCHITECTURE.md`, "One search"): every
//! open index costs memory maps, descriptors and, while written, a writer with its threads,
//! and every commit costs tantivy a new segment however small the batch, so one index per
//! app would multiply both by the number of apps for each practice.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tantivy::collector::TopDocs;
use tantivy::columnar::{ColumnValues, StrColumn};
use tantivy::directory::MmapDirectory;
use tantivy::directory::error::LockError;
use tantivy::indexer::IndexWriterOptions;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader,
    TantivyDocument, TantivyError, Term, doc,
};

use super::SearchError;
use super::doc::{DocRef, Kind, PermKey};
use kollegium_tenants::{Tenant, UnixTime};

/// Name under which the text tokenizer is registered.
pub const TOKENIZER: &str = "kollegium_de";
/// Smallest writer heap tantivy accepts (15 MB), for its one indexing thread. tantivy
/// sizes each new segment's term table from it (2^19 slots, zeroed) and frees it when the
/// segment is written; a commit ends the segment, so that happens once per batch even with
/// a kept writer, and a writer waiting for the next batch holds none of it.
const WRITER_HEAP_BYTES: usize = 15_000_000;
/// Open indexes kept at most (readers of busy practices).
pub const CACHE_CAP: usize = 16;
/// Terms of a query used at most.
const MAX_TERMS: usize = 16;
/// Bytes of a document's text the highlighter looks at (its fragment is the whole text, so
/// every match is marked; chat messages have at most 10,000 characters).
const HIGHLIGHT_BYTES: usize = 64 * 1024;

/// The index's directory under the practice's `index/`.
pub const DIR: &str = "search";
/// Where earlier versions kept an index (chat's own, `index/chat/`): removed when the index
/// is built anew in [`DIR`].
pub const LEGACY_DIRS: &[&str] = &["chat"];

/// `data/tenants/<slug>/index/search/`
pub fn dir(tenant: &Tenant) -> PathBuf {
    tenant.index_dir().join(DIR)
}

/// What a directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDisk {
    /// No index (never built, or lost).
    Missing,
    /// An index with this version's schema.
    Current,
    /// An index of another schema (an earlier version), or one whose metadata cannot be
    /// read: the index is a cache, so it is rebuilt from the database.
    Stale,
}

/// What `dir` holds, judged by its `meta.json` (the schema tantivy stored with it). An
/// error only if the file exists but cannot be read (nothing is judged stale on a passing
/// I/O error).
pub fn on_disk(dir: &Path) -> std::io::Result<OnDisk> {
    let bytes = match std::fs::read(dir.join("meta.json")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OnDisk::Missing),
        Err(e) => return Err(e),
    };
    let Ok(meta) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Ok(OnDisk::Stale);
    };
    // This version's schema as tantivy stores it, built once.
    static OURS: std::sync::LazyLock<Option<serde_json::Value>> =
        std::sync::LazyLock::new(|| serde_json::to_value(schema().0).ok());
    Ok(match OURS.as_ref() {
        Some(ours) if meta.get("schema") == Some(ours) => OnDisk::Current,
        _ => OnDisk::Stale,
    })
}

/// Whether a usable index (this version's schema) is in `dir`. A missing or stale one is
/// (re)built from the database by the indexer.
pub fn exists(dir: &Path) -> bool {
    matches!(on_disk(dir), Ok(OnDisk::Current))
}

/// Removes what earlier versions left next to `dir` ([`LEGACY_DIRS`]): those indexes are
/// caches of the database like this one.
fn remove_legacy(dir: &Path) {
    let Some(root) = dir.parent() else {
        return;
    };
    for name in LEGACY_DIRS {
        let old = root.join(name);
        if old.exists() {
            match std::fs::remove_dir_all(&old) {
                Ok(()) => {
                    tracing::info!(dir = %old.display(), "removed an index of an earlier version")
                }
                Err(e) => {
                    tracing::warn!(dir = %old.display(), error = %e, "removing an index of an earlier version failed")
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    /// `<kind>:<id>`, the term a document is replaced and removed by.
    uid: Field,
    kind: Field,
    id: Field,
    /// The permission key (`room:5`).
    key: Field,
    author: Field,
    title: Field,
    body: Field,
    created_at: Field,
}

fn schema() -> (Schema, Fields) {
    let text = |option| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(option),
        )
    };
    let mut b = Schema::builder();
    let uid = b.add_text_field("uid", STRING);
    let kind = b.add_text_field("kind", STRING | FAST);
    let id = b.add_u64_field("id", FAST);
    let key = b.add_text_field("key", STRING);
    let author = b.add_u64_field("author", INDEXED | FAST);
    let title = b.add_text_field("title", text(IndexRecordOption::WithFreqsAndPositions));
    let body = b.add_text_field("body", text(IndexRecordOption::WithFreqsAndPositions));
    let created_at = b.add_i64_field("created_at", INDEXED | FAST);
    (
        b.build(),
        Fields {
            uid,
            kind,
            id,
            key,
            author,
            title,
            body,
            created_at,
        },
    )
}

/// Words split at non-alphanumerics, lowercased, folded to ASCII ("Ärztin" → "arztin",
/// "Straße" → "strasse"), overlong tokens dropped.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(60))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// A document as the index holds it, produced by its app
/// ([`crate::app::SearchSource::documents`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub id: i64,
    /// What a reader must be allowed to read to see it (chat: its room).
    pub key: PermKey,
    /// Searched like the text; empty if the kind has none (chat messages).
    pub title: String,
    pub body: String,
    pub author: Option<i64>,
    pub created_at: UnixTime,
}

impl Entry {
    pub fn doc(&self) -> DocRef {
        DocRef::new(self.kind, self.id)
    }
}

/// One change to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// (Re)index a document.
    Put(Entry),
    /// Remove a document (deleted, purged, or never there).
    Remove(DocRef),
}

impl Change {
    /// The document the change is about.
    pub fn doc(&self) -> DocRef {
        match self {
            Self::Put(e) => e.doc(),
            Self::Remove(d) => *d,
        }
    }

    /// Its id in the owning app (see [`Self::doc`] for the kind).
    pub fn id(&self) -> i64 {
        self.doc().id
    }
}

/// What a query may match of one kind: documents with one of `keys`.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub kind: Kind,
    pub keys: &'a [PermKey],
}

/// Hits of a query, best first, and what highlights them.
pub struct Found {
    pub docs: Vec<DocRef>,
    generator: Option<SnippetGenerator>,
}

impl Found {
    /// No hits.
    pub fn empty() -> Self {
        Self {
            docs: Vec::new(),
            generator: None,
        }
    }

    /// A snippet of `body` as HTML: every character escaped, matched words in `<mark>`.
    /// Short texts are shown whole; of long ones, a window around the first match.
    pub fn snippet_html(&self, body: &str) -> String {
        super::snippet::html(self.generator.as_ref(), body)
    }
}

type Writer = IndexWriter<TantivyDocument>;

/// One practice's open search index: its reader and, once something was written, its writer.
///
/// tantivy allows one writer per index directory (a lock file). The writer is opened by
/// the first [`Self::apply`] and kept for the next batches; a search never opens one. It
/// goes when the cache lets go of the index ([`Self::retire`]), when a batch fails, and
/// with the index.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    f: Fields,
    /// `None` before the first batch, after a failed one, and once retired.
    writer: Mutex<Option<Writer>>,
    /// Set by [`Self::retire`]: a handle the cache no longer holds keeps no writer after a
    /// batch, so it cannot keep the directory lock from the index's next handle.
    retired: AtomicBool,
    writers_opened: AtomicU64,
    #[cfg(test)]
    fail_next_commit: AtomicBool,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("retired", &self.retired.load(Ordering::Relaxed))
            .field("writers_opened", &self.writers_opened())
            .finish_non_exhaustive()
    }
}

impl Drop for SearchIndex {
    /// Normally the cache retired the index before (off the async threads); this closes a
    /// writer that is left all the same.
    fn drop(&mut self) {
        let w = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = w {
            close(w);
        }
    }
}

/// Closes a writer cleanly: its indexing thread ends and merges in progress finish.
/// Blocking.
fn close(w: Writer) {
    if let Err(e) = w.wait_merging_threads() {
        tracing::warn!(error = %e, "closing the search index writer failed");
    }
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it (and the directory) if `create`. `None` if
    /// there is no usable index and `create` is false. Creating replaces an index of
    /// another schema (it is a cache: the caller queues everything for it) and removes the
    /// indexes earlier versions kept beside it.
    pub fn open(dir: &Path, create: bool) -> Result<Option<Self>, SearchError> {
        match on_disk(dir)? {
            OnDisk::Current => {}
            OnDisk::Missing | OnDisk::Stale if !create => return Ok(None),
            found => {
                if found == OnDisk::Stale {
                    tracing::info!(dir = %dir.display(), "replacing a search index of another schema");
                    std::fs::remove_dir_all(dir)?;
                }
                kollegium_tenants::perms::create_dir_all(dir)?;
                remove_legacy(dir);
            }
        }
        let (schema, f) = schema();
        let index = Index::open_or_create(MmapDirectory::open(dir)?, schema)?;
        index.tokenizers().register(TOKENIZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(1)
            .try_into()?;
        Ok(Some(Self {
            index,
            reader,
            f,
            writer: Mutex::new(None),
            retired: AtomicBool::new(false),
            writers_opened: AtomicU64::new(0),
            #[cfg(test)]
            fail_next_commit: AtomicBool::new(false),
        }))
    }

    /// Applies `changes` in one commit; the reader sees them when this returns. Opens the
    /// writer if there is none yet and keeps it for the next batch. Merges the commit
    /// starts run on in the writer's merge thread; nobody waits for them here.
    ///
    /// On an error the writer is dropped with whatever the batch had added (nothing of it
    /// was committed), so the next batch starts from the last commit with a fresh writer.
    /// [`SearchError::WriterBusy`] if another handle of this directory holds the writer.
    pub fn apply(&self, changes: &[Change]) -> Result<(), SearchError> {
        let mut slot = self.writer_slot();
        let w = match slot.take() {
            Some(w) => w,
            None => self.open_writer()?,
        };
        let w = slot.insert(w);
        match self.write(w, changes) {
            Ok(()) => {
                if self.retired.load(Ordering::SeqCst)
                    && let Some(w) = slot.take()
                {
                    drop(slot);
                    close(w);
                }
            }
            Err(e) => {
                // Dropping the writer rolls back to the last commit (tantivy discards the
                // uncommitted segments and releases the lock).
                drop(slot.take());
                return Err(e);
            }
        }
        self.reader.reload()?;
        Ok(())
    }

    /// Lets go of the writer, after its merges finished; the cache no longer holds this
    /// handle. A batch still applied through it writes with a writer of its own that is
    /// closed after that batch. Blocking: waits for a batch in hand and for merges.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        let w = self.writer_slot().take();
        if let Some(w) = w {
            close(w);
        }
    }

    /// Writers this handle opened so far (one, unless a batch failed or it was retired).
    pub fn writers_opened(&self) -> u64 {
        self.writers_opened.load(Ordering::Relaxed)
    }

    /// Whether this handle holds the index's writer right now.
    pub fn has_writer(&self) -> bool {
        self.writer_slot().is_some()
    }

    /// Makes the next [`Self::apply`] fail before its commit, as an I/O error would.
    #[cfg(test)]
    pub(crate) fn fail_next_commit(&self) {
        self.fail_next_commit.store(true, Ordering::SeqCst);
    }

    /// The writer slot. A batch that panicked leaves a poisoned lock: its writer may hold
    /// half a batch, so it is dropped.
    fn writer_slot(&self) -> MutexGuard<'_, Option<Writer>> {
        match self.writer.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                let mut g = poisoned.into_inner();
                drop(g.take());
                self.writer.clear_poison();
                g
            }
        }
    }

    /// The index's writer with the smallest heap, one indexing and one merge thread.
    fn open_writer(&self) -> Result<Writer, SearchError> {
        let options = IndexWriterOptions::builder()
            .memory_budget_per_thread(WRITER_HEAP_BYTES)
            .num_worker_threads(1)
            .num_merge_threads(1)
            .build();
        match self.index.writer_with_options(options) {
            Ok(w) => {
                self.writers_opened.fetch_add(1, Ordering::Relaxed);
                Ok(w)
            }
            Err(TantivyError::LockFailure(LockError::LockBusy, _)) => Err(SearchError::WriterBusy),
            Err(e) => Err(e.into()),
        }
    }

    /// One batch through `w`, committed.
    fn write(&self, w: &mut Writer, changes: &[Change]) -> Result<(), SearchError> {
        let f = self.f;
        for c in changes {
            let uid = c.doc().uid();
            w.delete_term(Term::from_field_text(f.uid, &uid));
            if let Change::Put(e) = c {
                w.add_document(doc!(
                    f.uid => uid,
                    f.kind => e.kind,
                    f.id => e.id as u64,
                    f.key => e.key.to_string(),
                    f.author => e.author.unwrap_or(0) as u64,
                    f.title => e.title.as_str(),
                    f.body => e.body.as_str(),
                    f.created_at => e.created_at,
                ))?;
            }
        }
        #[cfg(test)]
        if self.fail_next_commit.swap(false, Ordering::SeqCst) {
            return Err(std::io::Error::other("simulated commit failure").into());
        }
        w.commit()?;
        Ok(())
    }

    /// The query terms of user input: analysed like message text, so any input (quotes,
    /// colons, brackets) is just words; every term must match.
    pub fn terms(text: &str) -> Vec<String> {
        // Boolean operators people type out of habit are not words to look for.
        let words: Vec<&str> = text
            .split_whitespace()
            .filter(|w| !matches!(*w, "AND" | "OR" | "NOT" | "&&" | "||"))
            .collect();
        let text = words.join(" ");
        let mut a = analyzer();
        let mut stream = a.token_stream(&text);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token().text.clone();
            if seen.insert(t.clone()) {
                out.push(t);
            }
            if out.len() >= MAX_TERMS {
                break;
            }
        }
        out
    }

    /// Documents within `scopes` (of those kinds, with one of their keys) that contain
    /// every word of `text` in their title or text, best first (relevance with a boost for
    /// recent documents), at most `limit`.
    pub fn search(
        &self,
        text: &str,
        scopes: &[Scope<'_>],
        limit: usize,
        now: UnixTime,
    ) -> Result<Found, SearchError> {
        let terms = Self::terms(text);
        let scopes: Vec<&Scope<'_>> = scopes.iter().filter(|s| !s.keys.is_empty()).collect();
        if terms.is_empty() || scopes.is_empty() || limit == 0 {
            return Ok(Found::empty());
        }
        // Another process step (the worker) may have committed since the last search.
        self.reader.reload()?;
        let f = self.f;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let in_field = |field: Field, option| -> Box<dyn Query> {
                    Box::new(TermQuery::new(Term::from_field_text(field, t), option))
                };
                let either: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
                    (
                        Occur::Should,
                        in_field(f.body, IndexRecordOption::WithFreqsAndPositions),
                    ),
                    (
                        Occur::Should,
                        in_field(f.title, IndexRecordOption::WithFreqs),
                    ),
                ]));
                (Occur::Must, either)
            })
            .collect();
        // What the reader may read: per kind, one of the keys its app listed. A filter
        // only: it adds nothing to the score.
        let allowed: Vec<(Occur, Box<dyn Query>)> = scopes
            .iter()
            .map(|s| {
                let kind: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(f.kind, s.kind),
                    IndexRecordOption::Basic,
                ));
                let keys: Box<dyn Query> = Box::new(TermSetQuery::new(
                    s.keys
                        .iter()
                        .map(|k| Term::from_field_text(f.key, &k.to_string())),
                ));
                let q: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
                    (Occur::Must, kind),
                    (Occur::Must, keys),
                ]));
                (Occur::Should, q)
            })
            .collect();
        clauses.push((
            Occur::Must,
            Box::new(ConstScoreQuery::new(
                Box::new(BooleanQuery::new(allowed)),
                0.0,
            )),
        ));
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let collector = TopDocs::with_limit(limit).tweak_score(move |seg: &SegmentReader| {
            let created = seg
                .fast_fields()
                .i64("created_at")
                .ok()
                .map(|c| c.first_or_default_col(0));
            move |doc: DocId, score: Score| {
                let t = created.as_ref().map_or(now, |c| c.get_val(doc));
                let age_days = (now - t).max(0) as f32 / 86_400.0;
                // Today counts double, a week ago one and a half, old documents once.
                score * (1.0 + 1.0 / (1.0 + age_days / 7.0))
            }
        });
        let hits: Vec<(Score, DocAddress)> = searcher.search(&query, &collector)?;
        let mut docs = Vec::with_capacity(hits.len());
        type Columns = (Arc<dyn ColumnValues<u64>>, Option<StrColumn>);
        let mut columns: HashMap<u32, Columns> = HashMap::new();
        let mut kind_text = String::new();
        for (_, addr) in hits {
            let (ids, kinds) = match columns.entry(addr.segment_ord) {
                MapEntry::Occupied(e) => e.into_mut(),
                MapEntry::Vacant(v) => {
                    let fast = searcher.segment_reader(addr.segment_ord).fast_fields();
                    v.insert((fast.u64("id")?.first_or_default_col(0), fast.str("kind")?))
                }
            };
            let id = ids.get_val(addr.doc_id) as i64;
            let Some(ord) = kinds.as_ref().and_then(|k| k.term_ords(addr.doc_id).next()) else {
                continue;
            };
            kind_text.clear();
            if let Some(k) = kinds {
                k.ord_to_str(ord, &mut kind_text)?;
            }
            // The kind as the scopes name it (a hit is always of one of them).
            let Some(kind) = scopes.iter().map(|s| s.kind).find(|k| *k == kind_text) else {
                continue;
            };
            if id > 0 {
                docs.push(DocRef::new(kind, id));
            }
        }
        let mut generator = SnippetGenerator::create(&searcher, &query, f.body)?;
        generator.set_max_num_chars(HIGHLIGHT_BYTES);
        Ok(Found {
            docs,
            generator: Some(generator),
        })
    }

    /// Documents in the index (tests, diagnostics).
    pub fn num_docs(&self) -> Result<u64, SearchError> {
        self.reader.reload()?;
        Ok(self.reader.searcher().num_docs())
    }
}

struct Cached {
    index: Arc<SearchIndex>,
    used: Instant,
}

/// A small LRU of open search indexes, keyed by directory. Entries unused for a while are
/// dropped by [`Indexes::evict_idle`] (memory maps, descriptors and the writer with its
/// threads go with them).
///
/// Whatever leaves the cache is [retired](SearchIndex::retire) after the cache's lock was
/// released: its writer is closed then, even while a search still holds the handle, so
/// the next handle of the same directory can open one.
pub struct Indexes {
    open: Mutex<HashMap<PathBuf, Cached>>,
    cap: usize,
}

impl std::fmt::Debug for Indexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Indexes")
            .field("open", &self.len())
            .finish()
    }
}

impl Indexes {
    pub fn new(cap: usize) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            cap: cap.max(1),
        }
    }

    /// The index in `dir` (see [`SearchIndex::open`]). Blocking; may close the writer of the
    /// index it pushes out of the cache.
    pub fn get(&self, dir: &Path, create: bool) -> Result<Option<Arc<SearchIndex>>, SearchError> {
        if let Ok(mut open) = self.open.lock()
            && let Some(c) = open.get_mut(dir)
        {
            c.used = Instant::now();
            return Ok(Some(c.index.clone()));
        }
        // Open outside the lock: it touches the disk.
        let Some(fresh) = SearchIndex::open(dir, create)? else {
            return Ok(None);
        };
        let fresh = Arc::new(fresh);
        let mut victims = Vec::new();
        let handle = match self.open.lock() {
            Ok(mut open) => {
                // Another thread may have opened it meanwhile: theirs wins, ours goes
                // before it ever wrote.
                let entry = open.entry(dir.to_path_buf()).or_insert_with(|| Cached {
                    index: fresh.clone(),
                    used: Instant::now(),
                });
                entry.used = Instant::now();
                let handle = entry.index.clone();
                while open.len() > self.cap {
                    let Some(victim) = open
                        .iter()
                        .min_by_key(|(_, c)| c.used)
                        .map(|(k, _)| k.clone())
                    else {
                        break;
                    };
                    victims.extend(open.remove(&victim).map(|c| c.index));
                }
                handle
            }
            Err(_) => {
                // Not cached: it must not keep a writer beyond a batch.
                fresh.retire();
                fresh
            }
        };
        retire(victims);
        Ok(Some(handle))
    }

    /// Forgets the index in `dir` (it is being rebuilt), closing its writer. Blocking.
    pub fn forget(&self, dir: &Path) {
        let gone = self.open.lock().ok().and_then(|mut o| o.remove(dir));
        retire(gone.map(|c| c.index));
    }

    /// Drops indexes unused for `idle`, closing their writers. Returns how many. Blocking.
    pub fn evict_idle(&self, idle: Duration) -> usize {
        let gone: Vec<Arc<SearchIndex>> = match self.open.lock() {
            Ok(mut open) => {
                let stale: Vec<PathBuf> = open
                    .iter()
                    .filter(|(_, c)| c.used.elapsed() >= idle)
                    .map(|(k, _)| k.clone())
                    .collect();
                stale
                    .iter()
                    .filter_map(|k| open.remove(k))
                    .map(|c| c.index)
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        let n = gone.len();
        retire(gone);
        n
    }

    /// Drops every index, closing the writers (the worker stops). Blocking.
    pub fn close_all(&self) {
        let gone: Vec<Arc<SearchIndex>> = match self.open.lock() {
            Ok(mut open) => open.drain().map(|(_, c)| c.index).collect(),
            Err(_) => Vec::new(),
        };
        retire(gone);
    }

    /// Indexes open right now.
    pub fn len(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Retires indexes that left the cache (called without the cache's lock).
fn retire(gone: impl IntoIterator<Item = Arc<SearchIndex>>) {
    for index in gone {
        index.retire();
    }
}
