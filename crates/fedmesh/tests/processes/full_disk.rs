//! A node whose data volume fills: writes are refused with `UNAVAILABLE`, health says
//! `NOT_SERVING`, `fedmesh status` names the cause, the metric reads 0; once space is freed,
//! everything comes back on its own and nothing acknowledged is lost.
//!
//! The volume is a small tmpfs mounted in a user and mount namespace of the node's own
//! (`unshare -rm`), nearly filled by a ballast file that a watcher removes when the test
//! creates a `release` file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{
    Killed, assert_fails, assert_ok, channel, eventually, fedmesh, free_port, run, signal,
    start_demo, text, wait_exit,
};
use fedmesh_proto::pb;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;

/// Whether this machine lets an unprivileged process mount a tmpfs of its own. CI sets
/// `FEDMESH_REQUIRE_UNSHARE` where it does, so that the test cannot pass there unrun.
fn namespaces_work() -> bool {
    let works = Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        works || std::env::var_os("FEDMESH_REQUIRE_UNSHARE").is_none(),
        "unshare -rm cannot mount a tmpfs here, and FEDMESH_REQUIRE_UNSHARE is set"
    );
    works
}

/// How long each state the test waits for may take.
const WAIT: Duration = Duration::from_secs(30);

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_full_disk_is_reported_and_writes_resume_on_their_own_once_space_is_back() {
    if !namespaces_work() {
        eprintln!("unshare -rm cannot mount a tmpfs here: the full-disk test is skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _runtime = rt.enter();

    // The demo writes the PKI and the configurations, and seeds rennes2's offer to copy.
    let (mut demo, manifest) = start_demo(dir.path(), 2);
    let rennes2 = manifest.members[1].clone();
    let demo_admin = channel(
        &rennes2.endpoint,
        &manifest.ca,
        &rennes2.admin_cert,
        &rennes2.admin_key,
    );
    let seeded = eventually(&rt, "the seeded offer", WAIT, async || {
        OfferServiceClient::new(demo_admin.clone())
            .get_offer(pb::GetOfferRequest {
                offer_id: "rennes2.collab".into(),
            })
            .await
            .ok()?
            .into_inner()
            .offer
    });
    signal(&demo, "INT");
    assert!(wait_exit(&mut demo, Duration::from_secs(30)).success());

    // rennes2's node alone, its data on 16 MiB of which a ballast takes 12.
    let data = dir.path().join("small-volume");
    let release = dir.path().join("release");
    std::fs::create_dir(&data).unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let settings = [
        format!("data_dir={}", arg(&data)),
        format!("listen=127.0.0.1:{port}"),
        format!("metrics.listen=127.0.0.1:{metrics_port}"),
        "storage.probe_interval_ms=200".to_owned(),
        // The coordinator is not running: the node retries it rarely.
        "coordinator.retry_initial_ms=30000".to_owned(),
        "coordinator.retry_max_ms=60000".to_owned(),
    ];
    let script = r#"
        set -e
        mount -t tmpfs -o size=16m,mode=0700 tmpfs "$DATA"
        head -c 12582912 /dev/zero > "$DATA/ballast"
        set +e
        node=$$
        (while [ ! -e "$RELEASE" ] && kill -0 "$node" 2>/dev/null; do sleep 0.05; done
         rm -f "$DATA/ballast") &
        exec "$FEDMESH" "$@"
    "#;
    let mut command = Command::new("unshare");
    command
        .args(["-rm", "sh", "-c", script, "sh", "node", "--config"])
        .arg(&rennes2.config)
        .env("DATA", &data)
        .env("RELEASE", &release)
        .env("FEDMESH", env!("CARGO_BIN_EXE_fedmesh"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for setting in &settings {
        command.args(["--set", setting]);
    }
    let mut node = Killed(command.spawn().unwrap());
    let endpoint = format!("https://localhost:{port}");
    let admin = channel(
        &endpoint,
        &manifest.ca,
        &rennes2.admin_cert,
        &rennes2.admin_key,
    );
    let publish = |n: usize| {
        let mut offer = seeded.clone();
        offer.service_id = format!("fill-{n}");
        offer.offer_id = format!("rennes2.fill-{n}");
        offer.etag.clear();
        let text = offer.description.get_or_insert_with(Default::default);
        text.en = format!("{n} {}", "x".repeat(3_900));
        text.fr = format!("{n} {}", "y".repeat(3_900));
        let admin = admin.clone();
        async move {
            OfferServiceClient::new(admin)
                .publish_offer(pb::PublishOfferRequest {
                    offer: Some(offer),
                    etag: String::new(),
                })
                .await
        }
    };
    eventually(&rt, "the node on the small volume", WAIT, async || {
        publish(0).await.ok()
    });

    // Fill it: the first refusal is UNAVAILABLE, naming the storage.
    let mut acknowledged = vec![0];
    let refusal = loop {
        let n = acknowledged.len();
        assert!(n < 5_000, "16 MiB never filled");
        match rt.block_on(publish(n)) {
            Ok(_) => acknowledged.push(n),
            Err(status) => break status,
        }
    };
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");
    assert!(
        refusal.message().contains("storage"),
        "{}",
        refusal.message()
    );

    // Every way an operator looks says so.
    let config = arg(&rennes2.config);
    let set: Vec<&str> = settings
        .iter()
        .flat_map(|s| ["--set", s.as_str()])
        .collect();
    let probe = |extra: &[&str]| {
        run(fedmesh()
            .args(["health", "--config", config])
            .args(extra)
            .args(&set))
    };
    let unhealthy = eventually(&rt, "health NOT_SERVING", WAIT, async || {
        let out = probe(&[]);
        (!out.status.success()).then_some(out)
    });
    assert!(
        String::from_utf8_lossy(&unhealthy.stderr).contains("NOT_SERVING"),
        "{unhealthy:?}"
    );
    let alive = assert_ok(&probe(&["--live"]));
    assert!(alive.starts_with("NOT_SERVING (node at"), "{alive}");
    let connect = [
        "--endpoint",
        &endpoint,
        "--ca",
        arg(&manifest.ca),
        "--cert",
        arg(&rennes2.admin_cert),
        "--key",
        arg(&rennes2.admin_key),
    ];
    let status = run(fedmesh().args(connect).arg("status"));
    let (shown, error) = (text(&status.stdout), assert_fails(&status));
    assert!(
        shown.contains("storage        REFUSES WRITES since"),
        "{shown}"
    );
    assert!(shown.contains("No space left on device"), "{shown}");
    assert!(error.contains("the database refuses writes"), "{error}");
    let metrics = |expected: f64| async move {
        scrape(metrics_port)
            .await?
            .lines()
            .filter_map(|l| l.strip_prefix("fedmesh_store_writable "))
            .any(|v| v.trim().parse::<f64>() == Ok(expected))
            .then_some(())
    };
    eventually(&rt, "fedmesh_store_writable 0", WAIT, async || {
        metrics(0.0).await
    });

    // Space is back: writes resume on their own, and what was acknowledged is all there.
    std::fs::write(&release, b"").unwrap();
    eventually(&rt, "health SERVING again", WAIT, async || {
        probe(&[]).status.success().then_some(())
    });
    // (Its coordinator is not running: that is all it still says needs attention.)
    let status = run(fedmesh().args(connect).arg("status"));
    let shown = text(&status.stdout);
    assert!(shown.contains("storage        accepts writes"), "{shown}");
    assert!(!text(&status.stderr).contains("refuses writes"));
    eventually(&rt, "fedmesh_store_writable 1", WAIT, async || {
        metrics(1.0).await
    });
    let after = acknowledged.len() + 1;
    rt.block_on(publish(after)).unwrap();
    for n in acknowledged.iter().copied().chain([after]) {
        let offer = rt
            .block_on(
                OfferServiceClient::new(admin.clone()).get_offer(pb::GetOfferRequest {
                    offer_id: format!("rennes2.fill-{n}"),
                }),
            )
            .unwrap_or_else(|status| panic!("acknowledged offer {n} lost: {status:?}"))
            .into_inner()
            .offer
            .unwrap();
        assert!(offer.description.unwrap().en.starts_with(&format!("{n} ")));
    }
    signal(&node, "TERM");
    assert!(wait_exit(&mut node, Duration::from_secs(30)).success());
}

/// The party's `/metrics` on `port`, or `None` when it does not answer.
async fn scrape(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    Some(answer)
}
