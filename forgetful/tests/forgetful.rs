//! The file system that forgets, on plain files: what a power cut keeps and what it
//! throws away. Each test mounts it for real (FUSE); without `/dev/fuse` and
//! `fusermount3` (Debian's `fuse3`, installed by `bash scripts/setup.sh base powercut`)
//! the tests fail, naming what is missing.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use cpwatch_forgetful::{mount, Cut, Mounted, Tear};

struct Disk {
    _tmp: tempfile::TempDir,
    backing: PathBuf,
    mnt: PathBuf,
}

impl Disk {
    fn new() -> Disk {
        assert!(
            Path::new("/dev/fuse").exists(),
            "/dev/fuse is missing: FUSE is needed for the power-cut tests"
        );
        let tmp = tempfile::tempdir().expect("temp dir");
        let (backing, mnt) = (tmp.path().join("backing"), tmp.path().join("mnt"));
        Disk { _tmp: tmp, backing, mnt }
    }

    fn mount(&self) -> Mounted {
        mount(&self.backing, &self.mnt).unwrap_or_else(|e| {
            panic!("mount the forgetful file system (needs fusermount3: `bash scripts/setup.sh base powercut`): {e}")
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        let mut file = File::open(self.path(name)).ok()?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).expect("read");
        Some(data)
    }
}

fn sync_dir(dir: &Path) {
    File::open(dir).expect("open the directory").sync_all().expect("fsync the directory");
}

fn cut(mounted: Mounted) -> Cut {
    mounted.cut_power(Tear::No).expect("cut the power")
}

#[test]
fn unsynced_writes_are_read_back_then_lost_to_a_power_cut() {
    let disk = Disk::new();
    let fs = disk.mount();
    let mut file = File::create(disk.path("a")).expect("create");
    sync_dir(&disk.mnt);
    file.write_all(b"synced").expect("write");
    file.sync_all().expect("fsync");
    file.write_all(b" and not synced").expect("write");
    assert_eq!(disk.read("a").as_deref(), Some(&b"synced and not synced"[..]), "reads see unsynced writes");
    drop(file);
    let lost = cut(fs);
    assert_eq!((lost.files, lost.bytes, lost.entries_lost), (1, 15, false), "{lost:?}");
    let _fs = disk.mount();
    assert_eq!(disk.read("a").as_deref(), Some(&b"synced"[..]), "only what was synced survives");
}

#[test]
fn fdatasync_keeps_data_and_a_truncation_is_a_change_like_any_other() {
    let disk = Disk::new();
    let fs = disk.mount();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(disk.path("b"))
        .expect("create");
    sync_dir(&disk.mnt);
    file.write_all_at(&[7u8; 4096], 0).expect("write");
    file.sync_data().expect("fdatasync");
    file.set_len(1000).expect("truncate");
    file.write_all_at(b"xyz", 2000).expect("write past the end");
    let seen = disk.read("b").expect("the file");
    assert_eq!(seen.len(), 2003);
    assert!(
        seen[..1000].iter().all(|b| *b == 7) && seen[1000..2000].iter().all(|b| *b == 0),
        "a hole after the cut"
    );
    drop(file);
    cut(fs);
    let _fs = disk.mount();
    assert_eq!(
        disk.read("b"),
        Some(vec![7u8; 4096]),
        "the truncation was not synced: the synced 4096 bytes are back"
    );
}

#[test]
fn a_new_file_lives_only_once_its_directory_is_synced() {
    let disk = Disk::new();
    let fs = disk.mount();
    let mut kept = File::create(disk.path("kept")).expect("create");
    kept.write_all(b"data").expect("write");
    kept.sync_all().expect("fsync");
    sync_dir(&disk.mnt);
    let mut gone = File::create(disk.path("gone")).expect("create");
    gone.write_all(b"synced, but its name was not").expect("write");
    gone.sync_all().expect("fsync the file, not the directory");
    let empty = File::create(disk.path("empty")).expect("create");
    drop((kept, gone, empty));
    // The directory is synced again only after "empty" is created, never after "gone"'s
    // removal: the removal is lost, as is nothing else.
    std::fs::remove_file(disk.path("kept")).expect("unlink");
    let lost = cut(fs);
    assert!(lost.entries_lost, "{lost:?}");
    let _fs = disk.mount();
    let mut names: Vec<String> = std::fs::read_dir(&disk.mnt)
        .expect("list")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["kept"], "the unsynced creations are gone, the unsynced unlink undone");
    assert_eq!(disk.read("kept").as_deref(), Some(&b"data"[..]));
}

#[test]
fn a_synced_name_with_unsynced_content_comes_back_empty_and_renames_need_a_directory_sync() {
    let disk = Disk::new();
    let fs = disk.mount();
    let mut file = File::create(disk.path("journal")).expect("create");
    sync_dir(&disk.mnt);
    file.write_all(b"never synced").expect("write");
    drop(file);
    std::fs::write(disk.path("old"), b"x").expect("write old");
    File::open(disk.path("old")).expect("open").sync_all().expect("fsync");
    sync_dir(&disk.mnt);
    std::fs::rename(disk.path("old"), disk.path("new")).expect("rename");
    assert!(disk.read("new").is_some() && disk.read("old").is_none());
    cut(fs);
    let _fs = disk.mount();
    assert_eq!(disk.read("journal"), Some(Vec::new()), "the name survives, its content does not");
    assert_eq!(disk.read("old").as_deref(), Some(&b"x"[..]), "the rename was not synced");
    assert!(disk.read("new").is_none());
}

#[test]
fn the_last_unsynced_write_can_tear_at_a_sector_boundary() {
    let disk = Disk::new();
    let fs = disk.mount();
    let file = File::create(disk.path("wal")).expect("create");
    sync_dir(&disk.mnt);
    file.write_all_at(&[1u8; 100], 0).expect("an earlier unsynced write");
    // 2048 bytes from offset 100: the sector boundaries inside it are 512, 1024, 1536, 2048.
    file.write_all_at(&[2u8; 2048], 100).expect("the last write");
    drop(file);
    let lost = fs.cut_power(Tear::LastWrite { seed: 42 }).expect("cut the power");
    let (kept, of) = lost.torn.expect("a torn write");
    assert_eq!(of, 2048);
    assert!(kept > 0 && kept < 2048 && (100 + kept) % 512 == 0, "torn at a sector boundary: {lost:?}");
    let _fs = disk.mount();
    let after = disk.read("wal").expect("the file");
    assert_eq!(after.len() as u64, 100 + kept, "the first sectors of the last write reached the disk");
    assert!(after[..100].iter().all(|b| *b == 0), "the earlier write did not: a hole");
    assert!(after[100..].iter().all(|b| *b == 2));
}

#[test]
fn a_clean_unmount_keeps_everything_and_requests_after_a_cut_fail() {
    let disk = Disk::new();
    let fs = disk.mount();
    std::fs::write(disk.path("c"), b"clean").expect("write");
    fs.unmount().expect("a clean unmount");
    let fs = disk.mount();
    assert_eq!(disk.read("c").as_deref(), Some(&b"clean"[..]), "a clean unmount syncs first");
    let file = OpenOptions::new().write(true).open(disk.path("c")).expect("open");
    let cutter = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        fs.cut_power(Tear::No).expect("cut the power");
    });
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if file.write_all_at(b"late", 0).is_err() {
            break;
        }
        assert!(std::time::Instant::now() < until, "writes keep succeeding after the cut");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(file);
    // The cut ends (the old session gone) before the same mount point is mounted again.
    cutter.join().expect("the cut");
    let _fs = disk.mount();
    assert_eq!(disk.read("c").as_deref(), Some(&b"clean"[..]), "the late writes were never synced");
}
