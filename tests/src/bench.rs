//! What the benchmarks under `tests/benches/` share: their command-line options and the
//! percentiles they report.

use std::time::Duration;

/// The value after `name` on the command line (`--batches 50`), or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` percentile (0 to 1) of `sorted` latencies; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// A channel to `endpoint` of a federation described by `manifest` (one a benchmark runs in a
/// child process), presenting the certificate and key in the given files.
#[allow(clippy::unwrap_used)]
pub fn channel(
    manifest: &fedmesh::federation::Manifest,
    endpoint: &str,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> fedmesh_grpc::GrpcChannel {
    let pem = fedmesh_grpc::ClientPem {
        ca: std::fs::read(&manifest.ca).unwrap(),
        cert: std::fs::read(cert).unwrap(),
        key: std::fs::read(key).unwrap(),
    };
    fedmesh_grpc::connect_pem(endpoint, &pem, fedmesh_grpc::ClientOptions::default()).unwrap()
}
