//! The in-memory file system behind the power-loss FUSE mount: every inode has its current
//! state, which reads see, and its durable state, which is all that survives a power loss.
//!
//! Guarantees (the strict POSIX reading, as Jepsen's LazyFS models it):
//! - `fsync`/`fdatasync` of a file makes its current contents durable, size included (the
//!   size is the length of the contents). Nothing else makes file contents durable.
//! - `fsync` of a directory makes its current entries durable: creations, renames and unlinks
//!   inside it are forgotten on power loss until the directory is synced. Syncing a file does
//!   not make its name durable, and syncing a directory does not sync the files in it.
//! - [`Model::lose_power`] reverts every file to its durable contents and every directory to its
//!   durable entries; inodes no durable entry reaches from the root are gone. Open handles are
//!   forgotten (the processes that held them are dead).
//!
//! Every operation returns an errno instead of panicking. Inode numbers are never reused, so
//! the kernel never confuses a forgotten file with a new one.

use fuser::{FileAttr, FileType, INodeNo};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

pub type Ino = u64;
/// An errno value (`libc::ENOENT`, ...).
pub type Errno = i32;
pub type Res<T> = Result<T, Errno>;

pub const ROOT: Ino = 1;
/// Files larger than this are refused with EFBIG: the test data is small, and a stray huge
/// offset must not exhaust the test's memory.
pub const MAX_FILE: u64 = 1 << 32;
/// What statfs reports as the file system's size.
const CAPACITY: u64 = 64 << 30;
const BLOCK: u64 = 4096;

enum Body {
    File {
        data: Vec<u8>,
        durable: Vec<u8>,
    },
    Dir {
        entries: BTreeMap<OsString, Ino>,
        durable: BTreeMap<OsString, Ino>,
        /// The current parent (for `..`).
        parent: Ino,
    },
}

struct Node {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

impl Node {
    fn new(body: Body, perm: u16, uid: u32, gid: u32) -> Node {
        let now = SystemTime::now();
        Node {
            body,
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    fn touch(&mut self) {
        let now = SystemTime::now();
        self.mtime = now;
        self.ctime = now;
    }

    fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir { .. })
    }
}

/// One entry of a directory listing taken at `opendir`.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub ino: Ino,
    pub kind: FileType,
    pub name: OsString,
}

enum Handle {
    File(Ino),
    Dir(Ino, Vec<DirEntry>),
}

/// Counters of the calls that matter for durability.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub writes: u64,
    pub file_syncs: u64,
    pub dir_syncs: u64,
}

/// What a power loss took away.
#[derive(Clone, Debug, Default)]
pub struct Forgotten {
    /// Files whose contents went back to an older (durable) state.
    pub files_reverted: usize,
    /// Bytes of current contents that were not durable (summed over reverted files, counted
    /// from the first differing byte).
    pub bytes_forgotten: u64,
    /// Directories whose entries went back to their durable entries.
    pub dirs_reverted: usize,
    /// Files and directories that no durable entry reaches any more.
    pub inodes_dropped: usize,
    /// Names that were created or renamed into place and not made durable (the first few).
    pub names_forgotten: Vec<OsString>,
}

pub struct Model {
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    pub stats: Stats,
}

impl Model {
    /// An empty file system: the root directory, durable.
    pub fn new() -> Model {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let root = Body::Dir {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
            parent: ROOT,
        };
        Model {
            nodes: HashMap::from([(ROOT, Node::new(root, 0o755, uid, gid))]),
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_fh: 1,
            stats: Stats::default(),
        }
    }

    fn node(&self, ino: Ino) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn node_mut(&mut self, ino: Ino) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn entries(&self, dir: Ino) -> Res<&BTreeMap<OsString, Ino>> {
        match &self.node(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            Body::File { .. } => Err(libc::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: Ino) -> Res<&mut BTreeMap<OsString, Ino>> {
        let node = self.node_mut(dir)?;
        node.touch();
        match &mut node.body {
            Body::Dir { entries, .. } => Ok(entries),
            Body::File { .. } => Err(libc::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Res<&mut Vec<u8>> {
        let node = self.node_mut(ino)?;
        node.touch();
        match &mut node.body {
            Body::File { data, .. } => Ok(data),
            Body::Dir { .. } => Err(libc::EISDIR),
        }
    }

    pub fn attr(&self, ino: Ino) -> Res<FileAttr> {
        let n = self.node(ino)?;
        let (kind, size, nlink) = match &n.body {
            Body::File { data, .. } => (FileType::RegularFile, data.len() as u64, 1),
            Body::Dir { entries, .. } => (FileType::Directory, entries.len() as u64, 2),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
            crtime: n.ctime,
            kind,
            perm: n.perm,
            nlink,
            uid: n.uid,
            gid: n.gid,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        })
    }

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Res<Ino> {
        self.entries(parent)?.get(name).copied().ok_or(libc::ENOENT)
    }

    fn add_node(
        &mut self,
        parent: Ino,
        name: &OsStr,
        body: Body,
        perm: u16,
        owner: (u32, u32),
    ) -> Res<Ino> {
        if name.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        if self.entries(parent)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes
            .insert(ino, Node::new(body, perm, owner.0, owner.1));
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        Ok(ino)
    }

    /// Creates an empty file and opens it: its name is durable only once `parent` is synced.
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        owner: (u32, u32),
    ) -> Res<(Ino, u64)> {
        let body = Body::File {
            data: Vec::new(),
            durable: Vec::new(),
        };
        let ino = self.add_node(parent, name, body, perm, owner)?;
        Ok((ino, self.open(ino)?))
    }

    pub fn mkdir(&mut self, parent: Ino, name: &OsStr, perm: u16, owner: (u32, u32)) -> Res<Ino> {
        let body = Body::Dir {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
            parent,
        };
        self.add_node(parent, name, body, perm, owner)
    }

    pub fn open(&mut self, ino: Ino) -> Res<u64> {
        if self.node(ino)?.is_dir() {
            return Err(libc::EISDIR);
        }
        Ok(self.new_handle(Handle::File(ino)))
    }

    /// Opens a directory with a snapshot of its entries, so that a reader that removes entries
    /// while it lists (as the broker does with leftover temp files) sees every entry once.
    pub fn opendir(&mut self, ino: Ino) -> Res<u64> {
        let Body::Dir {
            entries, parent, ..
        } = &self.node(ino)?.body
        else {
            return Err(libc::ENOTDIR);
        };
        let dir = |name: &str, ino| DirEntry {
            ino,
            kind: FileType::Directory,
            name: name.into(),
        };
        let mut listing = vec![dir(".", ino), dir("..", *parent)];
        for (name, &child) in entries {
            let Ok(node) = self.node(child) else { continue };
            let kind = if node.is_dir() {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            listing.push(DirEntry {
                ino: child,
                kind,
                name: name.clone(),
            });
        }
        Ok(self.new_handle(Handle::Dir(ino, listing)))
    }

    fn new_handle(&mut self, h: Handle) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, h);
        fh
    }

    /// The listing of an open directory from position `offset` on.
    pub fn readdir(&self, fh: u64, offset: u64) -> Res<&[DirEntry]> {
        match self.handles.get(&fh) {
            Some(Handle::Dir(_, listing)) => Ok(listing.get(offset as usize..).unwrap_or_default()),
            _ => Err(libc::EBADF),
        }
    }

    /// Closes a file or directory handle; a file that lost its last name goes with it.
    pub fn release(&mut self, fh: u64) {
        if self.handles.remove(&fh).is_some() {
            self.collect_garbage();
        }
    }

    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> Res<&[u8]> {
        match &self.node(ino)?.body {
            Body::File { data, .. } => {
                let start = (offset as usize).min(data.len());
                let end = start.saturating_add(size as usize).min(data.len());
                Ok(&data[start..end])
            }
            Body::Dir { .. } => Err(libc::EISDIR),
        }
    }

    /// Writes at `offset`, past the end too (the gap reads as zeros).
    pub fn write(&mut self, ino: Ino, offset: u64, bytes: &[u8]) -> Res<u32> {
        let end = offset.checked_add(bytes.len() as u64).ok_or(libc::EFBIG)?;
        if end > MAX_FILE {
            return Err(libc::EFBIG);
        }
        let len = u32::try_from(bytes.len()).map_err(|_| libc::EINVAL)?;
        let data = self.file_mut(ino)?;
        if data.len() < end as usize {
            data.resize(end as usize, 0);
        }
        data[offset as usize..end as usize].copy_from_slice(bytes);
        self.stats.writes += 1;
        Ok(len)
    }

    /// Truncates or extends (with zeros) to `size`.
    pub fn set_size(&mut self, ino: Ino, size: u64) -> Res<()> {
        if size > MAX_FILE {
            return Err(libc::EFBIG);
        }
        self.file_mut(ino)?.resize(size as usize, 0);
        Ok(())
    }

    /// `fallocate`: mode 0 extends the file with zeros, `FALLOC_FL_KEEP_SIZE` reserves nothing
    /// (memory needs no reservation) and keeps the size; other modes are not supported.
    pub fn fallocate(&mut self, ino: Ino, offset: u64, length: u64, mode: i32) -> Res<()> {
        let end = offset.checked_add(length).ok_or(libc::EFBIG)?;
        match mode {
            0 => {
                let size = self.attr(ino)?.size;
                if end > size {
                    self.set_size(ino, end)?;
                }
                Ok(())
            }
            libc::FALLOC_FL_KEEP_SIZE => self.read(ino, 0, 0).map(|_| ()),
            _ => Err(libc::EOPNOTSUPP),
        }
    }

    pub fn set_meta(
        &mut self,
        ino: Ino,
        perm: Option<u16>,
        uid: Option<u32>,
        gid: Option<u32>,
        mtime: Option<SystemTime>,
        atime: Option<SystemTime>,
    ) -> Res<()> {
        let n = self.node_mut(ino)?;
        n.perm = perm.unwrap_or(n.perm);
        n.uid = uid.unwrap_or(n.uid);
        n.gid = gid.unwrap_or(n.gid);
        n.mtime = mtime.unwrap_or(n.mtime);
        n.atime = atime.unwrap_or(n.atime);
        n.ctime = SystemTime::now();
        Ok(())
    }

    /// `fsync`/`fdatasync` of a file (its contents become durable) or of a directory (its
    /// entries become durable).
    pub fn sync(&mut self, ino: Ino) -> Res<()> {
        match &mut self.node_mut(ino)?.body {
            Body::File { data, durable } => {
                durable.clone_from(data);
                self.stats.file_syncs += 1;
            }
            Body::Dir {
                entries, durable, ..
            } => {
                durable.clone_from(entries);
                self.stats.dir_syncs += 1;
                // inodes only the old durable entries held may go now
                self.collect_garbage();
            }
        }
        Ok(())
    }

    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Res<()> {
        let ino = self.lookup(parent, name)?;
        if self.node(ino)?.is_dir() {
            return Err(libc::EISDIR);
        }
        self.entries_mut(parent)?.remove(name);
        self.collect_garbage();
        Ok(())
    }

    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Res<()> {
        let ino = self.lookup(parent, name)?;
        if !self.entries(ino)?.is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        self.entries_mut(parent)?.remove(name);
        self.collect_garbage();
        Ok(())
    }

    /// Moves `parent/name` to `new_parent/new_name`, replacing a file there (or an empty
    /// directory, for a directory). Both directories must be synced for it to survive.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Res<()> {
        let ino = self.lookup(parent, name)?;
        let moving_dir = self.node(ino)?.is_dir();
        if new_name.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        if let Some(&target) = self.entries(new_parent)?.get(new_name) {
            if target == ino {
                return Ok(());
            }
            if no_replace {
                return Err(libc::EEXIST);
            }
            match (moving_dir, self.node(target)?.is_dir()) {
                (false, true) => return Err(libc::EISDIR),
                (true, false) => return Err(libc::ENOTDIR),
                (true, true) if !self.entries(target)?.is_empty() => return Err(libc::ENOTEMPTY),
                _ => {}
            }
        }
        if moving_dir {
            // a directory cannot move into its own subtree
            let mut at = new_parent;
            while at != ROOT {
                if at == ino {
                    return Err(libc::EINVAL);
                }
                at = match &self.node(at)?.body {
                    Body::Dir { parent, .. } => *parent,
                    Body::File { .. } => return Err(libc::ENOTDIR),
                };
            }
        }
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(new_parent)?
            .insert(new_name.to_owned(), ino);
        if let Body::Dir { parent, .. } = &mut self.node_mut(ino)?.body {
            *parent = new_parent;
        }
        self.collect_garbage();
        Ok(())
    }

    /// Total and free bytes, as statfs reports them.
    pub fn space(&self) -> (u64, u64) {
        let used: u64 = self
            .nodes
            .values()
            .map(|n| match &n.body {
                Body::File { data, durable } => data.len().max(durable.len()) as u64,
                Body::Dir { .. } => BLOCK,
            })
            .sum();
        (CAPACITY, CAPACITY.saturating_sub(used))
    }

    pub fn block_size() -> u64 {
        BLOCK
    }

    pub fn inodes(&self) -> usize {
        self.nodes.len()
    }

    /// Forgets inodes that no name (current or durable) and no open handle reaches.
    fn collect_garbage(&mut self) {
        let mut stack: Vec<Ino> = self
            .handles
            .values()
            .map(|h| match h {
                Handle::File(ino) | Handle::Dir(ino, _) => *ino,
            })
            .collect();
        stack.push(ROOT);
        let mut keep = HashSet::new();
        while let Some(ino) = stack.pop() {
            if !keep.insert(ino) {
                continue;
            }
            if let Some(Node {
                body: Body::Dir {
                    entries, durable, ..
                },
                ..
            }) = self.nodes.get(&ino)
            {
                stack.extend(entries.values().chain(durable.values()));
            }
        }
        self.nodes.retain(|ino, _| keep.contains(ino));
    }

    /// The power goes out: every file and directory reverts to its durable state, and what no
    /// durable entry reaches from the root is gone.
    pub fn lose_power(&mut self) -> Forgotten {
        let mut lost = Forgotten::default();
        self.handles.clear();
        for node in self.nodes.values_mut() {
            match &mut node.body {
                Body::File { data, durable } => {
                    if data != durable {
                        lost.files_reverted += 1;
                        let same = data
                            .iter()
                            .zip(durable.iter())
                            .take_while(|(a, b)| a == b)
                            .count();
                        lost.bytes_forgotten += (data.len() - same) as u64;
                        data.clone_from(durable);
                        node.touch();
                    }
                }
                Body::Dir {
                    entries, durable, ..
                } => {
                    if entries != durable {
                        lost.dirs_reverted += 1;
                        let new = entries.iter().filter(|(n, i)| durable.get(*n) != Some(i));
                        lost.names_forgotten
                            .extend(new.take(8).map(|(n, _)| n.clone()));
                        entries.clone_from(durable);
                        node.touch();
                    }
                }
            }
        }
        // walk the durable tree: what it reaches survives, with its parent pointers fixed
        let mut reached = HashSet::from([ROOT]);
        let mut stack = vec![ROOT];
        let mut parents = Vec::new();
        while let Some(ino) = stack.pop() {
            if let Some(Node {
                body: Body::Dir { entries, .. },
                ..
            }) = self.nodes.get(&ino)
            {
                for &child in entries.values() {
                    if reached.insert(child) {
                        parents.push((child, ino));
                        stack.push(child);
                    }
                }
            }
        }
        for (child, parent_ino) in parents {
            if let Some(Node {
                body: Body::Dir { parent, .. },
                ..
            }) = self.nodes.get_mut(&child)
            {
                *parent = parent_ino;
            }
        }
        let before = self.nodes.len();
        self.nodes.retain(|ino, _| reached.contains(ino));
        lost.inodes_dropped = before - self.nodes.len();
        lost
    }
}
