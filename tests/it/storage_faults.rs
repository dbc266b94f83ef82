//! Storage faults under the running receiver: a full disk, a database made read-only,
//! a file system the kernel turns read-only, a database locked by another process.
//! The rules: while storage fails the answer is 503 (so CentrePoint retries), never
//! 2xx; once the fault is gone the same process stores again without a restart
//! (except where the kernel itself forbids writing again until the file system is
//! remounted); and nothing acknowledged is ever lost.
//!
//! These tests mount small file systems (tmpfs, a loop-mounted ext4 image), which needs
//! root, as CI and the development machine have. Without it they fail, saying so: a
//! fault test that skips proves nothing.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rusqlite::Connection;

use crate::harness::{self, client, run_to_exit, DataDir, Delivery, Server};

const DB: &str = "cpwatch.sqlite3";
const WAL: &str = "cpwatch.sqlite3-wal";

/// Fails the test unless it runs as root.
fn require_root(what: &str) {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_string();
    assert_eq!(
        euid, "0",
        "{what} needs root (it mounts a file system); run the suite as root, as CI does. It does not skip."
    );
}

/// Runs a system command that must succeed, with a message naming what it was for.
fn system(what: &str, program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let out = run_to_exit(cmd, &format!("{program} {}", args.join(" ")));
    assert!(
        out.status.success(),
        "{what}: `{program} {}` failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A file system mounted for one test; unmounted when dropped, even when the test fails.
struct Mount {
    point: PathBuf,
}

impl Mount {
    /// A tmpfs of `size` (e.g. `8m`) on `point`, created if needed.
    fn tmpfs(point: &Path, size: &str) -> Mount {
        require_root("a disk-full test");
        fs::create_dir_all(point).expect("create the mount point");
        let options = format!("size={size},mode=0700");
        system("mount a small tmpfs", "mount", &["-t", "tmpfs", "-o", &options, "tmpfs", &path_arg(point)]);
        Mount { point: point.to_path_buf() }
    }

    /// A fresh ext4 file system in the image file `image` of `mib` MiB, loop-mounted on `point`.
    fn ext4(image: &Path, point: &Path, mib: u64) -> Mount {
        require_root("a read-only file test");
        fs::File::create(image).and_then(|f| f.set_len(mib << 20)).expect("create the ext4 image file");
        system("make an ext4 file system", "mkfs.ext4", &["-q", "-F", &path_arg(image)]);
        Mount::ext4_existing(image, point)
    }

    /// Mounts an existing ext4 image; an ext4 error turns it read-only (the kernel's
    /// default reaction to a failing disk).
    fn ext4_existing(image: &Path, point: &Path) -> Mount {
        fs::create_dir_all(point).expect("create the mount point");
        system(
            "loop-mount the ext4 image",
            "mount",
            &["-t", "ext4", "-o", "loop,errors=remount-ro", &path_arg(image), &path_arg(point)],
        );
        let mount = Mount { point: point.to_path_buf() };
        // Owner-only, as cpwatch makes a data directory it creates.
        system("restrict the data directory", "chmod", &["0700", &path_arg(point)]);
        mount
    }

    /// The block device behind the mount, as /proc/mounts names it (`/dev/loop3`).
    fn device(&self) -> String {
        let mounts = fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
        let point = self.point.canonicalize().expect("canonical mount point");
        mounts
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                Some((fields.next()?, fields.next()?))
            })
            .filter(|(_, at)| Path::new(at) == point)
            .map(|(device, _)| device.to_string())
            // The most recent mount on the point is the one in use.
            .next_back()
            .unwrap_or_else(|| panic!("{} is not in /proc/mounts", point.display()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let point = path_arg(&self.point);
        let unmounted = Command::new("umount").arg(&point).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds it (a failed test's server being reaped): detach it
            // lazily rather than leave a mount behind.
            let _ = Command::new("umount").args(["-l", &point]).status();
        }
    }
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("temporary paths are UTF-8").to_string()
}

/// An `upload` delivery with `padding` bytes of an extra field, so that a few of them
/// use up the slack SQLite keeps in its files.
fn padded(id: &str, upload: &str, padding: usize) -> Delivery {
    let body = format!(
        r#"{{"status":"started","uploadId":"{upload}","subjectId":"44732","studyId":"902","note":"{}"}}"#,
        "x".repeat(padding)
    );
    Delivery::new("upload", id, body)
}

/// What a test saw while it caused a fault: the ids acknowledged and the ids refused.
#[derive(Default)]
struct Ledger {
    acked: Vec<String>,
    unavailable: Vec<Delivery>,
}

impl Ledger {
    /// Posts a delivery that must be acknowledged with 200 `stored`.
    async fn stored(&mut self, client: &reqwest::Client, server: &Server, delivery: Delivery, rule: &str) {
        let reply = delivery.post(client, &server.url).await;
        assert_eq!((reply.status, reply.body.trim()), (200, "stored"), "{rule}: {}", delivery.id());
        self.acked.push(delivery.id());
    }

    /// Posts a delivery during a fault: it must be answered 503, never 2xx.
    async fn unavailable(
        &mut self,
        client: &reqwest::Client,
        server: &Server,
        delivery: Delivery,
        rule: &str,
    ) {
        let reply = delivery.post(client, &server.url).await;
        assert_eq!(
            reply.status,
            503,
            "{rule}: {} is answered 503, never acknowledged: {reply:?}",
            delivery.id()
        );
        self.unavailable.push(delivery);
    }

    /// CentrePoint's retries of every delivery answered 503, once the fault is gone: the
    /// first is retried until accepted (the receiver recovers by itself, within a
    /// deadline), then each must be stored as new, which also proves that a 503 stored nothing.
    async fn retry_unavailable(&mut self, client: &reqwest::Client, server: &Server, rule: &str) {
        let retries = std::mem::take(&mut self.unavailable);
        let first = retries.first().expect("the fault caused at least one 503");
        let deadline = std::time::Instant::now() + harness::WAIT_DEADLINE;
        loop {
            let reply = first.post(client, &server.url).await;
            if reply.status == 200 {
                assert_eq!(reply.body.trim(), "stored", "{rule}: a delivery answered 503 was not stored");
                self.acked.push(first.id());
                break;
            }
            assert_eq!(reply.status, 503, "{rule}: until it recovers the receiver answers 503: {reply:?}");
            assert!(
                std::time::Instant::now() < deadline,
                "{rule}: the receiver did not recover by itself within {:?}",
                harness::WAIT_DEADLINE
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for delivery in &retries[1..] {
            self.stored(
                client,
                server,
                delivery.clone(),
                &format!("{rule}: the retry of a 503 is stored as new"),
            )
            .await;
        }
    }

    /// Every acknowledged delivery is in the database exactly once, the file is intact
    /// and the uploads agree with the deliveries.
    fn verify(&self, data: &DataDir, rule: &str) {
        for id in &self.acked {
            let rows = data.deliveries(id);
            assert_eq!(rows.len(), 1, "{rule}: acknowledged delivery {id} is stored exactly once");
            assert_eq!(rows[0].duplicates, 0, "{rule}: {id} was stored on its acknowledged attempt only");
        }
        assert_eq!(
            data.count("SELECT count(*) FROM deliveries"),
            self.acked.len() as i64,
            "{rule}: nothing but the acknowledged deliveries is stored"
        );
        let integrity: String =
            data.db().query_row("PRAGMA integrity_check", [], |row| row.get(0)).expect("integrity_check");
        assert_eq!(integrity, "ok", "{rule}: the database is intact after the fault");
        data.assert_uploads_match_replay();
    }
}

fn assert_same_process(server: &Server, pid: u32, rule: &str) {
    assert_eq!(server.pid(), pid, "{rule}");
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "{rule}: the receiver process {pid} is alive");
}

/// Fills the file system holding `path` with one file until the disk is full.
fn fill(path: &Path) -> u64 {
    let mut file = fs::File::create(path).expect("create the filler file");
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the disk failed with something else than ENOSPC: {e}"),
        }
    }
    // Byte by byte, to the last free byte of a partly used page.
    while file.write(&[0xA5]).is_ok_and(|n| n == 1) {
        written += 1;
    }
    written
}

#[tokio::test]
async fn a_full_disk_gets_503_then_the_receiver_recovers_by_itself_and_loses_nothing() {
    const RULE: &str = "disk full";
    let data = DataDir::new();
    let _mount = Mount::tmpfs(&data.dir, "8m");
    let server = data.serve();
    let pid = server.pid();
    let client = client();
    let mut ledger = Ledger::default();
    for n in 0..5 {
        let delivery = Delivery::upload(&format!("full-before-{n}"), "902", &format!("1{n}"), "started");
        ledger.stored(&client, &server, delivery, "before the disk fills, deliveries are stored").await;
    }

    let filled = fill(&data.dir.join("filler"));
    eprintln!("filled the disk with {filled} bytes");
    // SQLite may still have room inside files it already holds, so deliveries can keep
    // being acknowledged (truly stored) for a while: send until the first 503.
    const TRIES: usize = 300;
    let mut n = 0;
    while ledger.unavailable.is_empty() {
        assert!(n < TRIES, "{RULE}: {TRIES} deliveries of 64 KiB were acknowledged on a full 8 MiB disk");
        let delivery = padded(&format!("full-during-{n:04}"), &format!("2{n:04}"), 64 * 1024);
        let reply = delivery.post(&client, &server.url).await;
        match reply.status {
            200 => ledger.acked.push(delivery.id()),
            503 => ledger.unavailable.push(delivery),
            other => panic!("{RULE}: a delivery is answered 200 (stored) or 503, got {other}: {reply:?}"),
        }
        n += 1;
    }
    eprintln!("first 503 after {} acknowledgements on the full disk", n - 1);
    for k in 0..10 {
        let delivery = padded(&format!("full-during-{:04}", n + k), &format!("2{:04}", n + k), 64 * 1024);
        ledger.unavailable(&client, &server, delivery, "while the disk stays full").await;
    }
    let reply = client.get(server.at("/healthz")).send().await.expect("healthz while the disk is full");
    assert_eq!(reply.status().as_u16(), 200, "{RULE}: the receiver stays up while the disk is full");

    fs::remove_file(data.dir.join("filler")).expect("free the disk");
    ledger.retry_unavailable(&client, &server, "once space is freed").await;
    for n in 0..5 {
        let delivery = Delivery::upload(&format!("full-after-{n}"), "902", &format!("3{n}"), "started");
        ledger.stored(&client, &server, delivery, "after space is freed, deliveries are stored").await;
    }
    assert_same_process(&server, pid, "the receiver recovered from a full disk without a restart");
    ledger.verify(&data, RULE);
    server.stop();
}

#[tokio::test]
async fn a_read_only_database_file_gets_503_then_the_receiver_recovers_by_itself() {
    const RULE: &str = "read-only database file";
    let data = DataDir::new();
    let image = data.dir.with_file_name("ext4.img");
    // ext4 rather than tmpfs: it supports the immutable attribute, which makes a file
    // read-only even for root and even through descriptors already open. (A file system
    // cannot be remounted read-only while the receiver holds files open for writing:
    // the kernel answers EBUSY.)
    let _mount = Mount::ext4(&image, &data.dir, 32);
    let server = data.serve();
    let pid = server.pid();
    let client = client();
    let mut ledger = Ledger::default();
    for n in 0..5 {
        let delivery = Delivery::upload(&format!("ro-before-{n}"), "902", &format!("4{n}"), "started");
        ledger.stored(&client, &server, delivery, "before the file is made read-only").await;
    }

    let files = [data.dir.join(DB), data.dir.join(WAL)].map(|p| path_arg(&p));
    system("make the database and its WAL read-only", "chattr", &["+i", &files[0], &files[1]]);
    let undo = ImmutableGuard(files.clone());
    for n in 0..5 {
        let delivery = Delivery::upload(&format!("ro-during-{n}"), "902", &format!("5{n}"), "started");
        ledger.unavailable(&client, &server, delivery, "while the database is read-only").await;
    }
    drop(undo);

    ledger.retry_unavailable(&client, &server, "once the database is writable again").await;
    for n in 0..5 {
        let delivery = Delivery::upload(&format!("ro-after-{n}"), "902", &format!("6{n}"), "completed");
        ledger.stored(&client, &server, delivery, "after the database is writable again").await;
    }
    assert_same_process(&server, pid, "the receiver recovered from a read-only database without a restart");
    ledger.verify(&data, RULE);
    server.stop();
}

/// Clears the immutable attribute again, even when the test fails (else the temporary
/// directory could not be removed).
struct ImmutableGuard([String; 2]);

impl Drop for ImmutableGuard {
    fn drop(&mut self) {
        let [db, wal] = &self.0;
        let cleared = Command::new("chattr").args(["-i", db, wal]).status().is_ok_and(|s| s.success());
        if !cleared && !std::thread::panicking() {
            panic!("chattr -i {db} {wal} failed");
        }
    }
}

#[tokio::test]
async fn a_file_system_turned_read_only_by_the_kernel_gets_503_and_loses_nothing_acknowledged() {
    const RULE: &str = "file system turned read-only";
    let data = DataDir::new();
    let image = data.dir.with_file_name("ext4.img");
    let mount = Mount::ext4(&image, &data.dir, 32);
    let server = data.serve();
    let client = client();
    let mut ledger = Ledger::default();
    for n in 0..5 {
        let delivery = Delivery::upload(&format!("erofs-before-{n}"), "902", &format!("7{n}"), "started");
        ledger.stored(&client, &server, delivery, "before the file system fails").await;
    }

    // What ext4 does when its disk fails: it turns itself read-only under every open
    // file. ext4's own test hook reports an error; `errors=remount-ro` does the rest.
    let device = mount.device();
    let name = Path::new(&device).file_name().and_then(|n| n.to_str()).expect("a device name");
    let hook = format!("/sys/fs/ext4/{name}/trigger_fs_error");
    fs::write(&hook, "cpwatch storage fault test\n")
        .unwrap_or_else(|e| panic!("{RULE}: cannot write {hook} (ext4's error hook): {e}"));
    let mounts = fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
    assert!(
        fs::write(data.dir.join("probe"), b"x").is_err(),
        "{RULE}: the file system is read-only after the ext4 error: {mounts}"
    );
    for n in 0..5 {
        let delivery = Delivery::upload(&format!("erofs-during-{n}"), "902", &format!("8{n}"), "started");
        ledger.unavailable(&client, &server, delivery, "while the file system is read-only").await;
    }
    let reply = client.get(server.at("/healthz")).send().await.expect("healthz on a read-only disk");
    assert_eq!(reply.status().as_u16(), 200, "{RULE}: the receiver stays up on a read-only file system");

    // The kernel refuses to make an ext4 that failed writable again while mounted: the
    // administrator stops the receiver, repairs the file system and starts it again.
    server.stop();
    drop(mount);
    let mut fsck = Command::new("e2fsck");
    fsck.args(["-f", "-y", &path_arg(&image)]);
    let checked = run_to_exit(fsck, "e2fsck -f -y");
    assert!(
        matches!(checked.status.code(), Some(0 | 1)),
        "{RULE}: e2fsck repairs the image ({}): {}",
        checked.status,
        String::from_utf8_lossy(&checked.stdout)
    );
    let _mount = Mount::ext4_existing(&image, &data.dir);
    let server = data.serve();
    ledger.retry_unavailable(&client, &server, "after the file system is repaired").await;
    ledger.verify(&data, RULE);
    server.stop();
}

#[tokio::test]
async fn a_database_locked_by_another_process_gets_503_then_the_receiver_recovers_by_itself() {
    const RULE: &str = "database locked";
    let data = DataDir::new();
    let server = data.serve();
    let pid = server.pid();
    let client = client();
    let mut ledger = Ledger::default();
    for n in 0..3 {
        let delivery = Delivery::upload(&format!("locked-before-{n}"), "902", &format!("9{n}"), "started");
        ledger.stored(&client, &server, delivery, "before the database is locked").await;
    }

    // Another process (this test) takes the write lock and keeps it for longer than the
    // receiver's 5-second busy timeout: each delivery waits that long, then gets 503.
    let locker = Connection::open(data.db_path()).expect("open the database from another process");
    locker.execute_batch("BEGIN EXCLUSIVE;").expect("take the write lock");
    let concurrent: Vec<_> = (0..3)
        .map(|n| {
            let (client, url) = (client.clone(), server.url.clone());
            let delivery =
                Delivery::upload(&format!("locked-during-{n}"), "902", &format!("10{n}"), "started");
            tokio::spawn(async move {
                let reply = delivery.post(&client, &url).await;
                (delivery, reply)
            })
        })
        .collect();
    for task in concurrent {
        let (delivery, reply) = task.await.expect("a sender");
        assert_eq!(reply.status, 503, "{RULE}: {} is answered 503 while locked: {reply:?}", delivery.id());
        ledger.unavailable.push(delivery);
    }
    let delivery = Delivery::upload("locked-during-late", "902", "1010", "completed");
    ledger.unavailable(&client, &server, delivery, "while the lock is still held").await;
    let reply = client.get(server.at("/healthz")).send().await.expect("healthz while locked");
    assert_eq!(reply.status().as_u16(), 200, "{RULE}: the receiver stays up while the database is locked");
    locker.execute_batch("ROLLBACK;").expect("release the lock");
    drop(locker);

    ledger.retry_unavailable(&client, &server, "once the lock is released").await;
    for n in 0..3 {
        let delivery = Delivery::upload(&format!("locked-after-{n}"), "902", &format!("11{n}"), "started");
        ledger.stored(&client, &server, delivery, "after the lock is released").await;
    }
    assert_same_process(&server, pid, "the receiver recovered from a locked database without a restart");
    ledger.verify(&data, RULE);
    server.stop();
}
