//! How long one durable write takes on the data directory's disk: the floor under any
//! receiver that answers only after `fsync`, and what group commit has to amortise.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::results::Latency;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FsyncProbe {
    pub dir: String,
    /// Each write: a 4 KiB append (one SQLite WAL frame is a page plus a header), then
    /// `fdatasync`, as a commit in WAL mode with `synchronous=FULL` does.
    pub latency_ms: Latency,
    /// What a receiver doing one such sync per delivery could answer at most, per second.
    pub one_sync_per_delivery_max_per_s: f64,
}

pub fn probe(dir: &Path, count: usize) -> anyhow::Result<FsyncProbe> {
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let page = [0x5a_u8; 4096];
    let mut micros = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        file.write_all(&page).context("cannot write the probe file")?;
        file.as_file().sync_data().context("cannot sync the probe file")?;
        micros.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    let latency_ms = Latency::from_micros(micros);
    let one_sync_per_delivery_max_per_s = if latency_ms.mean > 0.0 { 1000.0 / latency_ms.mean } else { 0.0 };
    Ok(FsyncProbe { dir: dir.display().to_string(), latency_ms, one_sync_per_delivery_max_per_s })
}
