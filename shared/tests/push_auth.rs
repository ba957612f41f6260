//! Push authentication against locally generated RSA keys and a local JWKS server (the Pub/Sub
//! emulator sends no token, so the tokens here are the test's own, shaped like Pub/Sub's).
//! Keys come from the `openssl` command line tool.

mod support;

use pipeline::sink::memory::MemoryStore;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pipeline::push_auth::{AuthConfig, AuthError, Verifier};
use serde_json::{Value, json};

const AUDIENCE: &str = "https://to-gcs-123.us-central1.run.app";
const PUSHER: &str = "push@project.iam.gserviceaccount.com";

struct Key {
    kid: String,
    private_pem: Vec<u8>,
    public_pem: Vec<u8>,
    n: String,
}

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    if let Some(i) = input {
        child.stdin.take().unwrap().write_all(i).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

fn new_key(kid: &str) -> Key {
    let private_pem = openssl(&["genrsa", "-traditional", "2048"], None);
    let public_pem = openssl(&["rsa", "-pubout"], Some(&private_pem));
    let modulus =
        String::from_utf8(openssl(&["rsa", "-noout", "-modulus"], Some(&private_pem))).unwrap();
    let hex = modulus.trim().trim_start_matches("Modulus=");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    Key {
        kid: kid.into(),
        private_pem,
        public_pem,
        n: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({"aud": AUDIENCE, "iss": "https://accounts.google.com", "email": PUSHER,
           "email_verified": true, "iat": now(), "exp": now() + 3600, "sub": "1137", "azp": "1137"})
}

fn sign(key: &Key, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&key.private_pem).unwrap(),
    )
    .unwrap()
}

/// A JWKS server on a random port that counts its requests; `keys` can be swapped (rotation),
/// `down` makes it answer 500, `delay_ms` makes it slow.
struct Jwks {
    url: String,
    hits: Arc<AtomicUsize>,
    keys: Arc<std::sync::Mutex<Value>>,
    down: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
}

async fn jwks_server(keys: &[&Key], cache_control: &'static str) -> Jwks {
    let doc = |keys: &[&Key]| json!({"keys": keys.iter().map(|k| json!({"kid": k.kid, "kty": "RSA", "alg": "RS256", "use": "sig", "n": k.n, "e": "AQAB"})).collect::<Vec<_>>()});
    let hits = Arc::new(AtomicUsize::new(0));
    let keys = Arc::new(std::sync::Mutex::new(doc(keys)));
    let down = Arc::new(AtomicBool::new(false));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let (h, k, d, w) = (hits.clone(), keys.clone(), down.clone(), delay_ms.clone());
    let app = Router::new().route(
        "/certs",
        get(move || {
            let (h, k, d, w) = (h.clone(), k.clone(), d.clone(), w.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let wait = w.load(Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                if d.load(Ordering::SeqCst) {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                let body = k.lock().unwrap().to_string();
                (
                    [
                        (header::CACHE_CONTROL, cache_control),
                        (header::CONTENT_TYPE, "application/json"),
                    ],
                    body,
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Jwks {
        url,
        hits,
        keys,
        down,
        delay_ms,
    }
}

fn verifier(jwks: &Jwks) -> Verifier {
    Verifier::new(AuthConfig {
        audience: AUDIENCE.into(),
        service_accounts: vec![PUSHER.into()],
        jwks_url: jwks.url.clone(),
    })
    .expect("a verifier")
}

/// Google's JWKS down and no keys fetched yet: every push is answered 503 (Pub/Sub retries; the
/// token may be fine), not 401, and the endpoint is asked once per refresh interval, not once
/// per push.
#[tokio::test]
async fn a_jwks_outage_before_any_key_is_503_and_asked_once_per_interval() {
    let key = new_key("k1");
    let jwks = jwks_server(&[&key], "max-age=600").await;
    jwks.down.store(true, Ordering::SeqCst);
    let v = verifier(&jwks);
    for _ in 0..5 {
        let e = v.verify(&sign(&key, "k1", &claims())).await.unwrap_err();
        assert!(matches!(e, AuthError::Jwks(_)), "{e:?}");
        let failure = pipeline::failure::Failure::from(e);
        assert_eq!(failure.kind.status().as_u16(), 503, "{failure:?}");
    }
    assert_eq!(
        jwks.hits.load(Ordering::SeqCst),
        1,
        "one fetch per interval"
    );
}

/// A refresh under way (a new `kid`, a slow endpoint) does not hold up pushes whose key is
/// cached.
#[tokio::test]
async fn a_slow_refresh_does_not_stall_pushes_with_cached_keys() {
    let (k1, k2) = (new_key("k1"), new_key("k2"));
    let jwks = jwks_server(&[&k1, &k2], "max-age=600").await;
    *jwks.keys.lock().unwrap() = json!({"keys": [
        {"kid": "k1", "kty": "RSA", "alg": "RS256", "n": k1.n, "e": "AQAB"}]});
    let v = Arc::new(verifier(&jwks).with_refresh_interval(std::time::Duration::from_millis(100)));
    assert!(v.verify(&sign(&k1, "k1", &claims())).await.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    jwks.delay_ms.store(3_000, Ordering::SeqCst);
    let rotated = tokio::spawn({
        let (v, token) = (v.clone(), sign(&k2, "k2", &claims()));
        async move { v.verify(&token).await }
    });
    while jwks.hits.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    assert!(v.verify(&sign(&k1, "k1", &claims())).await.is_ok());
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1_000),
        "a cached key waited {:?} for a refresh",
        started.elapsed()
    );
    let _ = rotated.await;
}

#[tokio::test]
async fn only_a_valid_google_push_token_passes() {
    let key = new_key("k1");
    let other = new_key("k2");
    let jwks = jwks_server(&[&key], "public, max-age=3600").await;
    let v = verifier(&jwks);

    let valid = sign(&key, "k1", &claims());
    assert_eq!(v.verify(&valid).await.unwrap().email, PUSHER);
    // The other issuer spelling is Google's too.
    let mut c = claims();
    c["iss"] = json!("accounts.google.com");
    assert!(v.verify(&sign(&key, "k1", &c)).await.is_ok());

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        sign(&key, "k1", &c)
    };
    let hs256_with_public_key = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(&key.public_pem)).unwrap()
    };
    let alg_none = {
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
            b64(&claims())
        )
    };
    let cases: Vec<(&str, String, AuthError)> = vec![
        (
            "forged signature",
            sign(&other, "k1", &claims()),
            AuthError::Signature,
        ),
        (
            "unknown kid",
            sign(&other, "k2", &claims()),
            AuthError::UnknownKey,
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("https://evil.example")),
            AuthError::Audience,
        ),
        (
            "wrong email",
            with(&|c| c["email"] = json!("someone@else.iam.gserviceaccount.com")),
            AuthError::Email,
        ),
        (
            "unverified email",
            with(&|c| c["email_verified"] = json!(false)),
            AuthError::EmailNotVerified,
        ),
        (
            "no email_verified",
            with(&|c| {
                c.as_object_mut().unwrap().remove("email_verified");
            }),
            AuthError::EmailNotVerified,
        ),
        (
            "expired",
            with(&|c| {
                c["iat"] = json!(now() - 7200);
                c["exp"] = json!(now() - 3600)
            }),
            AuthError::Expired,
        ),
        (
            "issued in the future",
            with(&|c| c["iat"] = json!(now() + 3600)),
            AuthError::NotYetValid,
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.example")),
            AuthError::Issuer,
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            AuthError::MissingClaim,
        ),
        (
            "no iat",
            with(&|c| {
                c.as_object_mut().unwrap().remove("iat");
            }),
            AuthError::MissingClaim,
        ),
        (
            "HS256 signed with the public key",
            hs256_with_public_key,
            AuthError::Algorithm("HS256".into()),
        ),
    ];
    for (what, token, want) in cases {
        assert_eq!(v.verify(&token).await, Err(want), "{what}");
    }
    assert!(v.verify(&alg_none).await.is_err(), "alg: none");
    assert_eq!(
        v.verify_header(None).await,
        Err(AuthError::Missing),
        "missing header"
    );
    // Expiry within the 60 s leeway still passes.
    assert!(
        v.verify(&with(&|c| c["exp"] = json!(now() - 30)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_jwks_is_cached_and_refreshed_for_a_new_kid() {
    let k1 = new_key("k1");
    let k2 = new_key("k2");
    let jwks = jwks_server(&[&k1], "public, max-age=3600").await;
    let v = verifier(&jwks);
    for _ in 0..5 {
        assert!(v.verify(&sign(&k1, "k1", &claims())).await.is_ok());
    }
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1, "cached for max-age");

    // Google rotates: k2 appears. A token with the new kid triggers one fetch... unless one
    // happened in the last 30 s, which protects Google (and us) from forged kids.
    *jwks.keys.lock().unwrap() = json!({"keys": [
        {"kid": "k2", "kty": "RSA", "alg": "RS256", "n": k2.n, "e": "AQAB"}]});
    assert_eq!(
        v.verify(&sign(&k2, "k2", &claims())).await,
        Err(AuthError::UnknownKey)
    );
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1, "refetch throttled");

    // A fresh verifier (a new instance after the rotation) fetches at once and accepts k2.
    let v2 = verifier(&jwks);
    assert!(v2.verify(&sign(&k2, "k2", &claims())).await.is_ok());
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 2);

    // no-store: every unknown kid past the throttle window refetches; a cached expired set is
    // refetched on the next verification.
    let k3 = new_key("k3");
    let jwks = jwks_server(&[&k3], "no-store").await;
    let v3 = verifier(&jwks);
    assert!(v3.verify(&sign(&k3, "k3", &claims())).await.is_ok());
    assert!(v3.verify(&sign(&k3, "k3", &claims())).await.is_ok());
    assert_eq!(
        jwks.hits.load(Ordering::SeqCst),
        1,
        "expired, but refetches are throttled to one per 30 s"
    );
}

#[tokio::test]
async fn an_unauthenticated_push_is_refused_before_it_is_read() {
    let key = new_key("k1");
    let jwks = jwks_server(&[&key], "max-age=600").await;
    let store = Arc::new(MemoryStore::default());
    let app = support::spawn_local(
        pipeline::Service::ToGcs,
        &[
            ("TRANSCRIPT_BUCKET", "b-1"),
            ("PUSH_AUTH", "on"),
            ("PUSH_AUTH_AUDIENCE", AUDIENCE),
            ("PUSH_AUTH_SERVICE_ACCOUNTS", PUSHER),
            ("PUSH_AUTH_JWKS_URL", &jwks.url),
        ],
        pipeline::handler::Destination::Objects {
            store: store.clone(),
            prefix: "t".into(),
        },
        None,
    )
    .await;
    let url = format!("{}/", app.url);

    let data = json!({"event": {"id": "e1", "timestamp": "2024-05-14T21:12:07Z", "feature": "f", "action": "a",
        "parameters": {"metadata": {"recordsPrivateMetadataTranscript": 1}, "privateMetadata": {"promptText": "x"}}},
        "metadata": {"identifier": {"licensedInstance": {"externalUrl": "https://sourcegraph.com"}}}});
    let body = support::push("1", data.to_string().as_bytes()).to_bytes();
    let client = reqwest::Client::new();

    let r = client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "no_token");
    let forged = sign(&new_key("k1"), "k1", &claims());
    let r = client
        .post(&url)
        .bearer_auth(&forged)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let text = r.text().await.unwrap();
    assert!(!text.contains(&forged), "the token is echoed");
    assert!(
        store.objects().is_empty(),
        "an unauthenticated push was processed"
    );

    let r = client
        .post(&url)
        .bearer_auth(sign(&key, "k1", &claims()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(store.objects().len(), 1);
    // Health checks need no token.
    let r = client.get(format!("{url}healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
