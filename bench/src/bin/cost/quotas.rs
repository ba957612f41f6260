//! Google's quotas at each volume (the table of docs/deploy.md): for the mix and for plain
//! traffic at the busiest hour, what the pipeline asks of each limit in `terraform/quotas.json`
//! (the file Terraform's connection guard reads) and which one binds first.

use std::fmt::Write as _;

use pipeline::google::storage_write::CONNECTIONS;
use serde_json::Value;

use crate::*;

/// The figures of `terraform/quotas.json` the table compares with.
#[derive(Debug, Clone)]
pub(crate) struct Quotas {
    connections_multi_region: f64,
    connections_region: f64,
    multi_regions: Vec<String>,
    throughput_multi_region: f64,
    throughput_region: f64,
    gcs_writes_per_second: f64,
    gcs_doubling_minutes: f64,
    run_default_max_instances: f64,
    /// Each quota's key, page, URL, date read, how good, and quote.
    cited: Vec<[String; 6]>,
}

pub(crate) fn load_quotas(doc: &Value) -> Result<Quotas, String> {
    let q = doc
        .get("quotas")
        .ok_or("terraform/quotas.json: no `quotas`")?;
    let num = |key: &str, field: &str| {
        q.get(key)
            .and_then(|e| e.get(field))
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("terraform/quotas.json: no number `{key}.{field}`"))
    };
    let multi_regions = q["storage_write_concurrent_connections"]["multi_regions"]
        .as_array()
        .ok_or("terraform/quotas.json: `storage_write_concurrent_connections.multi_regions`")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_uppercase))
        .collect();
    let text = |e: &Value, k: &str| e[k].as_str().unwrap_or("").to_string();
    let cited = q
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, e)| {
                    [
                        k.clone(),
                        text(e, "page"),
                        text(e, "url"),
                        text(e, "read"),
                        text(e, "source"),
                        text(e, "quote"),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Quotas {
        connections_multi_region: num("storage_write_concurrent_connections", "multi_region")?,
        connections_region: num("storage_write_concurrent_connections", "region")?,
        multi_regions,
        throughput_multi_region: num("storage_write_throughput", "multi_region_bytes_per_second")?,
        throughput_region: num("storage_write_throughput", "region_bytes_per_second")?,
        gcs_writes_per_second: num("gcs_initial_object_writes", "per_second")?,
        gcs_doubling_minutes: num("gcs_initial_object_writes", "ramp_doubling_minutes")?,
        run_default_max_instances: num("cloud_run_max_instances", "default")?,
        cited,
    })
}

impl Quotas {
    fn multi_region(&self, c: &Ctx) -> bool {
        self.multi_regions
            .contains(&c.run.dataset_location.to_uppercase())
    }

    /// The Storage Write connection quota Terraform holds `max_instances` to: the variable, or
    /// Google's default for the dataset's location (as `terraform/run.tf` computes it).
    pub(crate) fn connections(&self, c: &Ctx) -> f64 {
        c.run.connection_quota.unwrap_or(if self.multi_region(c) {
            self.connections_multi_region
        } else {
            self.connections_region
        })
    }

    pub(crate) fn throughput(&self, c: &Ctx) -> f64 {
        if self.multi_region(c) {
            self.throughput_multi_region
        } else {
            self.throughput_region
        }
    }
}

/// What one kind of traffic asks of each limit at the busiest hour of a month at `volume`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Demand {
    pub(crate) events_per_second: f64,
    /// Instances each service needs, in [`SERVICES`] order (0 without pushes).
    pub(crate) instances: [f64; 3],
    /// Storage Write connections the BigQuery services open with those instances.
    pub(crate) connections: f64,
    pub(crate) append_bytes_per_second: f64,
    /// Pushes a second on the busiest subscription.
    pub(crate) pushes_per_second: f64,
    pub(crate) objects_per_second: f64,
}

pub(crate) fn demand(u: &Usage, volume: f64, c: &Ctx) -> Demand {
    let rate = volume / c.a.seconds_per_month() * c.a.busiest_hour_factor;
    let instances = u.services.map(|load| {
        if load.pushes > 0.0 {
            (rate * load.instance_seconds).ceil().max(1.0)
        } else {
            0.0
        }
    });
    let per_event = |sku: Sku| {
        u.lines
            .iter()
            .filter(|l| l.sku == sku)
            .map(|l| l.qty)
            .sum::<f64>()
    };
    Demand {
        events_per_second: rate,
        instances,
        // to-bq and sub-v2 write BigQuery; to-gcs does not.
        connections: (instances[1] + instances[2]) * CONNECTIONS as f64,
        append_bytes_per_second: rate * per_event(Sku::BigQueryStorageWrite),
        pushes_per_second: u
            .services
            .iter()
            .map(|l| rate * l.pushes)
            .fold(0.0, f64::max),
        objects_per_second: rate * per_event(Sku::GcsClassA),
    }
}

/// The limits, each as (name, used ÷ limit), for a demand.
pub(crate) fn pressures(d: &Demand, q: &Quotas, c: &Ctx) -> [(&'static str, f64); 4] {
    [
        (
            "max_instances",
            d.instances.iter().fold(0.0, |a: f64, b| a.max(*b)) / c.run.max_instances,
        ),
        (
            "Storage Write connections",
            d.connections / q.connections(c),
        ),
        (
            "Storage Write throughput",
            d.append_bytes_per_second / q.throughput(c),
        ),
        (
            "Cloud Storage's initial write rate",
            d.objects_per_second / q.gcs_writes_per_second,
        ),
    ]
}

/// The quota tables of docs/deploy.md.
pub(crate) fn quota_tables(kinds: &[Kind], ours_w: &[Usage], q: &Quotas, c: &Ctx) -> String {
    let mut out = String::new();
    let quota = q.connections(c);
    let _ = writeln!(
        out,
        "At the busiest hour ({}× the month's mean rate, an estimate), with Terraform's defaults \
         (`max_instances` {}, concurrency {}, `dataset_location` {}) and the measured instance \
         time per push: instances each service needs (to-gcs / to-bq / sub-v2), the Storage \
         Write connections they open ({CONNECTIONS} per instance of to-bq and sub-v2, against \
         the project's quota of {} in {}), the append throughput (against {} MB/s), the busiest \
         subscription's pushes a second (Pub/Sub publishes no push limit: it adapts the rate to \
         the successes), and transcript objects created a second (against Cloud Storage's \
         initial {} writes a second per bucket). A figure past its limit is in bold.\n",
        c.a.busiest_hour_factor,
        c.run.max_instances,
        c.run.concurrency,
        c.run.dataset_location,
        thousands(quota),
        c.run.dataset_location,
        thousands(q.throughput(c) / 1e6),
        thousands(q.gcs_writes_per_second),
    );
    for k in [kinds.len() - 1, 0] {
        let _ = writeln!(out, "{}:\n", kinds[k].title);
        out.push_str(&header(
            &[
                "events a month",
                "busiest hour, events/s",
                "instances",
                "Storage Write connections",
                "appends, MB/s",
                "pushes/s, busiest subscription",
                "objects/s",
                "binds first",
            ]
            .map(String::from),
        ));
        for &v in &c.a.volumes {
            let d = demand(&ours_w[k], v, c);
            let p = pressures(&d, q, c);
            let bold = |text: String, over: bool| {
                if over { format!("**{text}**") } else { text }
            };
            let instances = d
                .instances
                .iter()
                .map(|n| bold(thousands(*n), *n > c.run.max_instances))
                .collect::<Vec<_>>()
                .join(" / ");
            let (name, most) = p
                .iter()
                .copied()
                .fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
            let binds = if most > 1.0 {
                format!("**{name}** ({:.0} %)", most * 100.0)
            } else {
                format!("none; nearest {name} ({:.0} %)", most * 100.0)
            };
            out.push_str(&row(&[
                format!("{} M", thousands(v / MILLION)),
                thousands(d.events_per_second),
                instances,
                bold(thousands(d.connections), p[1].1 > 1.0),
                bold(
                    format!("{:.1}", d.append_bytes_per_second / 1e6),
                    p[2].1 > 1.0,
                ),
                thousands(d.pushes_per_second),
                bold(thousands(d.objects_per_second), p[3].1 > 1.0),
                binds,
            ]));
        }
        out.push('\n');
    }
    let most_instances = (quota / (2.0 * CONNECTIONS as f64)).floor();
    let _ = writeln!(
        out,
        "When a limit binds:\n\n\
         - **max_instances**: raise it. Terraform refuses one whose Storage Write connections \
         exceed `storage_write_connection_quota` (here at most {} per service: {} ÷ ({CONNECTIONS} \
         connections × 2 services)); Cloud Run's own default ceiling is {} per service, and the \
         region's instance quota above that.\n\
         - **Storage Write connections**: ask Google for more (Quotas page, BigQuery Storage API, \
         concurrent connections for the location), then set `storage_write_connection_quota`; or \
         open fewer per instance (`CONNECTIONS` in `shared/src/google/storage_write.rs`, which \
         Terraform's `storage_write_connections_per_instance` follows, a test holding the two \
         together); or `bigquery_write_method = \"insert_all\"`, which has no connections.\n\
         - **Storage Write throughput**: a quota increase with Google.\n\
         - **Cloud Storage's initial write rate** is guidance, not a quota: a bucket that ramps \
         up no faster than doubling every {:.0} minutes is scaled before it throttles. Steady \
         growth does that; a seek or a replay of a large backlog does not, so replay with \
         `replay push --rate` and expect some 429/503 answers, which Pub/Sub retries.\n",
        thousands(most_instances),
        thousands(quota),
        thousands(q.run_default_max_instances),
        q.gcs_doubling_minutes,
    );
    out.push_str(
        "Sources, from `terraform/quotas.json` (the figures Terraform's guard reads):\n\n",
    );
    for [key, page, url, read, source, quote] in &q.cited {
        let _ = writeln!(
            out,
            "- `{key}`: [{page}]({url}), read {read}: \"{quote}\" Source: {source}."
        );
    }
    out
}
