//! The power-loss file system's own rules (`tests/powerloss/`): what was fsynced survives a power
//! cut, what was not is forgotten, for file contents and for directory entries alike. The broker
//! tests in `power_loss.rs` rest on these rules.
//!
//! Mounting needs /dev/fuse and root: the tests that mount are `#[ignore]`d and CI runs them
//! with `cargo test --test power_loss_fs -- --ignored`.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;
#[allow(dead_code)] // the broker helpers serve power_loss.rs
mod powerloss;

use powerloss::model::Model;
use powerloss::PowerLossMount;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

fn mount() -> PowerLossMount {
    PowerLossMount::mount().expect("mount the power-loss file system (needs /dev/fuse and root)")
}

fn sync_dir(dir: &Path) {
    powerloss::fsync_dir(dir).expect("fsync directory");
}

fn read(path: &Path) -> Option<Vec<u8>> {
    fs::read(path).ok()
}

/// A file written and fsynced, its name made durable too.
fn durable_file(dir: &Path, name: &str, contents: &[u8]) {
    let mut f = File::create(dir.join(name)).expect("create");
    f.write_all(contents).expect("write");
    f.sync_all().expect("fsync");
    sync_dir(dir);
}

/// The rules on the model alone: runs everywhere, no FUSE needed.
#[test]
fn model_forgets_what_was_not_made_durable() {
    let mut m = Model::new();
    let owner = (0, 0);
    let root = powerloss::model::ROOT;
    let (a, _) = m
        .create(root, OsStr::new("a"), 0o644, owner)
        .expect("create");
    m.write(a, 0, b"kept").expect("write");
    m.sync(a).expect("fsync");
    m.sync(root).expect("fsyncdir");
    m.write(a, 4, b" and lost").expect("write");
    let (b, _) = m
        .create(root, OsStr::new("b"), 0o644, owner)
        .expect("create");
    m.write(b, 0, b"synced, name not").expect("write");
    m.sync(b).expect("fsync");
    let lost = m.lose_power();
    assert_eq!(m.read(a, 0, 100).expect("read"), b"kept");
    assert_eq!(m.lookup(root, OsStr::new("b")), Err(libc::ENOENT));
    assert_eq!((lost.files_reverted, lost.bytes_forgotten), (1, 9));
    assert_eq!(lost.inodes_dropped, 1);
}

#[test]
#[ignore = "needs /dev/fuse and root: cargo test --test power_loss -- --ignored"]
fn unsynced_writes_are_lost_synced_writes_kept() {
    let fs = mount();
    let dir = fs.path();
    durable_file(dir, "f", b"durable");
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .open(dir.join("f"))
        .expect("open");
    f.write_all(b" + unsynced").expect("append");
    let mut buf = [0u8; 18];
    f.read_exact_at(&mut buf, 0).expect("read");
    assert_eq!(&buf, b"durable + unsynced");
    fs.lose_power();
    let n = f.read_at(&mut buf, 0).expect("read after the power cut");
    assert_eq!(&buf[..n], b"durable");
    // an unsynced overwrite of the same size, read through the same descriptor: only a read
    // that bypasses the page cache sees the file system forget it
    OpenOptions::new()
        .write(true)
        .open(dir.join("f"))
        .expect("open")
        .write_all_at(b"DURABLE", 0)
        .expect("overwrite");
    f.read_exact_at(&mut buf[..7], 0).expect("read");
    assert_eq!(&buf[..7], b"DURABLE");
    let lost = fs.lose_power();
    assert_eq!(lost.files_reverted, 1);
    f.read_exact_at(&mut buf[..7], 0)
        .expect("read after the power cut");
    assert_eq!(&buf[..7], b"durable");
    drop(f);
    assert_eq!(read(&dir.join("f")).as_deref(), Some(&b"durable"[..]));

    // positional writes past the end, a truncate, fdatasync
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("f"))
        .expect("open");
    f.write_all_at(b"far", 10).expect("pwrite past the end");
    assert_eq!(
        read(&dir.join("f")).as_deref(),
        Some(&b"durable\0\0\0far"[..])
    );
    f.set_len(4).expect("ftruncate");
    f.sync_data().expect("fdatasync");
    f.write_all_at(b"zzzz", 0).expect("pwrite");
    drop(f);
    fs.lose_power();
    assert_eq!(
        read(&dir.join("f")).as_deref(),
        Some(&b"dura"[..]),
        "the synced truncate"
    );

    // fallocate with FALLOC_FL_KEEP_SIZE (the broker's preallocation) keeps the size
    let f = OpenOptions::new()
        .write(true)
        .open(dir.join("f"))
        .expect("open");
    // SAFETY: plain syscall on an open descriptor.
    let rc = unsafe {
        libc::fallocate(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            libc::FALLOC_FL_KEEP_SIZE,
            0,
            1 << 20,
        )
    };
    assert_eq!(rc, 0, "fallocate KEEP_SIZE");
    assert_eq!(f.metadata().expect("stat").len(), 4);
    let st = statvfs(dir);
    assert!(st.0 > st.1 && st.1 > 0, "statfs reports space: {st:?}");
}

fn statvfs(path: &Path) -> (u64, u64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid path and a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "statvfs");
    (st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)
}

#[test]
#[ignore = "needs /dev/fuse and root: cargo test --test power_loss -- --ignored"]
fn a_new_file_survives_only_once_its_directory_is_synced() {
    let fs = mount();
    let dir = fs.path();
    fs::create_dir(dir.join("sub")).expect("mkdir");
    let mut f = File::create(dir.join("sub/new")).expect("create");
    f.write_all(b"contents").expect("write");
    f.sync_all().expect("fsync the file, not its directory");
    drop(f);
    fs.lose_power();
    assert!(
        !dir.join("sub").exists(),
        "the directory's own entry was never synced"
    );

    fs::create_dir(dir.join("sub")).expect("mkdir");
    sync_dir(dir);
    let mut f = File::create(dir.join("sub/new")).expect("create");
    f.write_all(b"contents").expect("write");
    f.sync_all().expect("fsync");
    drop(f);
    fs.lose_power();
    assert!(dir.join("sub").is_dir());
    assert!(
        !dir.join("sub/new").exists(),
        "file synced, directory not: gone"
    );

    let mut f = File::create(dir.join("sub/new")).expect("create");
    f.write_all(b"contents").expect("write");
    f.sync_all().expect("fsync");
    sync_dir(&dir.join("sub"));
    drop(f);
    fs.lose_power();
    assert_eq!(
        read(&dir.join("sub/new")).as_deref(),
        Some(&b"contents"[..])
    );

    // a name synced before its contents: the file comes back empty
    File::create(dir.join("sub/empty"))
        .expect("create")
        .write_all(b"x")
        .expect("write");
    sync_dir(&dir.join("sub"));
    fs.lose_power();
    assert_eq!(read(&dir.join("sub/empty")).as_deref(), Some(&b""[..]));
    let names: BTreeSet<String> = fs::read_dir(dir.join("sub"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, BTreeSet::from(["empty".into(), "new".into()]));
}

#[test]
#[ignore = "needs /dev/fuse and root: cargo test --test power_loss -- --ignored"]
fn renames_and_unlinks_are_durable_only_with_the_directory() {
    let fs = mount();
    let dir = fs.path();
    durable_file(dir, "state", b"v1");
    // the atomic replacement pattern without the final directory sync
    let mut tmp = File::create(dir.join("state.tmp")).expect("create");
    tmp.write_all(b"v2").expect("write");
    tmp.sync_all().expect("fsync");
    drop(tmp);
    fs::rename(dir.join("state.tmp"), dir.join("state")).expect("rename over");
    assert_eq!(read(&dir.join("state")).as_deref(), Some(&b"v2"[..]));
    fs.lose_power();
    assert_eq!(
        read(&dir.join("state")).as_deref(),
        Some(&b"v1"[..]),
        "rename not synced"
    );
    assert!(!dir.join("state.tmp").exists());

    // ... and with it
    let mut tmp = File::create(dir.join("state.tmp")).expect("create");
    tmp.write_all(b"v2").expect("write");
    tmp.sync_all().expect("fsync");
    drop(tmp);
    fs::rename(dir.join("state.tmp"), dir.join("state")).expect("rename over");
    sync_dir(dir);
    fs.lose_power();
    assert_eq!(read(&dir.join("state")).as_deref(), Some(&b"v2"[..]));
    assert!(!dir.join("state.tmp").exists());

    // an unlink not synced comes back; a synced one does not
    fs::remove_file(dir.join("state")).expect("unlink");
    assert!(!dir.join("state").exists());
    fs.lose_power();
    assert_eq!(
        read(&dir.join("state")).as_deref(),
        Some(&b"v2"[..]),
        "unlink not synced"
    );
    fs::remove_file(dir.join("state")).expect("unlink");
    sync_dir(dir);
    fs.lose_power();
    assert!(!dir.join("state").exists());

    // a file still open after its unlink stays readable and writable
    durable_file(dir, "open", b"abc");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("open"))
        .expect("open");
    fs::remove_file(dir.join("open")).expect("unlink");
    f.write_all_at(b"d", 3).expect("write after unlink");
    let mut back = String::new();
    f.read_to_string(&mut back).expect("read after unlink");
    assert_eq!(back, "abcd");
    drop(f);

    // across directories both must be synced; directories rename and rmdir
    fs::create_dir(dir.join("a")).expect("mkdir");
    fs::create_dir(dir.join("b")).expect("mkdir");
    sync_dir(dir);
    durable_file(&dir.join("a"), "moved", b"m");
    fs::rename(dir.join("a/moved"), dir.join("b/moved")).expect("rename across");
    sync_dir(&dir.join("b"));
    fs.lose_power();
    assert!(
        dir.join("a/moved").exists() && dir.join("b/moved").exists(),
        "the source dir still names it"
    );
    assert_eq!(
        fs::remove_dir(dir.join("a")).map_err(|e| e.raw_os_error()),
        Err(Some(libc::ENOTEMPTY))
    );
    fs::remove_file(dir.join("a/moved")).expect("unlink");
    fs::rename(dir.join("a"), dir.join("c")).expect("rename a directory");
    fs::remove_dir(dir.join("c")).expect("rmdir");
    sync_dir(dir);
    fs.lose_power();
    assert!(!dir.join("a").exists() && !dir.join("c").exists());
    assert_eq!(read(&dir.join("b/moved")).as_deref(), Some(&b"m"[..]));
    assert!(fs.stats().dir_syncs >= 8);
}
