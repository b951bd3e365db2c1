//! The file store on a temporary directory and `platform.sqlite`, no HTTP.

use diesel::SqliteConnection;
use sha2::{Digest, Sha256};

use super::*;
use crate::PLATFORM_DB;

fn setup() -> (tempfile::TempDir, SqliteConnection, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    let mut conn = kollegium_tenants::db::open_connection(&path).unwrap();
    kollegium_tenants::db::migrate(&mut conn, &PLATFORM_DB, &path).unwrap();
    let store = Store::new(dir.path().join("files"));
    (dir, conn, store)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            out.extend(
                names_in(&e.path())
                    .into_iter()
                    .map(|n| format!("{name}/{n}")),
            );
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

fn read(store: &Store, hash: &BlobHash) -> Vec<u8> {
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut store.open(hash).unwrap(), &mut v).unwrap();
    v
}

#[test]
fn put_names_the_blob_by_its_sha256_and_leaves_no_temp_file() {
    let (_d, mut conn, store) = setup();
    let b = store.put_bytes(&mut conn, b"Hygieneplan", 10).unwrap();
    let expected = hex::encode(Sha256::digest(b"Hygieneplan"));
    assert_eq!(b.hash.as_str(), expected);
    assert_eq!(b.size, 11);
    assert_eq!(read(&store, &b.hash), b"Hygieneplan");
    assert_eq!(
        names_in(store.dir()),
        vec![format!("{}/{expected}", &expected[..2])]
    );
    assert_eq!(refs(&mut conn, &b.hash).unwrap(), Some(1));
}

#[test]
fn the_same_content_twice_is_one_blob_with_two_references() {
    let (_d, mut conn, store) = setup();
    let a = store.put_bytes(&mut conn, b"gleich", 10).unwrap();
    let b = store.put_bytes(&mut conn, b"gleich", 11).unwrap();
    assert_eq!(a, b);
    assert_eq!(refs(&mut conn, &a.hash).unwrap(), Some(2));
    assert_eq!(names_in(store.dir()).len(), 1);

    // Releasing one keeps the blob; collecting does nothing while it is referenced.
    assert!(!release(&mut conn, &a.hash).unwrap());
    assert!(!store.collect(&mut conn, &a.hash).unwrap());
    assert_eq!(read(&store, &a.hash), b"gleich");

    // The last release: collected, file and row gone.
    assert!(release(&mut conn, &a.hash).unwrap());
    assert!(store.exists(&a.hash), "deleted only when collected");
    assert!(store.collect(&mut conn, &a.hash).unwrap());
    assert!(!store.exists(&a.hash));
    assert_eq!(refs(&mut conn, &a.hash).unwrap(), None);
    assert!(
        names_in(store.dir())
            .iter()
            .all(|n| !n.ends_with(a.hash.as_str()))
    );
    // Releasing an unknown blob changes nothing.
    assert!(!release(&mut conn, &a.hash).unwrap());
}

#[test]
fn over_the_limit_is_refused_and_the_temp_file_removed() {
    let (_d, _conn, store) = setup();
    let mut s = store.stage(10).unwrap();
    s.write(b"12345").unwrap();
    s.write(b"67890").unwrap();
    let e = s.write(b"1").unwrap_err();
    assert!(matches!(e, StoreError::TooLarge { limit: 10 }));
    assert_eq!(names_in(store.dir()).len(), 1, "the temp file while staged");
    drop(s);
    assert!(names_in(store.dir()).is_empty());
}

#[test]
fn a_staged_file_dropped_without_commit_leaves_nothing() {
    let (_d, mut conn, store) = setup();
    let mut s = store.stage(1000).unwrap();
    s.write(b"abgelehnt").unwrap();
    let path = s.path().to_path_buf();
    assert!(
        path.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(TEMP_PREFIX)
    );
    assert_eq!(path.parent().unwrap(), store.dir());
    s.finish().unwrap();
    drop(s);
    assert!(!path.exists());
    assert!(names_in(store.dir()).is_empty());
    assert_eq!(store.collect_all(&mut conn).unwrap(), 0);
}

#[test]
fn collect_all_removes_what_a_crash_left_unreferenced() {
    let (_d, mut conn, store) = setup();
    let a = store.put_bytes(&mut conn, b"eins", 1).unwrap();
    let b = store.put_bytes(&mut conn, b"zwei", 1).unwrap();
    assert!(release(&mut conn, &a.hash).unwrap());
    assert_eq!(store.collect_all(&mut conn).unwrap(), 1);
    assert!(!store.exists(&a.hash));
    assert!(store.exists(&b.hash));
}

#[test]
fn retain_adds_a_reference_to_a_known_blob_only() {
    let (_d, mut conn, store) = setup();
    let a = store.put_bytes(&mut conn, b"geteilt", 1).unwrap();
    assert!(retain(&mut conn, &a.hash).unwrap());
    assert_eq!(refs(&mut conn, &a.hash).unwrap(), Some(2));
    let unknown = BlobHash::parse(&"0".repeat(64)).unwrap();
    assert!(!retain(&mut conn, &unknown).unwrap());
}

#[test]
fn hashes_are_parsed_strictly() {
    assert!(BlobHash::parse(&"a".repeat(64)).is_some());
    for bad in [
        "".to_owned(),
        "A".repeat(64),
        "a".repeat(63),
        "a".repeat(65),
        format!("../{}", "a".repeat(61)),
        format!("{}/", "a".repeat(63)),
    ] {
        assert!(BlobHash::parse(&bad).is_none(), "{bad}");
    }
}

#[test]
fn temp_files_of_interrupted_uploads_are_swept_when_stale() {
    let (_d, _conn, store) = setup();
    let s = store.stage(100).unwrap();
    let path = s.path().to_path_buf();
    std::mem::forget(s); // as if the process died mid-upload
    let modified = std::fs::metadata(&path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(store.sweep_temp(modified + 60).unwrap(), 0, "young: kept");
    assert!(path.exists());
    assert_eq!(store.sweep_temp(modified + STALE_TEMP_SECS + 1).unwrap(), 1);
    assert!(!path.exists());
}
