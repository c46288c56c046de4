//! File-system primitives the storage modules share: atomic replacement of small files,
//! directory syncs, disk space reserved or zero-filled ahead of appends and vectored positional
//! writes.
//!
//! Everything here blocks the calling thread on the file system. Only the storage modules call
//! it (`clippy.toml` bans `std::fs` and `File::sync_*` elsewhere), and they call it from a
//! blocking executor (the log's I/O pool, the journal's writer thread, the catalog's writer),
//! never from a tokio worker.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::OnceLock;

/// What an fsync makes durable. Every fsync of the broker goes through [`sync`] with its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// A segment's records (the acks=all promise).
    Segment,
    /// A journal: committed group offsets, the transaction log.
    Journal,
    /// `catalog.json`.
    Catalog,
    /// A segment's index files, a producer snapshot, a partition's small state files.
    Metadata,
    /// A directory's entries.
    Directory,
}

impl Durable {
    pub fn name(self) -> &'static str {
        match self {
            Durable::Segment => "segment",
            Durable::Journal => "journal",
            Durable::Catalog => "catalog",
            Durable::Metadata => "metadata",
            Durable::Directory => "directory",
        }
    }
}

/// Names one kind of fsync ([`Durable::name`]) the broker then skips. It exists only to prove
/// that the power-loss tests can fail: with it set, acknowledged data is lost on power loss.
/// The broker says so loudly at start-up.
pub const SKIP_FSYNC_ENV: &str = "TIERCEL_UNSAFE_SKIP_FSYNC";

/// The kind of fsync [`SKIP_FSYNC_ENV`] names, read once.
pub fn skipped_fsync() -> Option<&'static str> {
    static SKIP: OnceLock<Option<String>> = OnceLock::new();
    SKIP.get_or_init(|| std::env::var(SKIP_FSYNC_ENV).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// `fdatasync` (or, for a directory or with `all`, `fsync`) of `file`, unless the test-only
/// switch skips this kind.
pub fn sync(file: &File, what: Durable, all: bool) -> io::Result<()> {
    if skipped_fsync() == Some(what.name()) {
        return Ok(());
    }
    if all {
        file.sync_all()
    } else {
        file.sync_data()
    }
}

/// Writes `data` to `path` atomically: temp file, fsync, rename, fsync of the directory. A crash
/// leaves either the old or the new contents, never a mix.
pub fn write_atomic(path: &Path, data: &[u8], what: Durable) -> io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        sync(&f, what, true)?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Makes the directory's entries (created, renamed, removed files) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    sync(&File::open(dir)?, Durable::Directory, true)
}

/// Creates `dir` and any missing parents, like `create_dir_all`, and makes each new entry
/// durable by syncing the directory that holds it: a directory created but never synced into its
/// parent may vanish at a power loss with everything written in it since.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d);
        at = d.parent();
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => continue,
            Err(e) => return Err(e),
        }
        sync_dir(d.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Reads a whole file, `None` when it does not exist.
pub fn read_if_exists(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a file; a missing one counts as removed.
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reserves the blocks of `[from, to)` without changing the file's length (`fallocate` with
/// `FALLOC_FL_KEEP_SIZE`), so appends there need no block allocation. Best effort: returns
/// whether the file system did it (not all support it, and a nearly full disk may refuse).
pub fn preallocate(file: &File, from: u64, to: u64) -> bool {
    if to <= from {
        return true;
    }
    // SAFETY: plain syscall on an owned, open descriptor.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            from as libc::off_t,
            (to - from) as libc::off_t,
        )
    };
    rc == 0
}

/// Writes zeros over `[from, to)`, past the end of what `file` holds, so that later writes
/// there change neither its blocks nor its length: their `fdatasync` then writes the data and
/// nothing else (a write that allocates blocks, fills reserved ones or moves the length makes
/// the sync write the file's metadata too, one more wait for the disk each time). Best effort:
/// on failure (a full disk) the file is cut back to `from` and `false` returned.
pub fn fill_zeros(file: &File, from: u64, to: u64) -> bool {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut left = to.saturating_sub(from);
    while left > 0 {
        let n = left.min(ZEROS.len() as u64) as usize;
        parts.push(&ZEROS[..n]);
        left -= n as u64;
    }
    if write_all_vectored_at(file, &parts, from).is_err() {
        let _ = file.set_len(from);
        return false;
    }
    true
}

/// `pwritev` of all `parts` at `offset`, retrying short writes and EINTR: the parts land in
/// the file back to back without being copied into one buffer first.
pub fn write_all_vectored_at(file: &File, parts: &[&[u8]], mut offset: u64) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    while !parts.is_empty() {
        let iov: Vec<libc::iovec> = parts
            .iter()
            .map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            })
            .collect();
        // SAFETY: every iovec points into a live slice of `parts` for the duration of the call.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                offset as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        offset += n as u64;
        let mut done = n as usize;
        while let Some(first) = parts.first_mut() {
            if done >= first.len() {
                done -= first.len();
                parts.remove(0);
            } else {
                *first = &first[done..];
                break;
            }
        }
    }
    Ok(())
}

/// Total and available bytes of the file system holding `path` (`None` when unknown).
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((
        (st.f_blocks as u64).saturating_mul(frsize),
        (st.f_bavail as u64).saturating_mul(frsize),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_and_vectored_write_lands_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f.json");
        write_atomic(&p, b"one", Durable::Metadata).expect("write");
        write_atomic(&p, b"two!", Durable::Metadata).expect("rewrite");
        assert_eq!(read_if_exists(&p).expect("read"), Some(b"two!".to_vec()));
        assert_eq!(
            read_if_exists(&dir.path().join("nope")).expect("read"),
            None
        );
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("v"))
            .expect("open");
        write_all_vectored_at(&f, &[b"ab", b"", b"cde"], 3).expect("pwritev");
        let got = std::fs::read(dir.path().join("v")).expect("read");
        assert_eq!(&got[3..], b"abcde");
        remove_if_exists(&p).expect("remove");
        remove_if_exists(&p).expect("remove again");
        assert!(disk_space(dir.path()).is_some_and(|(t, a)| t >= a));
    }
}

/// A run of bytes in an open file, sent as it is: a Fetch answers with the batches in a
/// segment's file by reference and the connection's writer sends them with `sendfile`, so they
/// go from the page cache to the socket without passing through the broker's memory. The file
/// stays open (and readable after the log deletes it) as long as a slice of it is held.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: std::sync::Arc<File>,
    pub pos: u64,
    pub len: usize,
}

impl FileSlice {
    /// The bytes, read (blocking).
    pub fn read(&self) -> io::Result<bytes::Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; self.len];
        self.file.read_exact_at(&mut buf, self.pos)?;
        Ok(bytes::Bytes::from(buf))
    }

    /// Whether every page of the slice is in the page cache now (`mincore` over a mapping that
    /// is never touched), so that sending it does not wait for the disk. `false` when that
    /// cannot be told.
    pub fn resident(&self) -> bool {
        if self.len == 0 {
            return true;
        }
        // SAFETY: sysconf has no preconditions
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            p if p > 0 => p as u64,
            _ => return false,
        };
        let start = self.pos - self.pos % page;
        let span = (self.pos + self.len as u64 - start) as usize;
        // SAFETY: a fresh read-only shared mapping of an open file, never dereferenced, unmapped
        // below; mincore writes one byte per page into `vec`, which holds that many.
        unsafe {
            let addr = libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                start as libc::off_t,
            );
            if addr == libc::MAP_FAILED {
                return false;
            }
            let mut vec = vec![0u8; span.div_ceil(page as usize)];
            let rc = libc::mincore(addr, span, vec.as_mut_ptr());
            libc::munmap(addr, span);
            rc == 0 && vec.iter().all(|v| v & 1 == 1)
        }
    }

    /// One `sendfile` of what is left after the first `sent` bytes to the socket `fd`: the
    /// bytes it sent (`WouldBlock` from a non-blocking socket that is full). Used on the runtime
    /// for slices found [`FileSlice::resident`]: the kernel copies nothing into user memory and
    /// does not wait for the disk unless the pages were dropped since.
    pub fn send_to(&self, fd: std::os::fd::RawFd, sent: usize) -> io::Result<usize> {
        let mut off = (self.pos + sent as u64) as libc::off_t;
        let count = self.len.saturating_sub(sent);
        // SAFETY: plain syscall on two open descriptors; `off` is a local the kernel updates.
        let n = unsafe { libc::sendfile(fd, self.file.as_raw_fd(), &mut off, count) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 && count > 0 {
            // the file is shorter than the slice: it was cut under it
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ended inside the slice being sent",
            ));
        }
        Ok(n as usize)
    }
}
