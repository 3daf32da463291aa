//! Endpoints: where a party answers, as `https://host:port`.

/// Longest endpoint accepted.
pub const MAX_LEN: usize = 512;

/// Checks that `endpoint` is an `https://host:port` URL without a path; the error says why
/// not (the caller names the field).
pub fn validate(endpoint: &str) -> Result<(), String> {
    if endpoint.is_empty() {
        return Err("required".to_owned());
    }
    if endpoint.len() > MAX_LEN {
        return Err(format!("longer than {MAX_LEN} bytes"));
    }
    let Some(rest) = endpoint.strip_prefix("https://") else {
        return Err("must be an https://host:port URL without a path".to_owned());
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => return Err("must be an https://host:port URL without a path".to_owned()),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    if !host_ok || !port_ok {
        return Err("must be an https://host:port URL without a path".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_host_port() {
        for good in [
            "https://node.unistra.fr:7443",
            "https://127.0.0.1:1",
            "https://[::1]:7443/",
            "https://localhost:7400",
        ] {
            assert_eq!(validate(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "http://node:7443",
            "https://node",
            "https://node:7443/api",
            "node:7443",
            "https://node:0",
            "https://node:99999",
            "https://no de:1",
            "https://:1",
            &format!("https://{}:1", "a".repeat(600)),
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
