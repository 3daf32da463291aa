//! The identity carried by a certificate: its single URI SAN, parsed as a fedmesh [`Identity`].

use fedmesh_core::{Identity, IdentityError};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a certificate does not carry a usable identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertIdentityError {
    /// The bytes are not an X.509 certificate.
    #[error("certificate does not parse: {0}")]
    Parse(String),
    /// No URI SAN at all.
    #[error("certificate has no URI subject alternative name")]
    NoUriSan,
    /// More than one URI SAN: the identity would be ambiguous.
    #[error("certificate has {0} URI subject alternative names; exactly one is allowed")]
    ManyUriSans(usize),
    /// The URI SAN is not a fedmesh identity.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Reads the identity from a DER certificate: exactly one URI SAN, of a known shape.
pub fn identity_from_der(der: &[u8]) -> Result<Identity, CertIdentityError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertIdentityError::Parse(e.to_string()))?;
    let uris: Vec<&str> = alternative_names(&cert)?
        .into_iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => Err(CertIdentityError::NoUriSan),
        [uri] => Ok(uri.parse()?),
        many => Err(CertIdentityError::ManyUriSans(many.len())),
    }
}

/// When a DER certificate expires, as seconds since the Unix epoch.
pub fn not_after_unix(der: &[u8]) -> Result<i64, CertIdentityError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertIdentityError::Parse(e.to_string()))?;
    Ok(cert.validity().not_after.timestamp())
}

/// The DNS names (SANs) a DER certificate answers for, in order.
pub fn dns_names(der: &[u8]) -> Result<Vec<String>, CertIdentityError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertIdentityError::Parse(e.to_string()))?;
    Ok(alternative_names(&cert)?
        .into_iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect())
}

/// Every subject alternative name of a certificate, in order.
fn alternative_names<'a>(
    cert: &'a X509Certificate<'_>,
) -> Result<Vec<&'a GeneralName<'a>>, CertIdentityError> {
    Ok(cert
        .subject_alternative_name()
        .map_err(|e| CertIdentityError::Parse(e.to_string()))?
        .map(|ext| ext.value.general_names.iter().collect())
        .unwrap_or_default())
}
