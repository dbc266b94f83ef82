//! A file system that forgets, for cpwatch's power-cut tests: a small FUSE file system
//! that keeps what survives a power cut in a backing directory and everything else in
//! memory, as a disk with a volatile write cache would.
//!
//! - A file's writes and truncations since its last `fsync`/`fdatasync` are kept in
//!   memory, in order; reads see them, as reads see the page cache. `fsync` applies them
//!   to the file's backing file.
//! - The directory's entries (creations, unlinks, renames) are durable only once the
//!   directory itself is synced (`fsync` on the directory): until then, a power cut
//!   brings back the entries as of the last sync, whatever the files' own syncs.
//! - [`Mounted::cut_power`] unmounts and throws away everything unsynced; optionally it
//!   first tears the last unsynced write at a 512-byte sector boundary (its first
//!   sectors reached the disk, the rest did not). Mounting the backing directory again
//!   shows what a machine would find after the cut.
//!
//! One flat directory of regular files (what a cpwatch data directory holds); no
//! subdirectories, links or extended attributes. The backing directory holds
//! `ino-<N>` files (each file's synced content) and `.manifest` (the synced entries).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, Write as _};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, BsdFileFlags, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

/// Attributes are not cached by the kernel: sizes come from here, always current.
const TTL: Duration = Duration::ZERO;
const SECTOR: u64 = 512;
const MANIFEST: &str = ".manifest";
const ROOT: u64 = 1;

/// One change to a file not yet synced.
#[derive(Debug, Clone)]
enum Op {
    Write { seq: u64, offset: u64, data: Vec<u8> },
    Truncate(u64),
}

#[derive(Debug, Clone, Copy)]
struct Attrs {
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

impl Attrs {
    fn new(perm: u16, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        Attrs { perm, uid, gid, atime: now, mtime: now, ctime: now }
    }
}

#[derive(Debug)]
struct Node {
    /// The synced content.
    backing: File,
    /// The length as readers see it.
    len: u64,
    pending: Vec<Op>,
    attrs: Attrs,
}

#[derive(Debug)]
struct State {
    backing: PathBuf,
    root: Attrs,
    names: BTreeMap<OsString, u64>,
    synced_names: BTreeMap<OsString, u64>,
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// Orders writes across files, to find the last one.
    next_seq: u64,
    /// After the power cut: every request fails.
    dead: bool,
}

fn node_path(backing: &Path, ino: u64) -> PathBuf {
    backing.join(format!("ino-{ino}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

impl State {
    /// What the backing directory holds: the synced entries and contents. Content no
    /// synced entry names is what a cut left behind: removed.
    fn load(backing: &Path) -> io::Result<State> {
        std::fs::create_dir_all(backing)?;
        let uid = owner();
        let mut root = Attrs::new(0o755, uid.0, uid.1);
        let mut names = BTreeMap::new();
        let mut perms: HashMap<u64, u16> = HashMap::new();
        match File::open(backing.join(MANIFEST)) {
            Ok(file) => {
                for line in io::BufReader::new(file).lines() {
                    let line = line?;
                    let mut parts = line.split(' ');
                    let (Some(ino), Some(perm), Some(name)) = (parts.next(), parts.next(), parts.next())
                    else {
                        return Err(io::Error::other(format!("a bad manifest line: {line:?}")));
                    };
                    let bad = || io::Error::other(format!("a bad manifest line: {line:?}"));
                    let ino: u64 = ino.parse().map_err(|_| bad())?;
                    let perm = u16::from_str_radix(perm, 8).map_err(|_| bad())?;
                    if ino == ROOT {
                        root.perm = perm;
                        continue;
                    }
                    names.insert(OsString::from_vec(unhex(name).ok_or_else(bad)?), ino);
                    perms.insert(ino, perm);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut nodes = HashMap::new();
        for (ino, perm) in &perms {
            let backing_file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(node_path(backing, *ino))?;
            let len = backing_file.metadata()?.len();
            nodes.insert(
                *ino,
                Node {
                    backing: backing_file,
                    len,
                    pending: Vec::new(),
                    attrs: Attrs::new(*perm, root.uid, root.gid),
                },
            );
        }
        for entry in std::fs::read_dir(backing)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(ino) = name.strip_prefix("ino-").and_then(|n| n.parse::<u64>().ok()) {
                if !nodes.contains_key(&ino) {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        let next_ino = nodes.keys().copied().max().unwrap_or(ROOT) + 1;
        Ok(State {
            backing: backing.to_path_buf(),
            root,
            synced_names: names.clone(),
            names,
            nodes,
            next_ino,
            next_seq: 0,
            dead: false,
        })
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (kind, size, a, nlink) = if ino == ROOT {
            (FileType::Directory, 0, self.root, 2)
        } else {
            let node = self.nodes.get(&ino)?;
            let links = self.names.values().filter(|i| **i == ino).count() as u32;
            (FileType::RegularFile, node.len, node.attrs, links)
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(SECTOR),
            atime: a.atime,
            mtime: a.mtime,
            ctime: a.ctime,
            crtime: a.ctime,
            kind,
            perm: a.perm,
            nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let node = self.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        let end = node.len.min(offset.saturating_add(u64::from(size)));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        let synced_len = node.backing.metadata().map_err(|e| io_errno(&e))?.len();
        let from_disk = synced_len.min(end).saturating_sub(offset) as usize;
        if from_disk > 0 {
            node.backing.read_exact_at(&mut buf[..from_disk], offset).map_err(|e| io_errno(&e))?;
        }
        for op in &node.pending {
            match op {
                Op::Write { offset: at, data, .. } => {
                    let (start, stop) = ((*at).max(offset), (at + data.len() as u64).min(end));
                    if start < stop {
                        buf[(start - offset) as usize..(stop - offset) as usize]
                            .copy_from_slice(&data[(start - at) as usize..(stop - at) as usize]);
                    }
                }
                Op::Truncate(len) => {
                    if *len < end {
                        let from = (*len).max(offset);
                        buf[(from - offset) as usize..].fill(0);
                    }
                }
            }
        }
        Ok(buf)
    }

    /// Applies a file's unsynced changes to its backing file.
    fn sync(&mut self, ino: u64) -> io::Result<()> {
        let Some(node) = self.nodes.get_mut(&ino) else { return Ok(()) };
        for op in node.pending.drain(..) {
            match op {
                Op::Write { offset, data, .. } => node.backing.write_all_at(&data, offset)?,
                Op::Truncate(len) => node.backing.set_len(len)?,
            }
        }
        Ok(())
    }

    /// Makes the directory's entries as they are now the ones that survive.
    fn sync_dir(&mut self) -> io::Result<()> {
        let mut text = format!("{ROOT} {:o} {}\n", self.root.perm, hex(b"."));
        for (name, ino) in &self.names {
            let perm = self.nodes.get(ino).map_or(0o644, |n| n.attrs.perm);
            text.push_str(&format!("{ino} {perm:o} {}\n", hex(name.as_bytes())));
        }
        let tmp = self.backing.join(".manifest.tmp");
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, self.backing.join(MANIFEST))?;
        self.synced_names = self.names.clone();
        Ok(())
    }

    fn unsynced(&self) -> (usize, u64) {
        let files = self.nodes.values().filter(|n| !n.pending.is_empty()).count();
        let bytes = self
            .nodes
            .values()
            .flat_map(|n| &n.pending)
            .map(|op| match op {
                Op::Write { data, .. } => data.len() as u64,
                Op::Truncate(_) => 0,
            })
            .sum();
        (files, bytes)
    }
}

/// The owner of this process (`/proc/self`'s), for the files of a mount it makes; the
/// mount is private to that user.
fn owner() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").map_or((0, 0), |m| (m.uid(), m.gid()))
}

/// The file system given to FUSE; shares its state with [`Mounted`].
struct Forgetful {
    state: Arc<Mutex<State>>,
}

impl Forgetful {
    fn lock(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let state = self.state.lock().map_err(|_| Errno::EIO)?;
        if state.dead {
            return Err(Errno::EIO);
        }
        Ok(state)
    }
}

fn io_errno(e: &io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
}

impl Filesystem for Forgetful {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> io::Result<()> {
        // Large writes arrive whole (the kernel splits writes at this size).
        let _ = config.set_max_write(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let state = match self.lock() {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        if parent.0 != ROOT {
            return reply.error(Errno::ENOENT);
        }
        match state.names.get(name).and_then(|ino| state.attr(*ino)) {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.lock() {
            Ok(state) => match state.attr(ino.0) {
                Some(attr) => reply.attr(&TTL, &attr),
                None => reply.error(Errno::ENOENT),
            },
            Err(e) => reply.error(e),
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
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = match self.lock() {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        let when = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => SystemTime::now(),
        };
        let attrs = if ino.0 == ROOT {
            &mut state.root
        } else {
            match state.nodes.get_mut(&ino.0) {
                Some(node) => {
                    if let Some(len) = size {
                        node.pending.push(Op::Truncate(len));
                        node.len = len;
                        node.attrs.mtime = SystemTime::now();
                    }
                    &mut node.attrs
                }
                None => return reply.error(Errno::ENOENT),
            }
        };
        if let Some(mode) = mode {
            attrs.perm = (mode & 0o7777) as u16;
        }
        if let Some(uid) = uid {
            attrs.uid = uid;
        }
        if let Some(gid) = gid {
            attrs.gid = gid;
        }
        if let Some(t) = atime {
            attrs.atime = when(t);
        }
        if let Some(t) = mtime {
            attrs.mtime = when(t);
        }
        attrs.ctime = SystemTime::now();
        match state.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = match self.lock() {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        if parent.0 != ROOT || state.names.remove(name).is_none() {
            return reply.error(Errno::ENOENT);
        }
        reply.ok();
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
        let mut state = match self.lock() {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        if parent.0 != ROOT || newparent.0 != ROOT {
            return reply.error(Errno::ENOENT);
        }
        let Some(ino) = state.names.get(name).copied() else { return reply.error(Errno::ENOENT) };
        let target = state.names.get(newname).copied();
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            let Some(other) = target else { return reply.error(Errno::ENOENT) };
            state.names.insert(name.to_os_string(), other);
            state.names.insert(newname.to_os_string(), ino);
            return reply.ok();
        }
        if flags.contains(RenameFlags::RENAME_NOREPLACE) && target.is_some() {
            return reply.error(Errno::EEXIST);
        }
        state.names.remove(name);
        state.names.insert(newname.to_os_string(), ino);
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.lock() {
            Ok(state) if state.nodes.contains_key(&ino.0) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
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
        match self.lock() {
            Ok(state) => match state.read(ino.0, offset, size) {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(e),
            },
            Err(e) => reply.error(e),
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
        let mut state = match self.lock() {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        let seq = state.next_seq;
        state.next_seq += 1;
        let Some(node) = state.nodes.get_mut(&ino.0) else { return reply.error(Errno::ENOENT) };
        node.pending.push(Op::Write { seq, offset, data: data.to_vec() });
        node.len = node.len.max(offset + data.len() as u64);
        node.attrs.mtime = SystemTime::now();
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut state = match self.lock() {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        match state.sync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(io_errno(&e)),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let state = match self.lock() {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        if ino.0 != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let mut entries: Vec<(u64, FileType, OsString)> =
            vec![(ROOT, FileType::Directory, ".".into()), (ROOT, FileType::Directory, "..".into())];
        entries.extend(state.names.iter().map(|(name, ino)| (*ino, FileType::RegularFile, name.clone())));
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut state = match self.lock() {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        match state.sync_dir() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(io_errno(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: this file system is about losing data, not running out of it.
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
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
        let mut state = match self.lock() {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        if parent.0 != ROOT {
            return reply.error(Errno::ENOENT);
        }
        if state.names.contains_key(name) {
            return reply.error(Errno::EEXIST);
        }
        let ino = state.next_ino;
        let path = node_path(&state.backing, ino);
        let backing = match OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path) {
            Ok(f) => f,
            Err(e) => return reply.error(io_errno(&e)),
        };
        state.next_ino += 1;
        let perm = (mode & !umask & 0o7777) as u16;
        state.nodes.insert(
            ino,
            Node { backing, len: 0, pending: Vec::new(), attrs: Attrs::new(perm, req.uid(), req.gid()) },
        );
        state.names.insert(name.to_os_string(), ino);
        match state.attr(ino) {
            Some(attr) => reply.created(&TTL, &attr, Generation(0), FileHandle(0), FopenFlags::empty()),
            None => reply.error(Errno::EIO),
        }
    }
}

/// What a power cut threw away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cut {
    /// Files that had unsynced changes.
    pub files: usize,
    /// Unsynced bytes written and lost (the torn write's surviving part not counted).
    pub bytes: u64,
    /// Whether the directory had changes since its last sync.
    pub entries_lost: bool,
    /// The torn write, if any: the bytes of it that reached the disk, of its length.
    pub torn: Option<(u64, u64)>,
}

/// How to cut the power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tear {
    /// Every unsynced write is lost whole.
    No,
    /// The last unsynced write keeps a prefix of whole sectors, chosen from this seed.
    LastWrite { seed: u64 },
}

/// A mounted file system that forgets. Dropping it cuts the power.
pub struct Mounted {
    session: Option<BackgroundSession>,
    state: Arc<Mutex<State>>,
    mountpoint: PathBuf,
}

/// Mounts the file system whose synced state is in `backing` at `mountpoint` (both
/// directories; created if missing). Needs `/dev/fuse` and `fusermount3` (Debian's
/// `fuse3`), or root.
pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<Mounted> {
    std::fs::create_dir_all(mountpoint)?;
    let state = Arc::new(Mutex::new(State::load(backing)?));
    let mut config = Config::default();
    config.mount_options =
        vec![MountOption::FSName("forgetful".into()), MountOption::Subtype("forgetful".into())];
    let session = fuser::spawn_mount(Forgetful { state: state.clone() }, mountpoint, &config)?;
    Ok(Mounted { session: Some(session), state, mountpoint: mountpoint.to_path_buf() })
}

impl Mounted {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Files with unsynced changes, and the unsynced bytes written.
    pub fn unsynced(&self) -> (usize, u64) {
        self.state().unsynced()
    }

    /// Cuts the power: every request fails from now on, unsynced changes are thrown
    /// away (the last unsynced write torn, with [`Tear::LastWrite`]), and the file system
    /// is unmounted (lazily, if a process still has a file open).
    pub fn cut_power(mut self, tear: Tear) -> io::Result<Cut> {
        let cut = {
            let mut state = self.state();
            state.dead = true;
            let (files, bytes) = state.unsynced();
            let entries_lost = state.names != state.synced_names;
            let mut cut = Cut { files, bytes, entries_lost, torn: None };
            if let Tear::LastWrite { seed } = tear {
                cut.torn = tear_last_write(&mut state, seed)?;
                if let Some((kept, _)) = cut.torn {
                    cut.bytes -= kept;
                }
            }
            for node in state.nodes.values_mut() {
                node.pending.clear();
            }
            cut
        };
        self.unmount_session()?;
        Ok(cut)
    }

    /// A clean unmount, as at shutdown: everything is synced first.
    pub fn unmount(mut self) -> io::Result<()> {
        {
            let mut state = self.state();
            let inos: Vec<u64> = state.nodes.keys().copied().collect();
            for ino in inos {
                state.sync(ino)?;
            }
            state.sync_dir()?;
            state.dead = true;
        }
        self.unmount_session()
    }

    /// Detaches the mount at once (lazily: a file still open keeps the connection until
    /// it is closed, and fails meanwhile), then waits for the session to end.
    fn unmount_session(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else { return Ok(()) };
        let detached = std::process::Command::new("fusermount3")
            .args(["-u", "-z", "-q", "--"])
            .arg(&self.mountpoint)
            .stdin(std::process::Stdio::null())
            .status();
        match detached {
            Ok(status) if status.success() => session.join(),
            Ok(status) => Err(io::Error::other(format!("fusermount3 -u -z failed: {status}"))),
            Err(e) => Err(io::Error::other(format!("cannot run fusermount3 (Debian's fuse3): {e}"))),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.session.is_some() {
            self.state().dead = true;
            let _ = self.unmount_session();
        }
    }
}

/// Writes the first whole sectors of the last unsynced write to its backing file, as a
/// disk that had written part of it when the power went.
fn tear_last_write(state: &mut State, seed: u64) -> io::Result<Option<(u64, u64)>> {
    let last = state
        .nodes
        .iter()
        .flat_map(|(ino, node)| {
            node.pending.iter().filter_map(move |op| match op {
                Op::Write { seq, offset, data } => Some((*seq, *ino, *offset, data.clone())),
                Op::Truncate(_) => None,
            })
        })
        .max_by_key(|(seq, ..)| *seq);
    let Some((_, ino, offset, data)) = last else { return Ok(None) };
    let end = offset + data.len() as u64;
    // The sector boundaries strictly inside the write: where it can tear.
    let first = (offset / SECTOR + 1) * SECTOR;
    let boundaries: Vec<u64> = (first..end).step_by(SECTOR as usize).collect();
    let kept = if boundaries.is_empty() {
        0
    } else {
        let mut x = seed | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        boundaries[(x % boundaries.len() as u64) as usize] - offset
    };
    if kept > 0 {
        if let Some(node) = state.nodes.get(&ino) {
            node.backing.write_all_at(&data[..kept as usize], offset)?;
        }
    }
    Ok(Some((kept, data.len() as u64)))
}
