//! `replay pull`: save dead letters without acking them, in the shape `gcloud pubsub
//! subscriptions pull --format=json` prints (what `replay inspect --file` reads).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::subscription::DeadLetterSubscription;

pub async fn run(
    sub: &str,
    limit: usize,
    out: Option<&Path>,
    to_terminal: bool,
) -> Result<ExitCode> {
    use std::io::IsTerminal;
    // Before anything is pulled (and leased).
    refuse_a_terminal(out, std::io::stdout().is_terminal(), to_terminal)?;
    // In a Cloud Run job (the replay job) standard output and files end up in Cloud Logging or a
    // throwaway disk: raw letters hold transcripts, so they are only saved from a person's machine.
    if std::env::var_os("CLOUD_RUN_JOB").is_some() {
        anyhow::bail!(
            "`pull` prints raw dead letters (transcripts); it does not run as a Cloud Run job, whose \
             output goes to Cloud Logging. Run it where the file stays as restricted as the bucket."
        );
    }
    let messages = DeadLetterSubscription::connect(sub)?.peek(limit).await?;
    let text = serde_json::to_string_pretty(&messages)? + "\n";
    match out {
        Some(path) => {
            save_private(path, &text)?;
            eprintln!(
                "replay: saved {} message(s) to {} (not acked)",
                messages.len(),
                path.display()
            );
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Raw letters are not printed to a terminal unless asked (`--to-terminal`): they would stay in
/// its scrollback, a multiplexer's buffer or a session recording. A pipe or a file is fine.
fn refuse_a_terminal(out: Option<&Path>, stdout_is_terminal: bool, asked: bool) -> Result<()> {
    if out.is_none() && stdout_is_terminal && !asked {
        anyhow::bail!(
            "`pull` prints raw dead letters (transcripts) and standard output is a terminal: give \
             --out FILE (saved with mode 0600), pipe it, or add --to-terminal"
        );
    }
    Ok(())
}

/// Writes `text` to `path` readable and writable by its owner only (`0600`), whether the file is
/// new or replaced: the letters hold raw transcripts, and the default mode (`0644` under the usual
/// umask) would let every account on the machine read them.
fn save_private(path: &Path, text: &str) -> Result<()> {
    use std::fs::{OpenOptions, Permissions};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let writing = || format!("writing {}", path.display());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(writing)?;
    // `mode` applies only when the file is created; an existing file keeps its mode unless set.
    file.set_permissions(Permissions::from_mode(0o600))
        .with_context(writing)?;
    file.write_all(text.as_bytes()).with_context(writing)?;
    file.sync_all().with_context(writing)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn a_terminal_gets_raw_letters_only_when_asked() {
        let file = Some(Path::new("letters.json"));
        assert!(refuse_a_terminal(None, true, false).is_err());
        assert!(refuse_a_terminal(None, true, true).is_ok());
        assert!(refuse_a_terminal(None, false, false).is_ok(), "a pipe");
        assert!(refuse_a_terminal(file, true, false).is_ok());
    }

    #[test]
    fn saved_letters_are_readable_by_their_owner_only() {
        let dir = std::env::temp_dir().join(format!("replay-pull-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let new = dir.join("new.json");
        let _ = std::fs::remove_file(&new);
        save_private(&new, "[]\n").expect("saved");
        assert_eq!(format!("{:o}", mode(&new)), "600");

        // A file that was there before, world-readable, is narrowed too.
        let old = dir.join("old.json");
        std::fs::write(&old, "old").expect("written");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        save_private(&old, "[]\n").expect("saved");
        assert_eq!(format!("{:o}", mode(&old)), "600");
        assert_eq!(std::fs::read_to_string(&old).expect("read"), "[]\n");
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
