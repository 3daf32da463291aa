//! Helpers shared by the process-level tests: running the `fedmesh` binary, signalling it,
//! waiting for it.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (for a party that must keep its address across restarts).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A client channel to `endpoint` with the federation CA and a party's certificate, with
/// short timeouts (a party that was just killed must not hold a call up for long).
pub(crate) fn channel(
    endpoint: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> fedmesh_grpc::GrpcChannel {
    let pem = fedmesh_grpc::ClientPem {
        ca: std::fs::read(ca).unwrap(),
        cert: std::fs::read(cert).unwrap(),
        key: std::fs::read(key).unwrap(),
    };
    let options = fedmesh_grpc::ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        server_name: None,
    };
    fedmesh_grpc::connect_pem(endpoint, &pem, options).unwrap()
}

/// The `fedmesh` binary, without the caller's FEDMESH_* settings or RUST_LOG.
pub(crate) fn fedmesh() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fedmesh"));
    // The shell running the tests may carry FEDMESH_* settings of its own.
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FEDMESH_")) {
        command.env_remove(key);
    }
    command.env_remove("RUST_LOG");
    // Nor a profiles file of the person running them.
    command.env("XDG_CONFIG_HOME", "/nonexistent/fedmesh-tests");
    command
}

pub(crate) fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run fedmesh: {e}"))
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "fedmesh failed ({}):\n{}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

pub(crate) fn assert_fails(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "fedmesh unexpectedly succeeded:\n{}",
        text(&output.stdout)
    );
    text(&output.stderr)
}

pub(crate) fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub(crate) fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fedmesh did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed when the test lets go of it, so that a test that fails midway
/// leaves no federation running behind it.
pub(crate) struct Killed(pub(crate) Child);

impl std::ops::Deref for Killed {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `fedmesh demo` with `members` members on free ports in `dir` (its output
/// discarded), and reads the `federation.json` it writes once every party listens.
pub(crate) fn start_demo(dir: &Path, members: u16) -> (Killed, fedmesh::federation::Manifest) {
    let mut demo = spawn_demo(dir, members, Stdio::null());
    let path = dir.join("federation.json");
    wait_file(&path, &mut demo);
    let manifest = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    (demo, manifest)
}

/// Polls `probe` (which runs on `rt`) every 50 ms for at most `within`.
pub(crate) fn eventually<T>(
    rt: &tokio::runtime::Runtime,
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = rt.block_on(probe()) {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `fedmesh demo` with `members` members on free ports in `dir`.
pub(crate) fn spawn_demo(dir: &Path, members: u16, stdout: Stdio) -> Killed {
    let child = fedmesh()
        .args([
            "demo",
            "--dir",
            dir.to_str().unwrap(),
            "--base-port",
            "0",
            "--members",
        ])
        .arg(members.to_string())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}

pub(crate) fn wait_file(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "fedmesh exited ({status}) before writing {}",
                path.display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} was never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real OTLP/gRPC trace receiver in the test process.
pub(crate) mod otlp {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };

    /// One received span.
    #[derive(Debug, Clone)]
    pub(crate) struct Span {
        /// Its name (`fedmesh.v1.NodeService/WhoAmI`).
        pub(crate) name: String,
        /// `service.name` of the exporter.
        pub(crate) service: String,
        /// `service.instance.id` of the exporter (a member id, for nodes).
        pub(crate) instance: String,
        /// Trace id, hex.
        pub(crate) trace_id: String,
        /// Span id, hex.
        pub(crate) span_id: String,
        /// Parent span id, hex (empty for a root).
        pub(crate) parent_span_id: String,
    }

    /// The spans received so far.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Collector {
        pub(crate) spans: Arc<Mutex<Vec<Span>>>,
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn attribute(
        attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
        key: &str,
    ) -> String {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let mut spans = self.spans.lock().unwrap();
            for resource_spans in request.into_inner().resource_spans {
                let attributes = resource_spans
                    .resource
                    .map(|r| r.attributes)
                    .unwrap_or_default();
                let service = attribute(&attributes, "service.name");
                let instance = attribute(&attributes, "service.instance.id");
                for scope in resource_spans.scope_spans {
                    for span in scope.spans {
                        spans.push(Span {
                            name: span.name,
                            service: service.clone(),
                            instance: instance.clone(),
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent_span_id: hex(&span.parent_span_id),
                        });
                    }
                }
            }
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    /// Starts a collector on loopback; returns its address and what it receives.
    pub(crate) async fn start() -> (std::net::SocketAddr, Arc<Mutex<Vec<Span>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        let spans = Arc::clone(&collector.spans);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (addr, spans)
    }
}
