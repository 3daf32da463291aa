//! The federation PKI kept in one directory (by the coordinator's operators):
//!
//! | file | what |
//! |---|---|
//! | `ca.pem`, `ca.key` | the federation CA certificate and its key (0600) |
//! | `federation` | the federation's name, the trust domain of every identity |
//! | `crl.pem` | the current CRL, signed by the CA, re-issued at each revocation |
//! | `revoked.json` | the revocation ledger the CRL is built from |
//! | `<stem>.pem`, `<stem>.key` | issued certificates and keys (0600), see [`file_stem`] |

use std::fs;
use std::path::{Path, PathBuf};

use fedmesh_core::{FederationName, Identity, IdentityError, Principal};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// How long a CRL is valid; it is re-issued at every revocation and by `fedmesh certs renew-crl`.
pub const CRL_VALIDITY: Duration = Duration::days(30);

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `init` on a directory that already has a CA.
    #[error("{0} already holds a federation CA; use another directory or remove it first")]
    AlreadyInitialised(PathBuf),
    /// rcgen refused to build or sign.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A name does not follow the identity rules.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A certificate given for revocation is not one this CA issued.
    #[error("{0}")]
    Foreign(String),
    /// A stored file is malformed.
    #[error("{path}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where an issued certificate's validity starts and ends.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (clock skew between institutions) to `days` from now.
    pub fn days_from_now(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }
}

/// An issued certificate and key, written to disk.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The identity in the certificate's URI SAN.
    pub identity: Identity,
    /// The PEM certificate file.
    pub cert_path: PathBuf,
    /// The PEM private key file (0600).
    pub key_path: PathBuf,
}

/// One revoked certificate in the ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RevokedEntry {
    serial_hex: String,
    identity: String,
    revoked_at_unix: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    crl_number: u64,
    revoked: Vec<RevokedEntry>,
}

/// The base name of the files of an identity's certificate: `coordinator`, `<member>-node`,
/// `<member>-admin-<name>`, `<member>-agent-<name>` or `operator-<name>`.
pub fn file_stem(identity: &Identity) -> String {
    match &identity.principal {
        Principal::Coordinator => "coordinator".to_owned(),
        Principal::Node { member } => format!("{member}-node"),
        Principal::Admin { member, name } => format!("{member}-admin-{name}"),
        Principal::Agent { member, name } => format!("{member}-agent-{name}"),
        Principal::Operator { name } => format!("operator-{name}"),
    }
}

/// A federation PKI directory with its CA loaded.
pub struct Pki {
    dir: PathBuf,
    federation: FederationName,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .field("federation", &self.federation)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Creates the federation CA (valid `days`) and an empty CRL in `dir`.
    pub fn init(dir: &Path, federation: &FederationName, days: i64) -> Result<Self, PkiError> {
        let ca_path = dir.join("ca.pem");
        if ca_path.exists() {
            return Err(PkiError::AlreadyInitialised(dir.to_owned()));
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            format!("fedmesh {federation} federation CA"),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, federation.as_str());
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let validity = Validity::days_from_now(days);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write_private(&dir.join("ca.key"), key.serialize_pem().as_bytes())?;
        write_public(&ca_path, cert.pem().as_bytes())?;
        write_public(
            &dir.join("federation"),
            format!("{federation}\n").as_bytes(),
        )?;
        let pki = Self {
            dir: dir.to_owned(),
            federation: federation.clone(),
            issuer: Issuer::new(params, key),
        };
        pki.write_crl(&Ledger::default())?;
        Ok(pki)
    }

    /// Opens an existing PKI directory.
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        let federation_path = dir.join("federation");
        let federation: FederationName = fs::read_to_string(&federation_path)
            .map_err(io_err(&federation_path))?
            .trim()
            .parse()?;
        let ca_pem = read(&dir.join("ca.pem"))?;
        let key_path = dir.join("ca.key");
        let ca_key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| PkiError::Malformed {
            path: key_path.clone(),
            message: e.to_string(),
        })?;
        let issuer =
            Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| PkiError::Malformed {
                path: dir.join("ca.pem"),
                message: e.to_string(),
            })?;
        Ok(Self {
            dir: dir.to_owned(),
            federation,
            issuer,
        })
    }

    /// The federation's name.
    pub fn federation(&self) -> &FederationName {
        &self.federation
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate file, the trust anchor every party is given.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The current CRL file.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// Issues a certificate for `identity` with extra DNS names or IP addresses (`dns`), and
    /// writes it with its key under [`file_stem`]. The identity must be of this federation.
    pub fn issue(
        &self,
        identity: &Identity,
        dns: &[String],
        validity: Validity,
    ) -> Result<Issued, PkiError> {
        if identity.federation != self.federation {
            return Err(PkiError::Foreign(format!(
                "identity {identity} is not of federation {}",
                self.federation
            )));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.to_uri());
        params
            .distinguished_name
            .push(DnType::OrganizationName, self.federation.as_str());
        params.subject_alt_names = vec![SanType::URI(identity.to_uri().try_into()?)];
        for name in dns {
            params.subject_alt_names.push(match name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.as_str().try_into()?),
            });
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match identity.role() {
            fedmesh_core::Role::Node | fedmesh_core::Role::Coordinator => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            fedmesh_core::Role::Admin
            | fedmesh_core::Role::Agent
            | fedmesh_core::Role::Operator => {
                vec![ExtendedKeyUsagePurpose::ClientAuth]
            }
        };
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate()?;
        let cert_pem = self.sign(&mut params, &key)?;
        let stem = file_stem(identity);
        let cert_path = self.dir.join(format!("{stem}.pem"));
        let key_path = self.dir.join(format!("{stem}.key"));
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        write_public(&cert_path, cert_pem.as_bytes())?;
        Ok(Issued {
            identity: identity.clone(),
            cert_path,
            key_path,
        })
    }

    /// Signs arbitrary parameters with the CA and returns the PEM certificate. `issue` is the
    /// normal path; this one exists for tests that need a malformed certificate from the
    /// federation's own CA.
    pub fn sign(&self, params: &mut CertificateParams, key: &KeyPair) -> Result<String, PkiError> {
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        Ok(params.signed_by(key, &self.issuer)?.pem())
    }

    /// Revokes the certificate in `cert_pem` (issued by this CA) and re-issues the CRL.
    /// Returns the revoked identity, or the subject when it has none.
    pub fn revoke(&self, cert_pem: &str) -> Result<String, PkiError> {
        let der = pem_to_der(cert_pem)
            .ok_or_else(|| PkiError::Foreign("the file holds no PEM certificate".to_owned()))?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| PkiError::Foreign(format!("certificate does not parse: {e}")))?;
        let ca_der = pem_to_der(&read(&self.ca_path())?).ok_or_else(|| PkiError::Malformed {
            path: self.ca_path(),
            message: "no PEM certificate".to_owned(),
        })?;
        let (_, ca) = X509Certificate::from_der(&ca_der).map_err(|e| PkiError::Malformed {
            path: self.ca_path(),
            message: e.to_string(),
        })?;
        if cert.verify_signature(Some(ca.public_key())).is_err() {
            return Err(PkiError::Foreign(
                "the certificate was not issued by this federation's CA".to_owned(),
            ));
        }
        let serial_hex = hex(cert.raw_serial());
        let identity = crate::identity::identity_from_der(&der)
            .map(|i| i.to_uri())
            .unwrap_or_else(|_| cert.subject().to_string());
        let mut ledger = self.ledger()?;
        if !ledger.revoked.iter().any(|e| e.serial_hex == serial_hex) {
            ledger.revoked.push(RevokedEntry {
                serial_hex,
                identity: identity.clone(),
                revoked_at_unix: OffsetDateTime::now_utc().unix_timestamp(),
            });
        }
        self.write_crl(&ledger)?;
        Ok(identity)
    }

    /// Re-issues the CRL with the same entries and a new validity period.
    pub fn renew_crl(&self) -> Result<(), PkiError> {
        let ledger = self.ledger()?;
        self.write_crl(&ledger)
    }

    fn ledger(&self) -> Result<Ledger, PkiError> {
        let path = self.dir.join("revoked.json");
        if !path.exists() {
            return Ok(Ledger::default());
        }
        serde_json::from_str(&read(&path)?).map_err(|e| PkiError::Malformed {
            path,
            message: e.to_string(),
        })
    }

    fn write_crl(&self, ledger: &Ledger) -> Result<(), PkiError> {
        let now = OffsetDateTime::now_utc();
        let mut ledger_out = Ledger {
            crl_number: ledger.crl_number + 1,
            revoked: ledger.revoked.clone(),
        };
        let mut revoked_certs = Vec::with_capacity(ledger.revoked.len());
        for entry in &ledger.revoked {
            let serial = unhex(&entry.serial_hex).ok_or_else(|| PkiError::Malformed {
                path: self.dir.join("revoked.json"),
                message: format!("bad serial {}", entry.serial_hex),
            })?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: OffsetDateTime::from_unix_timestamp(entry.revoked_at_unix)
                    .unwrap_or(now),
                reason_code: None,
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + CRL_VALIDITY,
            crl_number: SerialNumber::from_slice(&ledger_out.crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        ledger_out
            .revoked
            .sort_by(|a, b| a.serial_hex.cmp(&b.serial_hex));
        let json = serde_json::to_string_pretty(&ledger_out).map_err(|e| PkiError::Malformed {
            path: self.dir.join("revoked.json"),
            message: e.to_string(),
        })?;
        // The ledger first: if writing the CRL then fails, the next revocation or renewal
        // rebuilds it from a ledger that already lists every revoked certificate.
        write_public(&self.dir.join("revoked.json"), json.as_bytes())?;
        write_public(&self.crl_path(), crl.pem()?.as_bytes())
    }
}

/// A random 16-byte serial number from the system's secure random source, positive and
/// non-zero as RFC 5280 asks.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| PkiError::Foreign("the system's random source failed".to_owned()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The DER bytes of the first PEM certificate in `pem`.
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()
        .map(|der| der.to_vec())
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io_err(path))
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Writes a private key readable by its owner only (0600), replacing any previous one.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    crate::owner_only::write(path, bytes).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::identity::identity_from_der;

    fn federation() -> FederationName {
        "esup.example".parse().unwrap()
    }

    #[test]
    fn issued_certificates_carry_one_uri_san_and_private_keys_are_0600() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::init(dir.path(), &federation(), 365).unwrap();
        let identity: Identity = "spiffe://esup.example/member/unistra/admin/alice"
            .parse()
            .unwrap();
        let issued = pki
            .issue(
                &identity,
                &["localhost".into()],
                Validity::days_from_now(30),
            )
            .unwrap();
        assert!(issued.cert_path.ends_with("unistra-admin-alice.pem"));
        let der = pem_to_der(&fs::read_to_string(&issued.cert_path).unwrap()).unwrap();
        assert_eq!(identity_from_der(&der).unwrap(), identity);
        for key in [&issued.key_path, &dir.path().join("ca.key")] {
            let mode = fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
    }

    #[test]
    fn init_refuses_an_existing_ca_and_open_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        Pki::init(dir.path(), &federation(), 365).unwrap();
        let err = Pki::init(dir.path(), &federation(), 365).unwrap_err();
        assert!(matches!(err, PkiError::AlreadyInitialised(_)), "{err}");
        let pki = Pki::open(dir.path()).unwrap();
        assert_eq!(pki.federation(), &federation());
    }

    #[test]
    fn foreign_identities_and_certificates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::init(dir.path(), &federation(), 365).unwrap();
        let other: Identity = "spiffe://other.example/coordinator".parse().unwrap();
        assert!(pki.issue(&other, &[], Validity::days_from_now(1)).is_err());

        let other_dir = tempfile::tempdir().unwrap();
        let other_pki = Pki::init(other_dir.path(), &federation(), 365).unwrap();
        let issued = other_pki
            .issue(
                &Identity::coordinator(federation()),
                &[],
                Validity::days_from_now(1),
            )
            .unwrap();
        let err = pki
            .revoke(&fs::read_to_string(issued.cert_path).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not issued by this federation"), "{err}");
    }

    #[test]
    fn revocation_is_recorded_once_in_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::init(dir.path(), &federation(), 365).unwrap();
        let issued = pki
            .issue(
                &Identity::node(federation(), "rouen".parse().unwrap()),
                &[],
                Validity::days_from_now(1),
            )
            .unwrap();
        let pem = fs::read_to_string(&issued.cert_path).unwrap();
        assert_eq!(
            pki.revoke(&pem).unwrap(),
            "spiffe://esup.example/member/rouen/node"
        );
        pki.revoke(&pem).unwrap();
        let ledger = pki.ledger().unwrap();
        assert_eq!(ledger.revoked.len(), 1);
        assert_eq!(ledger.crl_number, 3, "init, then two re-issues");
    }
}
