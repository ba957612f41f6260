//! Credentials for pushing to a handler: an ID token for the `--to` URL (Cloud Run checks it),
//! none for a local handler.

use anyhow::{Context, Result};
use google_cloud_auth::credentials::idtoken::{Builder, IDTokenCredentials};

/// ID tokens for Cloud Run; none for a local handler.
pub enum Auth {
    None,
    IdToken(IDTokenCredentials),
}

/// Whether `url` names a handler on this machine (`localhost` or a loopback address): such a
/// handler gets no ID token.
pub fn is_local(url: &str) -> Result<bool> {
    let parsed = reqwest::Url::parse(url).context("--to must be an absolute URL")?;
    Ok(pipeline::config::is_loopback_host(
        parsed.host_str().unwrap_or_default(),
    ))
}

impl Auth {
    pub fn for_url(url: &str) -> Result<Self> {
        if is_local(url)? {
            return Ok(Auth::None);
        }
        let audience = url.trim_end_matches('/').to_owned();
        let creds = Builder::new(audience).build().map_err(|e| {
            anyhow::anyhow!("cannot get ID tokens from Application Default Credentials: {e}")
        })?;
        Ok(Auth::IdToken(creds))
    }

    /// The `authorization` header value, if any.
    pub async fn header(&self) -> Result<Option<String>> {
        match self {
            Auth::None => Ok(None),
            Auth::IdToken(c) => Ok(Some(format!(
                "Bearer {}",
                c.id_token()
                    .await
                    .map_err(|e| anyhow::anyhow!("ID token: {e}"))?
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_handlers_get_no_token() {
        for url in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3:8080",
            "http://localhost:1/",
            "http://LOCALHOST:1/",
            "http://[::1]:8080",
        ] {
            assert!(matches!(Auth::for_url(url), Ok(Auth::None)), "{url}");
        }
        for url in [
            "https://to-bq-abc-uc.a.run.app",
            "http://localhost.example.com",
            "http://10.0.0.1",
        ] {
            assert!(!is_local(url).unwrap(), "{url}");
        }
        assert!(Auth::for_url("not a url").is_err());
    }
}
