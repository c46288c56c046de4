//! A FUSE file system that forgets everything not fsynced when the test cuts the power, in the
//! spirit of Jepsen's LazyFS: `kill -9` keeps the kernel's page cache, so only a file system
//! that drops unsynced writes can show a missing fsync.
//!
//! [`PowerLossMount::mount`] mounts an in-memory [`model::Model`] on a fresh temp directory,
//! served by a background thread (`fuser`'s pure-Rust mount: as root it mounts with mount(2),
//! so no `fusermount3` helper is needed); dropping it unmounts. [`PowerLossMount::lose_power`]
//! reverts every file and directory to what was last made durable (see `model.rs` for the
//! exact rules).
//!
//! The kernel must not answer from a cache what the file system has forgotten: files are opened
//! with `FOPEN_DIRECT_IO` (no page cache, no mmap), entries and attributes are returned with a
//! zero TTL (every path walk asks again), and directory listings are not cached. Each request
//! answers with an errno rather than panicking.

pub mod broker;
pub mod model;

use fuser::{
    Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, MountOption,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use model::{Forgotten, Model, Res, Stats};
use parking_lot::Mutex;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Entries and attributes are never cached by the kernel.
const TTL: Duration = Duration::ZERO;

/// The FUSE side: each request locks the model, applies itself and replies.
struct PowerLossFs {
    model: Arc<Mutex<Model>>,
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

fn perm_of(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

fn time_of(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl PowerLossFs {
    fn entry(&self, reply: ReplyEntry, f: impl FnOnce(&mut Model) -> Res<u64>) {
        let mut m = self.model.lock();
        match f(&mut m).and_then(|ino| m.attr(ino)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn empty(&self, reply: ReplyEmpty, f: impl FnOnce(&mut Model) -> Res<()>) {
        match f(&mut self.model.lock()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl Filesystem for PowerLossFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |m| m.lookup(parent.0, name));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.model.lock().attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut m = self.model.lock();
        let perm = mode.map(|mode| perm_of(mode, 0));
        let done = size
            .map_or(Ok(()), |size| m.set_size(ino.0, size))
            .and_then(|()| {
                m.set_meta(
                    ino.0,
                    perm,
                    uid,
                    gid,
                    mtime.map(time_of),
                    atime.map(time_of),
                )
            })
            .and_then(|()| m.attr(ino.0));
        match done {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let owner = (req.uid(), req.gid());
        self.entry(reply, |m| {
            m.mkdir(parent.0, name, perm_of(mode, umask), owner)
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |m| m.unlink(parent.0, name));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |m| m.rmdir(parent.0, name));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return reply.error(Errno::EINVAL); // exchange and whiteout are not needed here
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        self.empty(reply, |m| {
            m.rename(parent.0, name, newparent.0, newname, no_replace)
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.model.lock().open(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut m = self.model.lock();
        let owner = (req.uid(), req.gid());
        let created = m
            .create(parent.0, name, perm_of(mode, umask), owner)
            .and_then(|(ino, fh)| Ok((m.attr(ino)?, fh)));
        match created {
            Ok((attr, fh)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.model.lock().read(ino.0, offset, size) {
            Ok(bytes) => reply.data(bytes),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.model.lock().write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok(); // close() promises nothing about durability
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.model.lock().release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |m| m.sync(ino.0));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.model.lock().opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let m = self.model.lock();
        match m.readdir(fh.0, offset) {
            Ok(entries) => {
                for (i, e) in entries.iter().enumerate() {
                    // the offset handed back is where the next call starts
                    if reply.add(INodeNo(e.ino), offset + i as u64 + 1, e.kind, &e.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.model.lock().release(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |m| m.sync(ino.0));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let m = self.model.lock();
        let (total, free) = m.space();
        let block = Model::block_size();
        let inodes = m.inodes() as u64;
        reply.statfs(
            total / block,
            free / block,
            free / block,
            inodes + 1_000_000,
            1_000_000,
            block as u32,
            255,
            block as u32,
        );
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |m| m.fallocate(ino.0, offset, length, mode));
    }
}

/// `fsync` of a directory: its current entries become durable.
#[allow(dead_code)] // used by the file-system rule tests, not the broker ones
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A mounted power-loss file system; unmounted on drop.
pub struct PowerLossMount {
    model: Arc<Mutex<Model>>,
    path: PathBuf,
    session: Option<fuser::BackgroundSession>,
    // declared last: the mount point is removed after the unmount
    dir: tempfile::TempDir,
}

impl PowerLossMount {
    /// Mounts an empty file system on a new temp directory (needs /dev/fuse and root).
    pub fn mount() -> io::Result<PowerLossMount> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path)?;
        let model = Arc::new(Mutex::new(Model::new()));
        let fs = PowerLossFs {
            model: model.clone(),
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            MountOption::FSName("powerloss".into()),
            MountOption::Subtype("powerloss".into()),
            MountOption::RW,
        ];
        let session = fuser::spawn_mount(fs, &path, &config)?;
        Ok(PowerLossMount {
            model,
            path,
            session: Some(session),
            dir,
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A directory outside the mount (broker logs), kept as long as the mount.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Cuts the power: everything not fsynced is forgotten. Call it only once every process
    /// that wrote here is dead (the kernel answers their in-flight requests first).
    pub fn lose_power(&self) -> Forgotten {
        self.model.lock().lose_power()
    }

    pub fn stats(&self) -> Stats {
        self.model.lock().stats
    }
}

impl Drop for PowerLossMount {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if session.umount_and_join().is_err() {
                // still busy: detach it, the kernel ends the session once the last user is gone
                if let Ok(c) = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes()) {
                    // SAFETY: a valid NUL-terminated path.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
            }
        }
    }
}
