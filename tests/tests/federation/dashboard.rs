//! The coordinator's dashboard: its JSON API over HTTPS with each way in (and out), and its
//! pages rendered in a real headless browser (Debian's `chromium`, installed by `.ci/run`),
//! with screenshots saved as test artifacts.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fedmesh_proto::pb;
use fedmesh_proto::pb::incident_service_client::IncidentServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient;
use fedmesh_tests::{TestFederation, example_offer, https_get, wait_for};

/// A federation where rennes2 is a tenant of unistra's collaboration offer and has opened an
/// incident on it.
async fn federation() -> (TestFederation, String) {
    let fed = TestFederation::start(3).await;
    OfferServiceClient::new(fed.as_admin(fed.member(0)))
        .publish_offer(pb::PublishOfferRequest {
            offer: Some(example_offer("collaboration")),
            etag: String::new(),
        })
        .await
        .unwrap();
    SubscriptionServiceClient::new(fed.as_admin(fed.member(1)))
        .request_subscription(pb::RequestSubscriptionRequest {
            request_id: "collab".into(),
            offer_id: "unistra.collab".into(),
            user_count: 300,
            contact_email: "dsi@rennes2.example".into(),
            accepted_terms_version: example_offer("collaboration").terms_version,
            ..Default::default()
        })
        .await
        .unwrap();
    let incident = IncidentServiceClient::new(fed.as_admin(fed.member(1)))
        .open_incident(pb::OpenIncidentRequest {
            request_id: "dash".into(),
            offer_id: "unistra.collab".into(),
            priority: pb::Priority::P2 as i32,
            summary: "Login fails".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap()
        .incident_id;
    (fed, incident)
}

/// The dashboard's base URL and token.
fn dashboard(fed: &TestFederation) -> (String, String) {
    let url = fed.coordinator().dashboard.clone().unwrap();
    let (base, token) = url.split_once("/?token=").unwrap();
    (base.to_owned(), token.to_owned())
}

#[tokio::test]
async fn the_json_api_needs_a_token_or_a_federation_certificate() {
    let (fed, incident) = federation().await;
    let (base, token) = dashboard(&fed);
    let ca = fed.ca_pem();
    let bearer = format!("Authorization: Bearer {token}\r\n");

    // The coordinator replicates what happened; the API shows it.
    let overview = wait_for(
        "the overview with the tenant",
        Duration::from_secs(10),
        || {
            let (url, ca, bearer) = (format!("{base}/api/overview"), ca.clone(), bearer.clone());
            async move {
                let (status, body) = https_get(&url, &ca, None, &bearer).await;
                assert_eq!(status, 200, "{body}");
                let json: serde_json::Value = serde_json::from_str(&body).unwrap();
                (json["tenants"] == 1).then_some(json)
            }
        },
    )
    .await;
    assert_eq!(overview["members"], 3);
    assert_eq!(overview["offers"][0]["offer_id"], "unistra.collab");
    let incidents = wait_for(
        "the incident at the coordinator",
        Duration::from_secs(10),
        || {
            let (url, ca, bearer) = (format!("{base}/api/incidents"), ca.clone(), bearer.clone());
            async move {
                let (_, body) = https_get(&url, &ca, None, &bearer).await;
                let json: serde_json::Value = serde_json::from_str(&body).unwrap();
                json["incidents"]
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .cloned()
            }
        },
    )
    .await;
    assert_eq!(incidents[0]["incident_id"], incident.as_str());
    assert_eq!(incidents[0]["sla"], "on_time");
    let (status, body) = https_get(
        &format!("{base}/api/offers/unistra.collab"),
        &ca,
        None,
        &bearer,
    )
    .await;
    assert_eq!(status, 200);
    let offer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(offer["trend"].as_array().unwrap().len(), 6);
    let (status, body) =
        https_get(&format!("{base}/api/members/rennes2"), &ca, None, &bearer).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("unistra.collab"),
        "rennes2 subscribes to it: {body}"
    );

    // No token, a wrong one: refused. A federation certificate: let in.
    let (status, _) = https_get(&format!("{base}/api/overview"), &ca, None, "").await;
    assert_eq!(status, 401);
    let (status, _) = https_get(
        &format!("{base}/api/overview"),
        &ca,
        None,
        "Authorization: Bearer wrong\r\n",
    )
    .await;
    assert_eq!(status, 401);
    let admin = fed.member(2);
    let (status, _) = https_get(
        &format!("{base}/api/overview"),
        &ca,
        Some((&admin.admin_cert, &admin.admin_key)),
        "",
    )
    .await;
    assert_eq!(status, 200);
    // ?token= once sets a cookie.
    let (status, _) = https_get(&format!("{base}/?token={token}"), &ca, None, "").await;
    assert_eq!(status, 200);
    let (status, _) = https_get(
        &format!("{base}/api/offers/unistra.nothing"),
        &ca,
        None,
        &bearer,
    )
    .await;
    assert_eq!(status, 404);
}

/// Debian's Chromium, if installed (`.ci/run` installs it and requires it).
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn browse(browser: &PathBuf, profile: &std::path::Path, args: &[&str], url: &str) -> String {
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--ignore-certificate-errors",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_render_in_a_headless_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("FEDMESH_REQUIRE_BROWSER").is_none(),
            "chromium is required here (FEDMESH_REQUIRE_BROWSER) but not installed"
        );
        eprintln!("skipped: no chromium on this machine (.ci/run installs it)");
        return;
    };
    let (fed, incident) = federation().await;
    let (base, token) = dashboard(&fed);
    let ca = fed.ca_pem();
    let bearer = format!("Authorization: Bearer {token}\r\n");
    wait_for(
        "the coordinator to know the tenant and the incident",
        Duration::from_secs(10),
        || {
            let (url, ca, bearer) = (format!("{base}/api/overview"), ca.clone(), bearer.clone());
            async move {
                let (_, body) = https_get(&url, &ca, None, &bearer).await;
                body.contains("\"tenants\":1").then_some(())
            }
        },
    )
    .await;
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let page = |path: &str, lang: &str| format!("{base}{path}?token={token}&lang={lang}");
    let browser2 = browser.clone();
    let profile_path = profile.path().to_owned();
    let dom = move |url: String| {
        let browser = browser2.clone();
        let profile = profile_path.clone();
        tokio::task::spawn_blocking(move || browse(&browser, &profile, &["--dump-dom"], &url))
    };

    let overview = dom(page("/", "fr")).await.unwrap();
    assert!(overview.contains("<h1>Fédération</h1>"), "{overview}");
    assert!(overview.contains("nœuds actifs"), "{overview}");
    assert!(overview.contains("unistra.collab"), "{overview}");
    assert!(overview.contains(">rennes2</a>"), "{overview}");
    let offer = dom(page("/offers/unistra.collab", "en")).await.unwrap();
    assert!(
        offer.contains("Users per month") && offer.contains("<svg"),
        "{offer}"
    );
    assert!(offer.contains(&incident), "{offer}");
    assert!(offer.contains("SLA 99"), "{offer}");
    let incidents = dom(page("/incidents", "en")).await.unwrap();
    assert!(
        incidents.contains(&incident) && incidents.contains("on time"),
        "{incidents}"
    );
    let member = dom(page("/members/rennes2", "fr")).await.unwrap();
    assert!(member.contains("Est abonné à"), "{member}");

    // Screenshots on a laptop and on a phone.
    for (name, path, size) in [
        ("overview-laptop", "/", "1280,900"),
        ("offer-laptop", "/offers/unistra.collab", "1280,1100"),
        ("overview-phone", "/", "390,844"),
    ] {
        let file = artifacts.join(format!("{name}.png"));
        let (browser, profile, url) =
            (browser.clone(), profile.path().to_owned(), page(path, "fr"));
        let shot = file.clone();
        tokio::task::spawn_blocking(move || {
            browse(
                &browser,
                &profile,
                &[
                    &format!("--window-size={size}"),
                    &format!("--screenshot={}", shot.display()),
                ],
                &url,
            )
        })
        .await
        .unwrap();
        let png = std::fs::read(&file).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{}",
            file.display()
        );
    }
}
