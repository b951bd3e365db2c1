//! The practice file store: a shared service of the workspace (like the search and the live
//! channel, not an app). Apps keep their own rows (task attachments now, the files app
//! later) and point at blobs here.
//!
//! - Blobs are content-addressed (SHA-256, lowercase hex) under the practice's `files/`
//!   directory (`Tenant::files_dir`), as `files/<first two hex digits>/<hash>`.
//! - A blob is written to a temp file in `files/` ([`Staged`], `.tmp-<random>`), fsynced,
//!   scanned by the caller, then renamed into place and the directory synced, inside the
//!   transaction that records it ([`Store::commit`]). A dropped [`Staged`] removes its temp
//!   file, so a refused upload leaves nothing behind.
//! - `file_blobs` in `platform.sqlite` keeps each blob's size and reference count. Whoever
//!   points at a blob holds one reference ([`Store::commit`] or [`retain`] in the same
//!   transaction as its row); [`release`] drops it; after that transaction committed,
//!   [`Store::collect`] deletes blobs no longer referenced, file first, then row. File
//!   operations happen inside write transactions, so a concurrent upload of the same
//!   content and a collection serialise on the database's write lock.
//! - The handle API (stage, commit, open, release, collect) is narrow on purpose: an
//!   S3-compatible object store can replace the directory without touching app code
//!   (DESIGN "Scale-out path").
//!
//! [`scan`] is the virus scanner (clamd) every upload passes before it is committed; without
//! a reachable clamd nothing is stored (DESIGN principle 5: fail closed).

pub mod scan;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::prelude::*;
use kollegium_tenants::{Tenant, UnixTime};
use sha2::{Digest, Sha256};

use crate::schema::file_blobs;

/// Default largest file, in bytes (25 MB).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;

/// Prefix of temp files in `files/` (never a blob name: blobs are hex).
pub const TEMP_PREFIX: &str = ".tmp-";

/// Age after which a temp file is taken for the leftover of an interrupted upload.
pub const STALE_TEMP_SECS: i64 = 6 * 3600;

/// How the file store and its scanner are set up for the node.
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// `host:port` of clamd's TCP socket; `None`: no scanner, every upload is refused.
    pub clamd_addr: Option<String>,
    /// How long one scan may take before the upload is refused.
    pub scan_timeout: Duration,
    /// Largest file, in bytes; larger ones are refused (413).
    pub max_file_bytes: u64,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self {
            clamd_addr: None,
            scan_timeout: Duration::from_secs(60),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

/// The node's file service, shared by the apps through [`crate::AppContext`]: the settings,
/// the scanner, and a [`Store`] per practice.
#[derive(Debug)]
pub struct FileService {
    pub settings: FileSettings,
    pub scanner: scan::Scanner,
}

impl FileService {
    pub fn new(settings: FileSettings) -> Self {
        Self {
            scanner: scan::Scanner::new(settings.clamd_addr.clone(), settings.scan_timeout),
            settings,
        }
    }

    /// The store of one practice.
    pub fn store(&self, tenant: &Tenant) -> Store {
        Store::new(tenant.files_dir())
    }
}

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// More bytes than the limit: nothing was kept.
    #[error("file larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("file store I/O: {0}")]
    Io(#[from] io::Error),
    #[error("file store database: {0}")]
    Db(#[from] diesel::result::Error),
}

/// A blob's name: the SHA-256 of its content, 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct BlobHash(String);

impl BlobHash {
    /// Parses a stored or requested hash; anything but 64 lowercase hex digits is refused
    /// (so a hash never becomes a path outside `files/`).
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn of(digest: &[u8]) -> Self {
        Self(hex::encode(digest))
    }
}

impl std::fmt::Display for BlobHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored blob: its hash and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub hash: BlobHash,
    pub size: u64,
}

/// One practice's file store (a directory now; see the module docs).
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join(&hash.0[..2]).join(&hash.0)
    }

    /// A new temp file in `files/` to write an upload into, at most `limit` bytes.
    pub fn stage(&self, limit: u64) -> Result<Staged, StoreError> {
        kollegium_tenants::perms::create_dir_all(&self.dir)?;
        let name = format!(
            "{TEMP_PREFIX}{}",
            kollegium_tenants::secrets::random_token(12)
        );
        let path = self.dir.join(name);
        let file = kollegium_tenants::perms::create_new_file(&path)?;
        Ok(Staged {
            path,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
            limit,
            committed: false,
        })
    }

    /// Removes temp files older than [`STALE_TEMP_SECS`] at `now` (uploads a crash or kill
    /// interrupted; a live upload's temp file is younger). Returns how many went.
    pub fn sweep_temp(&self, now: UnixTime) -> io::Result<usize> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut n = 0;
        for e in rd {
            let e = e?;
            if !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                continue;
            }
            let modified = e
                .metadata()?
                .modified()?
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            if now.saturating_sub(modified) > STALE_TEMP_SECS {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => n += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    /// Stores `bytes` in one go: stage, then [`Store::commit`] in the caller's transaction
    /// (no scan: for content the node made itself, and tests).
    pub fn put_bytes(
        &self,
        conn: &mut SqliteConnection,
        bytes: &[u8],
        now: UnixTime,
    ) -> Result<BlobRef, StoreError> {
        let mut staged = self.stage(u64::MAX)?;
        staged.write(bytes)?;
        staged.finish()?;
        self.commit(conn, staged, now)
    }

    /// Moves a finished staged file into place as its blob and takes one reference to it,
    /// in the caller's (write) transaction. Content already stored is not written twice.
    pub fn commit(
        &self,
        conn: &mut SqliteConnection,
        mut staged: Staged,
        now: UnixTime,
    ) -> Result<BlobRef, StoreError> {
        let hash = staged.finish()?;
        let size = staged.size;
        let target = self.path_of(&hash);
        let sub = self.dir.join(&hash.0[..2]);
        if !sub.exists() {
            kollegium_tenants::perms::create_dir(&sub).or_else(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })?;
            sync_dir(&self.dir)?;
        }
        // Same name, same content: renaming over an existing blob changes nothing.
        std::fs::rename(&staged.path, &target)?;
        staged.committed = true;
        sync_dir(&sub)?;
        let size_i = i64::try_from(size).unwrap_or(i64::MAX);
        diesel::insert_into(file_blobs::table)
            .values((
                file_blobs::hash.eq(hash.as_str()),
                file_blobs::size.eq(size_i),
                file_blobs::refs.eq(1),
                file_blobs::created_at.eq(now),
            ))
            .on_conflict(file_blobs::hash)
            .do_update()
            .set(file_blobs::refs.eq(file_blobs::refs + 1))
            .execute(conn)?;
        Ok(BlobRef { hash, size })
    }

    /// Opens a stored blob for reading (`NotFound` if it is not there).
    pub fn open(&self, hash: &BlobHash) -> io::Result<File> {
        File::open(self.path_of(hash))
    }

    /// Whether the blob's file is there.
    pub fn exists(&self, hash: &BlobHash) -> bool {
        self.path_of(hash).is_file()
    }

    /// Deletes `hash`'s blob if nothing references it any more: its file (and the
    /// directory entry synced), then its row. Run in a write transaction after the one that
    /// released the last reference committed. Returns whether it was deleted.
    pub fn collect(
        &self,
        conn: &mut SqliteConnection,
        hash: &BlobHash,
    ) -> Result<bool, StoreError> {
        let refs: Option<i64> = file_blobs::table
            .find(hash.as_str())
            .select(file_blobs::refs)
            .first(conn)
            .optional()?;
        if refs != Some(0) {
            return Ok(false);
        }
        match std::fs::remove_file(self.path_of(hash)) {
            Ok(()) => sync_dir(&self.dir.join(&hash.0[..2]))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        diesel::delete(file_blobs::table.find(hash.as_str())).execute(conn)?;
        Ok(true)
    }

    /// Collects every blob nothing references (left by a crash between a release and its
    /// collection).
    pub fn collect_all(&self, conn: &mut SqliteConnection) -> Result<usize, StoreError> {
        let hashes: Vec<String> = file_blobs::table
            .filter(file_blobs::refs.eq(0))
            .select(file_blobs::hash)
            .load(conn)?;
        let mut n = 0;
        for h in hashes.iter().filter_map(|h| BlobHash::parse(h)) {
            n += usize::from(self.collect(conn, &h)?);
        }
        Ok(n)
    }
}

/// Takes one more reference to a stored blob (a second row pointing at it), in the
/// caller's transaction. `false` if the blob is unknown.
pub fn retain(conn: &mut SqliteConnection, hash: &BlobHash) -> QueryResult<bool> {
    let n = diesel::update(file_blobs::table.find(hash.as_str()))
        .set(file_blobs::refs.eq(file_blobs::refs + 1))
        .execute(conn)?;
    Ok(n == 1)
}

/// Drops one reference to a blob, in the caller's transaction. Returns whether nothing
/// references it any more: then call [`Store::collect`] after the commit.
pub fn release(conn: &mut SqliteConnection, hash: &BlobHash) -> QueryResult<bool> {
    let refs: Option<i64> = diesel::update(
        file_blobs::table
            .find(hash.as_str())
            .filter(file_blobs::refs.gt(0)),
    )
    .set(file_blobs::refs.eq(file_blobs::refs - 1))
    .returning(file_blobs::refs)
    .get_result(conn)
    .optional()?;
    Ok(refs == Some(0))
}

/// The reference count of a blob, if it is stored.
pub fn refs(conn: &mut SqliteConnection, hash: &BlobHash) -> QueryResult<Option<i64>> {
    file_blobs::table
        .find(hash.as_str())
        .select(file_blobs::refs)
        .first(conn)
        .optional()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An upload on its way into the store: a temp file in `files/`, hashed as it is written.
/// Dropped without [`Store::commit`], its file is removed.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    size: u64,
    limit: u64,
    /// Set once the temp file was renamed into place (then there is nothing to remove).
    committed: bool,
}

impl Staged {
    /// Appends a chunk; refuses to go over the limit (the temp file goes with the drop).
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let n = chunk.len() as u64;
        if self.size.saturating_add(n) > self.limit {
            return Err(StoreError::TooLarge { limit: self.limit });
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("staged file already finished").into());
        };
        file.write_all(chunk)?;
        self.hasher.update(chunk);
        self.size += n;
        Ok(())
    }

    /// Flushes and fsyncs the temp file; its hash. Idempotent.
    pub fn finish(&mut self) -> Result<BlobHash, StoreError> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        Ok(BlobHash::of(&self.hasher.clone().finalize()))
    }

    /// Where the temp file is (for the scanner).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        self.file.take();
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::error!(error = %e, "cannot remove a temp file of the file store");
        }
    }
}
