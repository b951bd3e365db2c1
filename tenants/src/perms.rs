//! Owner-only file modes for everything under the data directory.
//!
//! The data directory holds practice databases (accounts, app content, mail), wrapped secrets,
//! outbox mail and search indexes: nothing in it is for other users of the machine.
//! Directories are created 0700 and files 0600, whatever the umask the process was started
//! with:
//! - [`restrict_umask`] sets the process umask to 077 at start, so files that libraries
//!   create (tantivy's index files, SQLite's `-wal`/`-shm`) are owner-only as well;
//! - code that creates a directory or file itself says the mode explicitly
//!   ([`create_dir`], [`create_dir_all`], [`create_new_file`], [`precreate_file`]);
//!   SQLite creates `-wal` and `-shm` with the mode of the main database file, so the
//!   main file is created 0600 before SQLite opens it;
//! - at start, [`tighten_tree`] removes group and other permissions from anything under
//!   the data directory (files from an older version or copied in by hand); the caller
//!   logs each change as a warning.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::secrets::SecretsError;

/// Mode of every directory under the data directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file under the data directory.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits of group and others: none may be set under the data directory.
const GROUP_OTHER: u32 = 0o077;

/// Sets the process umask to 077: whatever this process or its libraries create is
/// readable by its owner only. Call at process start (it is process-wide; calling it again
/// is harmless).
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(GROUP_OTHER));
}

/// Creates one directory with mode 0700.
pub fn create_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(path)
}

/// Creates a directory and its missing parents, each with mode 0700 (existing ones are
/// left as they are; [`tighten_tree`] fixes those at start).
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Creates a new file with mode 0600 for writing; fails if it exists.
pub fn create_new_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Creates `path` as an empty file with mode 0600 unless it exists (an existing file is
/// not touched). Used before SQLite opens a database: SQLite gives the `-wal` and `-shm`
/// files it creates the main file's mode.
pub fn precreate_file(path: &Path) -> io::Result<()> {
    match create_new_file(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A mode that was too wide and has been tightened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tightened {
    pub path: PathBuf,
    /// Permission bits before (e.g. 0o644).
    pub was: u32,
    /// Permission bits now (e.g. 0o600).
    pub now: u32,
}

/// Removes group and other permissions from `root` and everything under it (symbolic links
/// are neither followed nor changed). Returns what was changed. Entries that vanish while
/// the walk runs are skipped; any other failure is an error naming the path.
pub fn tighten_tree(root: &Path) -> Result<Vec<Tightened>, (PathBuf, io::Error)> {
    let mut changed = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err((path, e)),
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & GROUP_OTHER != 0 {
            let now = mode & !GROUP_OTHER;
            match fs::set_permissions(&path, fs::Permissions::from_mode(now)) {
                Ok(()) => changed.push(Tightened {
                    path: path.clone(),
                    was: mode,
                    now,
                }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err((path, e)),
            }
        }
        if meta.is_dir() {
            let entries = match fs::read_dir(&path) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err((path, e)),
            };
            for entry in entries {
                match entry {
                    Ok(entry) => stack.push(entry.path()),
                    Err(e) => return Err((path, e)),
                }
            }
        }
    }
    Ok(changed)
}

/// The start-up check of the data directory: [`tighten_tree`], each change logged as a
/// warning (the first few by path, then a count). Run it after the node key check, which
/// refuses a readable key instead of fixing it. A mode that cannot be checked or changed is
/// an error: the node does not start with data others may read.
pub fn tighten_data_dir(data_dir: &Path) -> Result<usize, SecretsError> {
    const LOGGED: usize = 20;
    let fixed = tighten_tree(data_dir).map_err(|(path, source)| SecretsError::DataMode {
        path: path.display().to_string(),
        source,
    })?;
    for t in fixed.iter().take(LOGGED) {
        tracing::warn!(path = %t.path.display(), was = %format!("{:04o}", t.was),
            now = %format!("{:04o}", t.now), "data file was readable by others; mode tightened");
    }
    if fixed.len() > LOGGED {
        tracing::warn!(
            more = fixed.len() - LOGGED,
            "more data files were readable by others; modes tightened"
        );
    }
    Ok(fixed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_entries_are_owner_only_and_wide_ones_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        create_dir_all(&root.join("tenants/praxis-a")).unwrap();
        assert_eq!(mode(&root), DIR_MODE);
        assert_eq!(mode(&root.join("tenants/praxis-a")), DIR_MODE);
        let db = root.join("tenants/praxis-a/idp.sqlite");
        precreate_file(&db).unwrap();
        assert_eq!(mode(&db), FILE_MODE);
        assert_eq!(fs::metadata(&db).unwrap().len(), 0);
        // An existing file keeps its content.
        fs::write(&db, b"x").unwrap();
        precreate_file(&db).unwrap();
        assert_eq!(fs::read(&db).unwrap(), b"x");
        assert!(create_new_file(&db).is_err(), "never overwrites");

        assert!(tighten_tree(&root).unwrap().is_empty(), "nothing to do");
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        let sub = root.join("tenants/praxis-a");
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o750)).unwrap();
        // A link to something outside is neither followed nor changed.
        let outside = dir.path().join("outside");
        fs::write(&outside, b"o").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, sub.join("link")).unwrap();

        let mut fixed = tighten_tree(&root).unwrap();
        fixed.sort_by(|a, b| a.path.cmp(&b.path));
        let seen: Vec<_> = fixed
            .iter()
            .map(|t| (t.path.clone(), t.was, t.now))
            .collect();
        assert_eq!(
            seen,
            vec![
                (root.clone(), 0o750, 0o700),
                (sub.clone(), 0o755, 0o700),
                (db.clone(), 0o644, 0o600),
            ]
        );
        assert_eq!(mode(&outside), 0o644);
        assert!(tighten_tree(&root).unwrap().is_empty());
        assert!(
            tighten_tree(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }
}
