//! Certificate upkeep: warnings ahead of expiry, in the log (the metric and `fedmesh status`
//! show the same date), at start then every few hours from 30 days before expiry; and
//! rotation, picked up from disk without a restart.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

/// From how many days before expiry the log warns.
pub const WARN_DAYS: i64 = 30;
/// How often the certificate is checked again.
const EVERY: Duration = Duration::from_secs(6 * 3600);

/// What the log should say about a certificate expiring at `not_after` (Unix seconds) at `now`.
pub fn advice(not_after: i64, now: i64) -> Option<(bool, String)> {
    let days = (not_after - now).div_euclid(86_400);
    if not_after <= now {
        Some((
            true,
            "this party's certificate has EXPIRED: peers refuse it; issue a new one (fedmesh certs issue --force) and reload (SIGHUP)".to_owned(),
        ))
    } else if days < WARN_DAYS {
        Some((
            false,
            format!(
                "this party's certificate expires in {days} days: issue a new one (fedmesh certs issue --force) and reload (SIGHUP)"
            ),
        ))
    } else {
        None
    }
}

/// The system clock's now in seconds: a certificate expires in real time, whatever the
/// federation's clock says.
fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Checks the certificate in `cert` now and every few hours until `stop`.
pub async fn watch_certificate(cert: PathBuf, mut stop: watch::Receiver<bool>) {
    loop {
        match fedmesh_tls::config::cert_not_after(&cert) {
            Ok(not_after) => match advice(not_after, system_now()) {
                Some((true, message)) => tracing::error!(cert = %cert.display(), "{message}"),
                Some((false, message)) => tracing::warn!(cert = %cert.display(), "{message}"),
                None => {}
            },
            Err(error) => tracing::warn!(%error, "cannot read the certificate's expiry"),
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// How often the TLS files are checked for a rotation.
pub const ROTATION_CHECK: Duration = Duration::from_secs(2);

/// Reloads `tls` whenever its CA, certificate or key file is replaced, until `stop`: new
/// connections use the new certificate; connections already open (and their calls) go on.
pub async fn follow_rotation(
    tls: fedmesh_tls::ReloadableServerConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match tls.reload_if_changed() {
            Ok(true) => tracing::info!("certificate files changed: new connections use them"),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "certificate files changed but do not load (yet); the previous ones stay in force")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(ROTATION_CHECK) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_start_thirty_days_ahead() {
        let now = 1_800_000_000;
        assert_eq!(advice(now + 31 * 86_400, now), None);
        let (expired, message) = advice(now + 10 * 86_400, now).unwrap();
        assert!(
            !expired && message.contains("expires in 10 days"),
            "{message}"
        );
        let (expired, message) = advice(now - 1, now).unwrap();
        assert!(expired && message.contains("EXPIRED"), "{message}");
    }
}
