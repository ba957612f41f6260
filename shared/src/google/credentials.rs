//! Credentials, made in one place for every client: Application Default Credentials (on Cloud
//! Run, the service account's tokens from the metadata server, cached and refreshed by Google's
//! `google-cloud-auth`), scoped to what the caller needs; or none against an emulator.
//!
//! The same [`Credentials`] value attaches the token to the JSON layer's requests
//! ([`Credentials::authorize`]), is handed to Google's client libraries
//! ([`Credentials::for_google_client`]), and answers `gcp-bigquery-client`'s token requests
//! ([`BigQueryToken`]).

use std::sync::Arc;

use async_trait::async_trait;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use google_cloud_auth::credentials::{AccessTokenCredentials, anonymous};

use super::{Call, GoogleError};

/// No access token could be had (the metadata server or the key file failed).
#[derive(Debug, Clone, Copy)]
pub struct NoToken;

#[derive(Clone, Debug)]
pub struct Credentials {
    /// `None` against an emulator.
    tokens: Option<AccessTokenCredentials>,
}

impl Credentials {
    /// ADC with `scopes`, or none when `emulator` (the emulators take no credentials).
    pub fn new(emulator: bool, scopes: &[&str], service: &str) -> Result<Self, String> {
        if emulator {
            return Ok(Self { tokens: None });
        }
        let tokens = google_cloud_auth::credentials::Builder::default()
            .with_scopes(scopes.iter().copied())
            .build_access_token_credentials()
            .map_err(|e| {
                format!("cannot load Application Default Credentials for {service}: {e}")
            })?;
        Ok(Self {
            tokens: Some(tokens),
        })
    }

    /// Tokens from `tokens` (a test's own token source).
    #[cfg(test)]
    pub fn from_tokens(tokens: AccessTokenCredentials) -> Self {
        Self {
            tokens: Some(tokens),
        }
    }

    /// Against an emulator: no token is sent.
    pub fn is_emulator(&self) -> bool {
        self.tokens.is_none()
    }

    /// The current access token (`None` against an emulator); the error never holds the token.
    pub async fn token(&self) -> Result<Option<String>, NoToken> {
        match &self.tokens {
            None => Ok(None),
            Some(c) => c
                .access_token()
                .await
                .map(|t| Some(t.token))
                .map_err(|_| NoToken),
        }
    }

    /// The request with its `Authorization` header: the one place the JSON layer attaches it.
    pub async fn authorize(
        &self,
        call: Call,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, GoogleError> {
        let token = self
            .token()
            .await
            .map_err(|_| GoogleError::transport(call, "no access token"))?;
        Ok(match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
    }

    /// The same credentials for Google's own client libraries (anonymous for an emulator).
    pub fn for_google_client(&self) -> google_cloud_auth::credentials::Credentials {
        match &self.tokens {
            Some(tokens) => tokens.clone().into(),
            None => anonymous::Builder::new().build(),
        }
    }
}

/// `gcp-bigquery-client`'s token source, from [`Credentials`]. The crate always sends a bearer
/// token; against the emulator it sends the placeholder `emulator`, which the emulator ignores.
#[derive(Clone)]
pub struct BigQueryToken(pub Arc<Credentials>);

#[async_trait]
impl Authenticator for BigQueryToken {
    async fn access_token(&self) -> Result<String, BQError> {
        match self.0.token().await {
            Ok(Some(token)) => Ok(token),
            Ok(None) => Ok("emulator".to_string()),
            Err(_) => Err(BQError::NoToken),
        }
    }
}
