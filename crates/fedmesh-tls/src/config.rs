//! rustls configurations for fedmesh servers and clients.
//!
//! Servers accept TLS 1.3 only, require a client certificate chaining to the federation CA,
//! and refuse certificates listed in the federation CRL. The server configuration is held in a
//! [`ReloadableServerConfig`] so that a new certificate, key or CRL on disk takes effect for
//! new connections without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use x509_parser::prelude::FromDer as _;

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file holds no usable PEM object of the expected kind.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was expected or wrong.
        message: String,
    },
    /// A certificate carries no usable identity.
    #[error("{path}: {source}")]
    Identity {
        /// The certificate file.
        path: PathBuf,
        /// Why its identity is unusable.
        source: crate::identity::CertIdentityError,
    },
    /// rustls refused the material.
    #[error("tls configuration: {0}")]
    Rustls(String),
}

/// The files of one party's TLS identity and trust.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The federation CA certificate (PEM).
    pub ca: PathBuf,
    /// This party's certificate (PEM).
    pub cert: PathBuf,
    /// This party's private key (PEM, PKCS#8 or SEC1).
    pub key: PathBuf,
    /// The federation CRL (PEM); optional for clients, enforced by servers when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<PathBuf>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file, in order.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            message: "no PEM certificate found".to_owned(),
        });
    }
    Ok(certs)
}

/// The identity in the first certificate of a PEM file: what a server checks against its
/// configuration at start-up.
pub fn cert_identity(path: &Path) -> Result<fedmesh_core::Identity, TlsError> {
    let certs = load_certs(path)?;
    let leaf = certs.first().ok_or_else(|| TlsError::Pem {
        path: path.to_owned(),
        message: "no PEM certificate found".to_owned(),
    })?;
    crate::identity::identity_from_der(leaf).map_err(|source| TlsError::Identity {
        path: path.to_owned(),
        source,
    })
}

/// When the first certificate of a PEM file expires (Unix seconds).
pub fn cert_not_after(path: &Path) -> Result<i64, TlsError> {
    cert_validity(path).map(|(_, not_after)| not_after)
}

/// When the first certificate of a PEM file becomes valid and when it expires (Unix seconds).
pub fn cert_validity(path: &Path) -> Result<(i64, i64), TlsError> {
    let certs = load_certs(path)?;
    let leaf = certs.first().ok_or_else(|| TlsError::Pem {
        path: path.to_owned(),
        message: "no PEM certificate found".to_owned(),
    })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        message: format!("not an X.509 certificate: {e}"),
    })?;
    let validity = parsed.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        message: format!("no usable private key: {e}"),
    })
}

fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    CertificateRevocationListDer::pem_slice_iter(&read(path)?)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

fn roots(ca: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in load_certs(ca)? {
        store
            .add(cert)
            .map_err(|e| TlsError::Rustls(format!("{}: {e}", ca.display())))?;
    }
    Ok(Arc::new(store))
}

/// A server configuration: TLS 1.3, HTTP/2, client certificate required and checked against
/// the federation CA and CRL.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let crls = match &files.crl {
        Some(crl) => load_crls(crl)?,
        None => Vec::new(),
    };
    server_config_with_crls(files, crls)
}

/// Like [`server_config`], with CRLs given (DER) rather than read from `files.crl`.
fn server_config_with_crls(
    files: &TlsFiles,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots(&files.ca)?, provider());
    if !crls.is_empty() {
        verifier = verifier.with_crls(crls);
    }
    let verifier = verifier
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", files.cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A client configuration presenting this party's certificate and trusting only the CA.
pub fn client_config(files: &TlsFiles) -> Result<rustls::ClientConfig, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots(&files.ca)?)
        .with_client_auth_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", files.cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The configuration of an HTTPS server for people (the coordinator's dashboard): the party's
/// certificate, TLS 1.2 or 1.3, HTTP/1.1, and a client certificate from the federation CA
/// accepted (checked against the CRL) but not required — browsers without one authenticate
/// otherwise.
pub fn web_server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let crls = match &files.crl {
        Some(crl) => load_crls(crl)?,
        None => Vec::new(),
    };
    web_server_config_with_crls(files, crls)
}

/// Like [`web_server_config`], with CRLs given (DER) rather than read from `files.crl`.
fn web_server_config_with_crls(
    files: &TlsFiles,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots(&files.ca)?, provider())
        .allow_unauthenticated();
    if !crls.is_empty() {
        verifier = verifier.with_crls(crls);
    }
    let verifier = verifier
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", files.cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration for an ordinary HTTPS server outside the federation (an
/// institution's helpdesk): the CAs of `ca_file` (a system bundle), TLS 1.2 or 1.3, no client
/// certificate, HTTP/1.1.
pub fn public_client_config(ca_file: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let mut store = RootCertStore::empty();
    // A system bundle may hold certificates webpki cannot use; they are skipped.
    let (added, _) = store.add_parsable_certificates(load_certs(ca_file)?);
    if added == 0 {
        return Err(TlsError::Pem {
            path: ca_file.to_owned(),
            message: "no usable CA certificate".to_owned(),
        });
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifies a server's certificate like any TLS client (chain to the federation CA, name,
/// validity), then that its identity is the party the caller meant to reach: a member's node
/// certificate carrying the right host name is not enough to answer for another member.
#[derive(Debug)]
struct ExpectIdentity {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    expected: fedmesh_core::Identity,
}

impl rustls::client::danger::ServerCertVerifier for ExpectIdentity {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let actual = crate::identity::identity_from_der(end_entity)
            .map_err(|e| rustls::Error::General(format!("server certificate: {e}")))?;
        if actual != self.expected {
            return Err(rustls::Error::General(format!(
                "the server is {actual}, not {}",
                self.expected
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client configuration like [`client_config`] that also requires the server's identity to
/// be `expected`.
pub fn client_config_expecting(
    files: &TlsFiles,
    expected: fedmesh_core::Identity,
) -> Result<rustls::ClientConfig, TlsError> {
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(&files.ca)?, provider())
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let verifier = Arc::new(ExpectIdentity { inner, expected });
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", files.cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The server configurations in force — the gRPC listener's and the dashboard's, from the
/// same files and CRL — replaced atomically together by [`Self::reload`] and
/// [`Self::apply_crl`].
#[derive(Debug, Clone)]
pub struct ReloadableServerConfig {
    files: TlsFiles,
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    /// The web (dashboard) configuration: same certificate, CA and CRL, client certificate
    /// optional.
    web: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    /// The CRL in the configuration in force.
    crl: Arc<RwLock<Option<Crl>>>,
    /// Modification time and size of the CA, certificate and key files loaded.
    stamp: Arc<RwLock<Vec<FileStamp>>>,
}

/// A file's modification time and size, to notice it was replaced.
type FileStamp = (Option<std::time::SystemTime>, u64);

fn stamps(files: &TlsFiles) -> Vec<FileStamp> {
    [&files.ca, &files.cert, &files.key]
        .into_iter()
        .map(|p| std::fs::metadata(p).map_or((None, 0), |m| (m.modified().ok(), m.len())))
        .collect()
}

/// A CRL: its DER bytes and its `thisUpdate` (Unix seconds).
pub type Crl = (Vec<u8>, i64);

fn read_lock<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write_lock<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut guard) => *guard = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

impl ReloadableServerConfig {
    /// Loads the files once; fails if they are unusable.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = Arc::new(server_config(&files)?);
        let web = Arc::new(web_server_config(&files)?);
        let crl = files.crl.as_ref().and_then(|p| load_crl_der(p).ok());
        let stamp = stamps(&files);
        Ok(Self {
            files,
            current: Arc::new(RwLock::new(config)),
            web: Arc::new(RwLock::new(web)),
            crl: Arc::new(RwLock::new(crl)),
            stamp: Arc::new(RwLock::new(stamp)),
        })
    }

    /// Reloads when the CA, certificate or key file changed on disk since the last load
    /// (certificate rotation). Returns whether it reloaded; a failed reload (files caught
    /// half-written) keeps the configuration in force and is tried again next time.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamps(&self.files);
        if now == read_lock(&self.stamp) {
            return Ok(false);
        }
        self.reload()?;
        write_lock(&self.stamp, now);
        Ok(true)
    }

    /// The CRL in force (DER and `thisUpdate`).
    pub fn crl_in_force(&self) -> Option<Crl> {
        read_lock(&self.crl)
    }

    /// Puts in force a CRL distributed by the coordinator (DER), if it is newer than the one in
    /// force (or as recent with other entries) and signed by the federation CA. Returns
    /// whether it changed anything.
    pub fn apply_crl(&self, der: &[u8]) -> Result<bool, TlsError> {
        let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
            .map_err(|e| TlsError::Rustls(format!("distributed CRL: {e}")))?;
        let this_update = parsed.last_update().timestamp();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if let Some(next) = parsed.next_update()
            && next.timestamp() < now
        {
            return Err(TlsError::Rustls(
                "distributed CRL has expired (its nextUpdate is past): renew it on the coordinator (fedmesh certs renew-crl)".to_owned(),
            ));
        }
        if let Some((in_force, at)) = self.crl_in_force()
            && (this_update < at || (this_update == at && in_force == der))
        {
            return Ok(false);
        }
        let ca = load_certs(&self.files.ca)?;
        let signed = ca.iter().any(|c| {
            x509_parser::parse_x509_certificate(c)
                .is_ok_and(|(_, ca)| parsed.verify_signature(ca.public_key()).is_ok())
        });
        if !signed {
            return Err(TlsError::Rustls(
                "distributed CRL is not signed by the federation CA".to_owned(),
            ));
        }
        let crls = || vec![CertificateRevocationListDer::from(der.to_vec())];
        let config = Arc::new(server_config_with_crls(&self.files, crls())?);
        let web = Arc::new(web_server_config_with_crls(&self.files, crls())?);
        write_lock(&self.crl, Some((der.to_vec(), this_update)));
        write_lock(&self.current, config);
        write_lock(&self.web, web);
        Ok(true)
    }

    /// The configuration new gRPC connections use.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        read_lock(&self.current)
    }

    /// The configuration new dashboard connections use: the same certificate, CA and CRL as
    /// [`Self::current`], a client certificate optional, HTTP/1.1.
    pub fn web(&self) -> Arc<rustls::ServerConfig> {
        read_lock(&self.web)
    }

    /// Re-reads the certificate, key, CA and CRL. On error the previous configuration stays
    /// in force; a CRL received from the coordinator that is newer than the file stays in force.
    pub fn reload(&self) -> Result<(), TlsError> {
        let file = self.files.crl.as_ref().and_then(|p| load_crl_der(p).ok());
        let kept = self
            .crl_in_force()
            .filter(|(_, t)| file.as_ref().is_none_or(|(_, f)| t > f));
        let (config, web, crl) = match kept {
            Some((der, t)) => {
                let crls = || vec![CertificateRevocationListDer::from(der.clone())];
                (
                    server_config_with_crls(&self.files, crls())?,
                    web_server_config_with_crls(&self.files, crls())?,
                    Some((der, t)),
                )
            }
            None => (
                server_config(&self.files)?,
                web_server_config(&self.files)?,
                file,
            ),
        };
        write_lock(&self.crl, crl);
        write_lock(&self.current, Arc::new(config));
        write_lock(&self.web, Arc::new(web));
        Ok(())
    }

    /// The files the configuration is loaded from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// The DER bytes of the first CRL in a PEM file and its `thisUpdate` (Unix seconds).
pub fn load_crl_der(path: &Path) -> Result<(Vec<u8>, i64), TlsError> {
    let crl = load_crls(path)?
        .into_iter()
        .next()
        .ok_or_else(|| TlsError::Pem {
            path: path.to_owned(),
            message: "no PEM CRL found".to_owned(),
        })?;
    let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(&crl)
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    let this_update = parsed.last_update().timestamp();
    Ok((crl.to_vec(), this_update))
}
