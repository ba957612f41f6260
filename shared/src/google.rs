//! The one layer between the pipeline and Google's APIs.
//!
//! Maintained clients make the calls they cover:
//! - Cloud Storage object writes and reads: Google's `google-cloud-storage` ([`crate::sink::gcs`],
//!   [`storage::Bucket::read`]);
//! - BigQuery `tables.get` and `jobs.query`/`jobs.getQueryResults`: `gcp-bigquery-client`
//!   ([`bigquery`]), which can also send `tabledata.insertAll` (by default the rows' request is
//!   written from their JSON text and sent through [`Api`]: `crate::sink::bigquery` says why);
//! - BigQuery Storage Write API appends on the table's default stream (the default write path)
//!   and `GetWriteStream`: Google's `google-cloud-bigquery`, over gRPC ([`storage_write`]);
//! - Pub/Sub publishing (dead letters): `google-cloud-pubsub`'s `Publisher`, over gRPC
//!   ([`pubsub::Publisher`]).
//!
//! What none of them covers here goes over JSON through [`Api`], the one hand-written client:
//! Cloud Storage `testIamPermissions`, `buckets.get` and object listing ([`storage`]), and Pub/Sub
//! pull, acknowledge and `modifyAckDeadline` for `replay` ([`pubsub::Subscription`]).
//!
//! Whichever client made a call, its failure becomes one [`GoogleError`] and is judged by one
//! classifier, [`classify`]: retry, misconfigured, permanent, or conflict. The maintained clients'
//! own retry loops are driven by the same classifier ([`error::ClassifiedRetries`]). Access tokens
//! (Application Default Credentials, or none against an emulator) come from one place,
//! [`Credentials`], whichever client sends them.
//!
//! Every kind of request the pipeline sends is one [`Call`] in [`CALLS`], named by its method id
//! in Google's discovery document. The contract test (`tests/src/contract.rs`) records every
//! request the services, `replay` and the audit send on the emulators, holds each to that
//! document, and checks that it saw exactly these kinds.

/// Configures one of Google's client builders the one way: the shared [`Credentials`], the
/// classifier's retries within `$timeout`, and the emulator's address when there is one. (A
/// macro: the builders of `google-cloud-storage` and `google-cloud-pubsub` share no trait.)
macro_rules! configure_google_client {
    ($builder:expr, $credentials:expr, $timeout:expr, $emulator:expr) => {{
        let builder = $builder
            .with_credentials($credentials.for_google_client())
            .with_retry_policy($crate::google::error::ClassifiedRetries::within($timeout));
        match $emulator {
            Some(endpoint) => builder.with_endpoint(endpoint),
            None => builder,
        }
    }};
}

pub mod api;
pub mod bigquery;
pub mod credentials;
pub mod error;
pub mod pubsub;
pub mod storage;
pub mod storage_write;

pub use api::{Api, Endpoint};
pub use credentials::Credentials;
pub use error::{Class, GoogleError, classify};

/// One Google API: where it lives, as its discovery document says (`rootUrl` + `servicePath`).
/// An emulator serves the same paths under its own `http://host:port/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoogleApi {
    /// For messages: `Cloud Storage`, `BigQuery`, `Pub/Sub`.
    pub name: &'static str,
    /// The discovery document's `rootUrl`.
    pub root_url: &'static str,
    /// The discovery document's `servicePath`.
    pub service_path: &'static str,
}

pub const STORAGE: GoogleApi = GoogleApi {
    name: "Cloud Storage",
    root_url: "https://storage.googleapis.com/",
    service_path: "storage/v1/",
};

pub const BIGQUERY: GoogleApi = GoogleApi {
    name: "BigQuery",
    root_url: "https://bigquery.googleapis.com/",
    service_path: "bigquery/v2/",
};

pub const PUBSUB: GoogleApi = GoogleApi {
    name: "Pub/Sub",
    root_url: "https://pubsub.googleapis.com/",
    service_path: "",
};

/// One kind of request the pipeline sends to Google.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The method id in Google's discovery document (`storage.objects.list`).
    pub id: &'static str,
    /// Who sends it, and when.
    pub sent_by: &'static str,
    /// Through which client.
    pub client: &'static str,
}

impl Call {
    /// The API the method belongs to: the first part of its id (`storage`).
    pub fn api(&self) -> &'static str {
        self.id.split('.').next().unwrap_or(self.id)
    }
}

/// The calls, one constant each, used where the call is made and listed in [`CALLS`].
pub mod calls {
    use super::Call;

    const JSON: &str = "the JSON layer (`google::Api`)";
    const STORAGE_CRATE: &str = "google-cloud-storage";
    const BIGQUERY_CRATE: &str = "gcp-bigquery-client";

    pub const OBJECTS_INSERT: Call = Call {
        id: "storage.objects.insert",
        sent_by: "to-gcs: one multipart upload per transcript, create-only",
        client: STORAGE_CRATE,
    };
    pub const OBJECTS_GET: Call = Call {
        id: "storage.objects.get",
        sent_by: "replay audit: reads each object back to classify it (`alt=media`)",
        client: STORAGE_CRATE,
    };
    pub const OBJECTS_LIST: Call = Call {
        id: "storage.objects.list",
        sent_by: "to-gcs after a 403 (is the object there?); replay audit (each hour's objects)",
        client: JSON,
    };
    pub const BUCKETS_TEST_IAM_PERMISSIONS: Call = Call {
        id: "storage.buckets.testIamPermissions",
        sent_by: "to-gcs at start-up: may it create and list objects?",
        client: JSON,
    };
    pub const BUCKETS_GET: Call = Call {
        id: "storage.buckets.get",
        sent_by: "to-gcs at start-up, on the emulator only (it has no IAM): does the bucket exist?",
        client: JSON,
    };
    pub const TABLES_GET: Call = Call {
        id: "bigquery.tables.get",
        sent_by: "to-bq and sub-v2 at start-up: the table and its columns",
        client: BIGQUERY_CRATE,
    };
    pub const TABLEDATA_INSERT_ALL: Call = Call {
        id: "bigquery.tabledata.insertAll",
        sent_by: "to-bq and sub-v2 with `BIGQUERY_WRITE_METHOD=insert_all`: the rows of concurrent pushes (group commit)",
        client: "the JSON layer, written from the rows' text; or gcp-bigquery-client (`BIGQUERY_INSERT_CLIENT`)",
    };
    pub const STORAGE_WRITE_APPEND_ROWS: Call = Call {
        id: "bigquerystorage.BigQueryWrite.AppendRows",
        sent_by: "to-bq and sub-v2: the rows of concurrent pushes (group commit), Arrow, on the table's default stream (gRPC)",
        client: "google-cloud-bigquery (`client::Write`), `BIGQUERY_WRITE_METHOD=storage_write` (the default)",
    };
    pub const STORAGE_WRITE_GET_WRITE_STREAM: Call = Call {
        id: "bigquerystorage.BigQueryWrite.GetWriteStream",
        sent_by: "to-bq and sub-v2 at start-up, with `storage_write`: may it write to the table's default stream? (gRPC)",
        client: "google-cloud-bigquery (`client::Write`)",
    };
    pub const JOBS_QUERY: Call = Call {
        id: "bigquery.jobs.query",
        sent_by: "replay audit: its three queries",
        client: BIGQUERY_CRATE,
    };
    pub const JOBS_GET_QUERY_RESULTS: Call = Call {
        id: "bigquery.jobs.getQueryResults",
        sent_by: "replay audit: further pages, and a query still running",
        client: BIGQUERY_CRATE,
    };
    pub const TOPICS_PUBLISH: Call = Call {
        id: "pubsub.projects.topics.publish",
        sent_by: "all three services: a dead letter, before the ack (gRPC)",
        client: "google-cloud-pubsub",
    };
    pub const SUBSCRIPTIONS_PULL: Call = Call {
        id: "pubsub.projects.subscriptions.pull",
        sent_by: "replay pull, inspect, push, drop: read a dead-letter subscription",
        client: JSON,
    };
    pub const SUBSCRIPTIONS_ACKNOWLEDGE: Call = Call {
        id: "pubsub.projects.subscriptions.acknowledge",
        sent_by: "replay push and drop: a letter handled or dropped",
        client: JSON,
    };
    pub const SUBSCRIPTIONS_MODIFY_ACK_DEADLINE: Call = Call {
        id: "pubsub.projects.subscriptions.modifyAckDeadline",
        sent_by: "replay: release what it pulled and did not ack (deadline 0); push: lease the letters not yet handled for one more push",
        client: JSON,
    };
}

/// Every kind of request the pipeline sends to Google.
pub const CALLS: [Call; 15] = [
    calls::OBJECTS_INSERT,
    calls::OBJECTS_GET,
    calls::OBJECTS_LIST,
    calls::BUCKETS_TEST_IAM_PERMISSIONS,
    calls::BUCKETS_GET,
    calls::TABLES_GET,
    calls::TABLEDATA_INSERT_ALL,
    calls::STORAGE_WRITE_APPEND_ROWS,
    calls::STORAGE_WRITE_GET_WRITE_STREAM,
    calls::JOBS_QUERY,
    calls::JOBS_GET_QUERY_RESULTS,
    calls::TOPICS_PUBLISH,
    calls::SUBSCRIPTIONS_PULL,
    calls::SUBSCRIPTIONS_ACKNOWLEDGE,
    calls::SUBSCRIPTIONS_MODIFY_ACK_DEADLINE,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_is_listed_once_and_names_its_api() {
        let mut ids: Vec<&str> = CALLS.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CALLS.len());
        for c in CALLS {
            assert!(
                ["storage", "bigquery", "bigquerystorage", "pubsub"].contains(&c.api()),
                "{}",
                c.id
            );
        }
    }
}
