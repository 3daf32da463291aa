//! `fedmesh admin ...`: backups of a running node's or coordinator's database, their restore
//! into a new data directory, and their inspection.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use fedmesh_proto::pb;
use fedmesh_store::backup::{self, Summary};

use crate::cli::{ConnectArgs, Connection};
use crate::say;

/// `fedmesh admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Save a consistent snapshot of a running node's (as one of its member's admins) or
    /// coordinator's (with its own certificate) database into a file.
    Backup {
        /// The backup file to write (written aside, checked, then renamed into place).
        #[arg(long)]
        out: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Restore a backup file into a new data directory (the process must not be running on
    /// it). Point the node's or coordinator's `data_dir` at it, then start it.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The data directory to create; it must not exist or be empty.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Rewrite a stopped node's or coordinator's database into files that hold only its live
    /// data, giving back the space sled keeps (like etcd's `defrag`). Same data, same journal:
    /// nothing to redo on other members' nodes.
    Defrag {
        /// The data directory (`data_dir`) of the stopped process.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Check a backup file whole (layout and checksum) and say what it holds.
    Inspect {
        /// The backup file.
        file: PathBuf,
    },
}

/// Runs one `fedmesh admin` subcommand; `backup` connects with `connect`.
pub async fn admin(command: AdminCommand, connect: &ConnectArgs) -> Result<()> {
    match command {
        AdminCommand::Backup { out, force } => {
            let summary = backup_to(&connect.resolve()?, &out, force).await?;
            say!(
                "backup written to {}: {}",
                out.display(),
                describe(&summary)
            );
        }
        AdminCommand::Restore { from, data_dir } => {
            let bytes =
                std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
            let summary = backup::restore(&bytes, &data_dir)?;
            say!(
                "restored {} into {}: {}",
                from.display(),
                data_dir.display(),
                describe(&summary)
            );
        }
        AdminCommand::Defrag { data_dir } => {
            let done = fedmesh_store::defrag::defrag(&data_dir)?;
            let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
            say!(
                "defragmented {}: {:.1} MiB → {:.1} MiB on disk ({} keys rewritten)",
                data_dir.display(),
                mib(done.before),
                mib(done.after),
                done.entries
            );
        }
        AdminCommand::Inspect { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let (summary, _) = backup::read(&bytes)?;
            say!("{}: {}", file.display(), describe(&summary));
        }
    }
    Ok(())
}

fn describe(summary: &Summary) -> String {
    let taken = jiff::Timestamp::from_second(summary.taken_at_unix)
        .map_or_else(|_| summary.taken_at_unix.to_string(), |t| t.to_string());
    format!(
        "schema version {}, {} trees, {} entries, taken {taken}",
        summary.schema_version, summary.trees, summary.entries
    )
}

/// Streams a backup from the server into `out`: written to `<out>.partial`, checked whole
/// (checksum, layout), synced, then renamed, so that `out` is only ever a complete backup.
/// Both are created 0600 (an existing `.partial` is tightened first).
pub async fn backup_to(connect: &Connection, out: &Path, force: bool) -> Result<Summary> {
    if out.exists() && !force {
        bail!(
            "{} exists: choose another file or pass --force",
            out.display()
        );
    }
    let mut client = pb::admin_service_client::AdminServiceClient::new(connect.channel()?)
        .max_decoding_message_size(2 * fedmesh_grpc::backup::CHUNK_BYTES);
    let mut stream =
        crate::cli::call(&connect.endpoint, client.backup(pb::BackupRequest {})).await?;
    let failed = |status| crate::cli::CallFailed {
        endpoint: connect.endpoint.clone(),
        status,
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(failed)? {
        if bytes.is_empty() && chunk.total_bytes > 0 {
            bytes.reserve(usize::try_from(chunk.total_bytes).unwrap_or(0));
        }
        bytes.extend_from_slice(&chunk.chunk);
    }
    let (summary, _) = backup::read(&bytes).context("the backup received does not check")?;
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    {
        // Contacts and incident texts: readable by the operator alone from the first byte.
        let mut file = fedmesh_tls::owner_only::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", partial.display()))?;
    }
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    Ok(summary)
}
