//! Push authentication: verify the OIDC token Pub/Sub attaches to every push
//! (`Authorization: Bearer <JWT>`), a second lock behind Cloud Run's own IAM check.
//!
//! A token is accepted only if all of these hold:
//! - it is a JWS signed with **RS256** (no other algorithm, so neither `alg: none` nor an HS256
//!   token "signed" with the public key can pass) by a key in Google's JWKS, found by `kid`;
//! - `iss` is `accounts.google.com` or `https://accounts.google.com`;
//! - `aud` is the configured audience (`PUSH_AUTH_AUDIENCE`, what the subscription's `oidc_token`
//!   sets: the service URL);
//! - `email` is one of `PUSH_AUTH_SERVICE_ACCOUNTS` and `email_verified` is true;
//! - `exp` is in the future and `iat` not in the future, each with 60 s of leeway.
//!
//! The JWKS (`PUSH_AUTH_JWKS_URL`, default Google's) is cached for as long as its `Cache-Control:
//! max-age` says (an hour when absent, at most a day), and fetched again when a token names an
//! unknown `kid` (Google rotates keys), at most once every 30 s, failed or not, so that forged
//! `kid`s or an outage cannot make the service hammer Google. One fetch runs at a time, outside
//! the cache's lock: pushes whose key is cached are never held up by it. A rejected push gets 401
//! and is never processed; the reason is logged, the token never is. While no key can be had
//! (the endpoint down before the first fetch succeeded) a push gets 503 instead: Pub/Sub retries
//! it, as the token may well be valid.
//!
//! `PUSH_AUTH=off` disables this for the emulators and the local demo (the Pub/Sub emulator sends
//! no token); the service logs a warning at start-up when it is off.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
pub const ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];
const LEEWAY_SECONDS: u64 = 60;
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// What a verified token says about the pusher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pusher {
    pub email: String,
}

/// Why a push was refused. Never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no Authorization: Bearer header")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is signed with {0}, only RS256 is accepted")]
    Algorithm(String),
    #[error("the token names no key id (kid)")]
    NoKeyId,
    #[error("the token's key id is not in the JWKS")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is issued in the future")]
    NotYetValid,
    #[error("the token's issuer is not Google")]
    Issuer,
    #[error("the token's audience is not this service")]
    Audience,
    #[error("the token's email is not an allowed push service account")]
    Email,
    #[error("the token's email is not verified")]
    EmailNotVerified,
    #[error("the token lacks a required claim")]
    MissingClaim,
    #[error("the JWKS could not be fetched: {0}")]
    Jwks(String),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "no_token",
            AuthError::Jwks(_) => "jwks_unavailable",
            _ => "invalid_token",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub audience: String,
    pub service_accounts: Vec<String>,
    pub jwks_url: String,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    iat: Option<u64>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    kty: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

struct KeySet {
    keys: HashMap<String, DecodingKey>,
    expires: Instant,
}

/// Verifies push tokens against a cached JWKS.
pub struct Verifier {
    config: AuthConfig,
    http: reqwest::Client,
    cache: RwLock<Option<KeySet>>,
    /// Held while the JWKS is fetched (one fetch at a time); when the last fetch was tried.
    fetching: Mutex<Option<Instant>>,
    /// The least time between two fetches of the JWKS.
    refresh_interval: Duration,
}

impl Verifier {
    /// A verifier whose JWKS client times out after 10 s; `Err` when that client cannot be built
    /// (the service then stops at start-up rather than run without the timeout).
    pub fn new(config: AuthConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(crate::limits::JWKS_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the JWKS client: {e}"))?;
        Ok(Self {
            config,
            http,
            cache: RwLock::new(None),
            fetching: Mutex::new(None),
            refresh_interval: MIN_REFRESH_INTERVAL,
        })
    }

    /// Sets the least time between two fetches (30 s by default).
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Verifies the value of an `Authorization` header.
    pub async fn verify_header(&self, header: Option<&str>) -> Result<Pusher, AuthError> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify(token).await
    }

    pub async fn verify(&self, token: &str) -> Result<Pusher, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.ok_or(AuthError::NoKeyId)?;
        let key = self.key(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.config.audience]);
        validation.set_issuer(&ISSUERS);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => AuthError::Signature,
                K::ExpiredSignature => AuthError::Expired,
                K::ImmatureSignature => AuthError::NotYetValid,
                K::InvalidIssuer => AuthError::Issuer,
                K::InvalidAudience => AuthError::Audience,
                K::MissingRequiredClaim(_) => AuthError::MissingClaim,
                K::InvalidAlgorithm => AuthError::Algorithm("another algorithm".into()),
                _ => AuthError::Malformed,
            }
        })?;
        let claims = data.claims;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // jsonwebtoken does not enforce `iat` itself: require it here.
        let iat = claims.iat.ok_or(AuthError::MissingClaim)?;
        if iat > now + LEEWAY_SECONDS {
            return Err(AuthError::NotYetValid);
        }
        let email = claims.email.ok_or(AuthError::MissingClaim)?;
        if !self
            .config
            .service_accounts
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&email))
        {
            return Err(AuthError::Email);
        }
        let verified = match claims.email_verified {
            Some(serde_json::Value::Bool(b)) => b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
        if !verified {
            return Err(AuthError::EmailNotVerified);
        }
        Ok(Pusher { email })
    }

    /// The key for `kid`, from the cache, or from a fresh JWKS when the cache has expired or does
    /// not know the `kid`. One fetch at a time, at most one per refresh interval (success or
    /// not), never under the cache's lock: while one is under way, pushes whose key is cached go
    /// on with it.
    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let stale = {
            let cache = self.cache.read().await;
            match cache
                .as_ref()
                .and_then(|set| Some((set.keys.get(kid)?, set.expires)))
            {
                Some((k, expires)) if Instant::now() < expires => return Ok(k.clone()),
                found => found.map(|(k, _)| k.clone()),
            }
        };
        let mut last_attempt = match (self.fetching.try_lock(), &stale) {
            (Ok(guard), _) => guard,
            // A fetch is under way: a key we had still serves.
            (Err(_), Some(k)) => return Ok(k.clone()),
            (Err(_), None) => self.fetching.lock().await,
        };
        if last_attempt.is_some_and(|t| t.elapsed() < self.refresh_interval) {
            // Tried lately (perhaps by the push this one queued behind): answer from the cache.
            return match self.cache.read().await.as_ref() {
                Some(set) => set.keys.get(kid).cloned().ok_or(AuthError::UnknownKey),
                None => Err(AuthError::Jwks(format!(
                    "no keys yet; the last fetch failed, next try within {:?}",
                    self.refresh_interval
                ))),
            };
        }
        *last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                let key = set.keys.get(kid).cloned();
                *self.cache.write().await = Some(set);
                key.ok_or(AuthError::UnknownKey)
            }
            // JWKS unreachable: keep serving the keys we had (a rotation is rare, an outage of
            // Google's endpoint should not stop every push); without one, 503 until it is back.
            Err(e) => stale.ok_or(e),
        }
    }

    async fn fetch(&self) -> Result<KeySet, AuthError> {
        let resp = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .map_err(|e| AuthError::Jwks(format!("request failed: {}", e.without_url())))?;
        if !resp.status().is_success() {
            return Err(AuthError::Jwks(format!("HTTP {}", resp.status())));
        }
        let max_age = resp
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE)
            .min(MAX_MAX_AGE);
        let jwks: Jwks = resp
            .json()
            .await
            .map_err(|_| AuthError::Jwks("not a JWKS document".into()))?;
        let mut keys = HashMap::new();
        for k in jwks.keys {
            let usable =
                k.kty.as_deref() == Some("RSA") && k.alg.as_deref().is_none_or(|a| a == "RS256");
            if let (true, Some(kid), Some(n), Some(e)) = (usable, k.kid, k.n, k.e)
                && let Ok(key) = DecodingKey::from_rsa_components(&n, &e)
            {
                keys.insert(kid, key);
            }
        }
        Ok(KeySet {
            keys,
            expires: Instant::now() + max_age,
        })
    }
}

/// `max-age=N` from a Cache-Control value (`no-store`/`no-cache` mean 0).
fn max_age(header: &str) -> Option<Duration> {
    let mut out = None;
    for part in header.split(',').map(str::trim) {
        if part.eq_ignore_ascii_case("no-store") || part.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if let Some(v) = part.strip_prefix("max-age=") {
            out = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=19553, must-revalidate, no-transform"),
            Some(Duration::from_secs(19553))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }

    #[tokio::test]
    async fn rejects_without_touching_the_network_when_the_header_is_wrong() {
        let v = Verifier::new(AuthConfig {
            audience: "a".into(),
            service_accounts: vec!["p@x".into()],
            jwks_url: "http://127.0.0.1:9/certs".into(),
        })
        .expect("a verifier");
        assert_eq!(v.verify_header(None).await, Err(AuthError::Missing));
        assert_eq!(
            v.verify_header(Some("Basic abc")).await,
            Err(AuthError::Missing)
        );
        assert_eq!(
            v.verify_header(Some("Bearer ")).await,
            Err(AuthError::Missing)
        );
        assert_eq!(
            v.verify_header(Some("Bearer not.a.jwt")).await,
            Err(AuthError::Malformed)
        );
        // alg: none
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJhdWQiOiJhIn0.";
        assert!(
            v.verify_header(Some(&format!("Bearer {none}")))
                .await
                .is_err()
        );
    }
}
