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
use fedmesh_tests::{TestFederation, example_offer, https_get, https_get_with_head, wait_for};

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
async fn the_json_api_shows_what_the_coordinator_replicated() {
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
    let (status, _) = https_get(
        &format!("{base}/api/offers/unistra.nothing"),
        &ca,
        None,
        &bearer,
    )
    .await;
    assert_eq!(status, 404);
}

/// Every page and API path × every kind of caller: the dashboard identifies a client
/// certificate as the gRPC layer does and lets in only the consortium (its operators, the
/// coordinator) or the token.
#[tokio::test]
async fn only_the_consortium_reads_the_dashboard() {
    let (fed, _) = federation().await;
    let (base, token) = dashboard(&fed);
    let ca = fed.ca_pem();
    let operator = fed.issue(&fed.uri("operator/alice"));
    let agent = fed.issue(&fed.uri("member/unistra/agent/probe"));
    let leaver = fed.issue(&fed.uri("operator/leaver"));
    fed.running
        .pki
        .revoke(&String::from_utf8(fedmesh_tests::read(&leaver.cert_path)).unwrap())
        .unwrap();
    fed.running.reload_tls().unwrap();
    // Certificates the federation CA signed for what is no identity of this federation:
    // another federation's operator, and no URI SAN at all.
    let crafted = tempfile::tempdir().unwrap();
    let craft = |name: &str, uri: Option<&str>| {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        if let Some(uri) = uri {
            params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = fed.running.pki.sign(&mut params, &key).unwrap();
        let (cert_path, key_path) = (
            crafted.path().join(format!("{name}.pem")),
            crafted.path().join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, pem).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    };
    let foreign = craft("foreign", Some("spiffe://other.example/operator/eve"));
    let anonymous = craft("anonymous", None);
    let coordinator = fed.coordinator();
    let (unistra, rennes2) = (fed.member(0), fed.member(1));
    type Who<'a> = (
        &'a str,
        Option<(&'a std::path::Path, &'a std::path::Path)>,
        String,
        u16,
    );
    let mut callers: Vec<Who<'_>> = vec![
        (
            "an operator",
            Some((&operator.cert_path, &operator.key_path)),
            String::new(),
            200,
        ),
        (
            "the coordinator",
            Some((&coordinator.node_cert, &coordinator.node_key)),
            String::new(),
            200,
        ),
        (
            "the token",
            None,
            format!("Authorization: Bearer {token}\r\n"),
            200,
        ),
        (
            "the token cookie",
            None,
            format!("Cookie: fedmesh_dashboard={token}\r\n"),
            200,
        ),
        (
            "a member's admin",
            Some((&unistra.admin_cert, &unistra.admin_key)),
            String::new(),
            403,
        ),
        (
            "a member's node",
            Some((&rennes2.node_cert, &rennes2.node_key)),
            String::new(),
            403,
        ),
        (
            "an agent",
            Some((&agent.cert_path, &agent.key_path)),
            String::new(),
            403,
        ),
        ("nobody", None, String::new(), 401),
        (
            "a wrong token",
            None,
            "Authorization: Bearer wrong\r\n".into(),
            401,
        ),
        (
            "a token one character short",
            None,
            format!("Authorization: Bearer {}\r\n", &token[1..]),
            401,
        ),
        // Refused by the TLS layer (the CRL in force): no answer at all.
        (
            "a revoked operator",
            Some((&leaver.cert_path, &leaver.key_path)),
            String::new(),
            0,
        ),
    ];
    callers.push((
        "another federation's operator",
        Some((&foreign.0, &foreign.1)),
        String::new(),
        401,
    ));
    callers.push((
        "a certificate without identity",
        Some((&anonymous.0, &anonymous.1)),
        String::new(),
        401,
    ));
    let paths = [
        "/",
        "/incidents",
        "/offers/unistra.collab",
        "/members/rennes2",
        "/api/overview",
        "/api/incidents",
        "/api/offers/unistra.collab",
        "/api/members/rennes2",
    ];
    for (who, client, headers, expected) in &callers {
        for path in paths {
            let (status, head, body) =
                https_get_with_head(&format!("{base}{path}"), &ca, *client, headers).await;
            assert_eq!(status, *expected, "{who} on {path}: {body}");
            if status != 0 {
                for header in [
                    "content-security-policy: default-src 'none'; script-src 'self'",
                    "frame-ancestors 'none'",
                    "x-content-type-options: nosniff",
                    "referrer-policy: no-referrer",
                    "cache-control: no-store",
                ] {
                    assert!(
                        head.to_ascii_lowercase().contains(header),
                        "{who} on {path}: no `{header}` in\n{head}"
                    );
                }
            }
        }
    }

    // `?token=` sets the cookie and sends the browser to the same page without the token.
    let (status, head, _) = https_get_with_head(
        &format!("{base}/offers/unistra.collab?token={token}&lang=fr"),
        &ca,
        None,
        "",
    )
    .await;
    assert_eq!(status, 303, "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("location: /offers/unistra.collab?lang=fr\r\n"),
        "{head}"
    );
    assert!(
        lower.contains(&format!(
            "set-cookie: fedmesh_dashboard={token}; path=/; secure; httponly; samesite=strict"
        )),
        "{head}"
    );
}

/// What members wrote is shown as text, never run: an offer's name with markup, an address
/// with markup in its path.
#[tokio::test]
async fn every_value_on_a_page_is_escaped() {
    let (fed, _) = federation().await;
    let (base, token) = dashboard(&fed);
    let ca = fed.ca_pem();
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let mut hostile = example_offer("otp");
    hostile.service_id = "evil".into();
    hostile.service_name = "<script>alert(1)</script><img src=x onerror=alert(2)>".into();
    fed.publish(2, hostile).await;
    let page = wait_for("the offer on the overview", Duration::from_secs(10), || {
        let (url, ca, bearer) = (format!("{base}/"), ca.clone(), bearer.clone());
        async move {
            let (_, body) = https_get(&url, &ca, None, &bearer).await;
            body.contains("rouen.evil").then_some(body)
        }
    })
    .await;
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");
    let escaped = |html: &str| {
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    };
    assert!(escaped(&page), "{page}");
    let (_, detail) = https_get(&format!("{base}/offers/rouen.evil"), &ca, None, &bearer).await;
    assert!(
        escaped(&detail) && !detail.contains("<script>alert"),
        "{detail}"
    );
    // The address is not reflected into a page.
    for path in [
        "/offers/rouen.x%3C%2Ftitle%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/members/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    ] {
        let (status, body) = https_get(&format!("{base}{path}"), &ca, None, &bearer).await;
        assert_eq!(status, 404, "{path}");
        assert!(!body.contains("<script"), "{path}: {body}");
    }
}

/// Maintenance shows in the offer's time zone with its offset (the API keeps UTC), and a
/// cancelled window leaves the page.
#[tokio::test]
async fn maintenance_shows_in_the_offers_time_zone_until_cancelled() {
    let (fed, _) = federation().await;
    let (base, token) = dashboard(&fed);
    let ca = fed.ca_pem();
    let bearer = format!("Authorization: Bearer {token}\r\n");
    // 2027-01-15 06:00 UTC is 07:00 in Paris (winter time), the example offer's zone.
    let at = |rfc3339: &str| Some(rfc3339.parse::<prost_types::Timestamp>().unwrap());
    let window = OfferServiceClient::new(fed.as_admin(fed.member(0)))
        .announce_maintenance(pb::AnnounceMaintenanceRequest {
            request_id: "winter".into(),
            offer_id: "unistra.collab".into(),
            period: Some(pb::Period {
                start_time: at("2027-01-15T06:00:00Z"),
                end_time: at("2027-01-15T08:00:00Z"),
            }),
            summary: "Winter upgrade".into(),
            description: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .maintenance_window
        .unwrap();
    let page = |expect: bool| {
        let (url, ca, bearer) = (
            format!("{base}/offers/unistra.collab"),
            ca.clone(),
            bearer.clone(),
        );
        async move {
            let (_, body) = https_get(&url, &ca, None, &bearer).await;
            (body.contains("Winter upgrade") == expect).then_some(body)
        }
    };
    let shown = wait_for("the window on the page", Duration::from_secs(10), || {
        page(true)
    })
    .await;
    assert!(
        shown.contains(r#"<time datetime="2027-01-15T06:00:00Z">2027-01-15 07:00 +01:00</time>"#),
        "{shown}"
    );
    let (_, api) = https_get(
        &format!("{base}/api/offers/unistra.collab"),
        &ca,
        None,
        &bearer,
    )
    .await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(
        api["upcoming_maintenance"][0]["start"],
        "2027-01-15T06:00:00Z"
    );
    OfferServiceClient::new(fed.as_admin(fed.member(0)))
        .cancel_maintenance(pb::CancelMaintenanceRequest {
            request_id: "cancel-winter".into(),
            maintenance_id: window.maintenance_id,
            reason: "postponed to spring".into(),
        })
        .await
        .unwrap();
    wait_for(
        "the window to leave the page",
        Duration::from_secs(10),
        || page(false),
    )
    .await;
}

/// A rotated certificate reaches the dashboard with the gRPC listener, on the same reload.
#[tokio::test]
async fn the_dashboard_serves_a_rotated_certificate() {
    let (fed, _) = federation().await;
    let (base, _) = dashboard(&fed);
    let ca = fed.ca_pem();
    let port = fedmesh_tests::port_of(base.trim_end_matches('/'));
    let grpc = fedmesh_tests::port_of(&fed.coordinator().endpoint);
    let before = fedmesh_tests::served_certificate(port, &ca, b"http/1.1").await;
    assert_eq!(
        before,
        fedmesh_tests::served_certificate(grpc, &ca, b"h2").await
    );
    let coordinator: fedmesh_core::Identity = fed.uri("coordinator").parse().unwrap();
    fed.running
        .pki
        .issue(
            &coordinator,
            &["localhost".to_owned(), "127.0.0.1".to_owned()],
            fedmesh_tls::pki::Validity::days_from_now(30),
        )
        .unwrap();
    fed.running.reload_tls().unwrap();
    let after = fedmesh_tests::served_certificate(port, &ca, b"http/1.1").await;
    assert_ne!(
        after, before,
        "the dashboard still serves the old certificate"
    );
    assert_eq!(
        after,
        fedmesh_tests::served_certificate(grpc, &ca, b"h2").await
    );
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
    // States and times in the page's language: no English word, no raw timestamp.
    assert!(overview.contains(">disponible<"), "{overview}");
    assert!(overview.contains(">il y a "), "{overview}");
    assert!(!overview.contains(">available<"), "{overview}");
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
