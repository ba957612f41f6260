use crate::*;

/// What is billed, each in one unit of quantity (bytes, requests, seconds, byte-months).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Sku {
    PubsubThroughput,
    PubsubStorage,
    PubsubBigQuerySub,
    PubsubStorageSub,
    PubsubSmt,
    RunRequests,
    RunVcpuSeconds,
    RunGibSeconds,
    RunInstanceVcpuSeconds,
    RunInstanceGibSeconds,
    Logging,
    BigQueryStorageWrite,
    BigQueryInsertAll,
    GcsClassA,
    GcsStorage,
}

/// List prices, per unit of each [`Sku`]'s quantity, and the monthly free tiers in that unit.
#[derive(Debug, Clone)]
pub(crate) struct Prices {
    pub(crate) read: String,
    pub(crate) unit: BTreeMap<Sku, f64>,
    pub(crate) free: BTreeMap<Sku, f64>,
    /// Pub/Sub's minimum per request, bytes.
    pub(crate) pubsub_minimum: f64,
    /// insertAll's minimum per row, bytes.
    pub(crate) row_minimum: f64,
    /// Cloud Run's rounding of billable instance time, seconds.
    pub(crate) run_granularity: f64,
    pub(crate) dataflow_vcpu_hour: f64,
    pub(crate) dataflow_memory_gb_hour: f64,
    pub(crate) dataflow_disk_gb_hour: f64,
}

impl Prices {
    pub(crate) fn price(&self, sku: Sku) -> f64 {
        self.unit.get(&sku).copied().unwrap_or(0.0)
    }

    pub(crate) fn free(&self, sku: Sku) -> f64 {
        self.free.get(&sku).copied().unwrap_or(0.0)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub(crate) name: String,
    pub(crate) vcpus: f64,
    pub(crate) memory_gb: f64,
    pub(crate) disk_gb: f64,
    pub(crate) note: String,
}

/// The model's stated assumptions (`assumptions` of prices.json).
#[derive(Debug, Clone)]
pub(crate) struct Assumptions {
    pub(crate) hours_per_month: f64,
    pub(crate) volumes: Vec<f64>,
    pub(crate) message_id_bytes: f64,
    pub(crate) publish_messages_per_request: f64,
    pub(crate) cpu_utilisation: f64,
    pub(crate) concurrency_utilisation: f64,
    pub(crate) in_flight_seconds: f64,
    pub(crate) entry_metadata_bytes: f64,
    pub(crate) request_log_bytes: f64,
    pub(crate) gcs_months: f64,
    /// The busiest hour's traffic over the month's mean (the quota table).
    pub(crate) busiest_hour_factor: f64,
    pub(crate) workers: Vec<Worker>,
}

impl Assumptions {
    pub(crate) fn seconds_per_month(&self) -> f64 {
        self.hours_per_month * 3600.0
    }
}

pub(crate) fn number(v: &Value, what: &str) -> Result<f64, String> {
    v.as_f64()
        .ok_or_else(|| format!("{what} must be a number, found {v}"))
}

/// `prices.<key>.value`, after checking that its unit is the one this code computes with.
pub(crate) fn list_price(doc: &Value, key: &str, unit: &str) -> Result<(f64, f64), String> {
    let entry = doc
        .get("prices")
        .and_then(|p| p.get(key))
        .ok_or_else(|| format!("prices.json: no price `{key}`"))?;
    let value = number(
        entry
            .get("value")
            .ok_or_else(|| format!("prices.json: `{key}` has no `value`"))?,
        &format!("prices.json: `{key}.value`"),
    )?;
    let found = entry.get("unit").and_then(Value::as_str).unwrap_or("");
    if found != unit {
        return Err(format!(
            "prices.json: `{key}` is in `{found}`; cost.rs computes with `{unit}`"
        ));
    }
    let free = match entry.get("free_tier") {
        None => 0.0,
        Some(f) => number(
            f.get("value")
                .ok_or_else(|| format!("prices.json: `{key}.free_tier` has no `value`"))?,
            &format!("prices.json: `{key}.free_tier.value`"),
        )?,
    };
    Ok((value, free))
}

pub(crate) fn assumption<'a>(doc: &'a Value, key: &str) -> Result<&'a Value, String> {
    doc.get("assumptions")
        .and_then(|a| a.get(key))
        .and_then(|a| a.get("value"))
        .ok_or_else(|| format!("prices.json: no `assumptions.{key}.value`"))
}

pub(crate) fn assumed(doc: &Value, key: &str) -> Result<f64, String> {
    number(
        assumption(doc, key)?,
        &format!("prices.json: `assumptions.{key}.value`"),
    )
}

pub(crate) fn load_prices(doc: &Value) -> Result<(Prices, Assumptions), String> {
    use Sku::*;
    let mut unit = BTreeMap::new();
    let mut free = BTreeMap::new();
    // Each SKU: its price's key and unit in prices.json, the quantity the unit is per (a TiB,
    // a million requests…), and the unit of its free tier, in the SKU's own quantity.
    let skus: [(Sku, &str, &str, f64, f64); 15] = [
        (
            PubsubThroughput,
            "pubsub_throughput",
            "USD per TiB",
            TIB,
            GIB,
        ),
        (
            PubsubStorage,
            "pubsub_message_storage",
            "USD per GiB-month",
            GIB,
            GIB,
        ),
        (
            PubsubBigQuerySub,
            "pubsub_bigquery_subscription",
            "USD per TiB",
            TIB,
            GIB,
        ),
        (
            PubsubStorageSub,
            "pubsub_cloud_storage_subscription",
            "USD per TiB",
            TIB,
            GIB,
        ),
        (PubsubSmt, "pubsub_smt_udf", "USD per TiB", TIB, GIB),
        (
            RunRequests,
            "cloud_run_requests",
            "USD per million requests",
            MILLION,
            1.0,
        ),
        (
            RunVcpuSeconds,
            "cloud_run_vcpu_second",
            "USD per vCPU-second",
            1.0,
            1.0,
        ),
        (
            RunGibSeconds,
            "cloud_run_gib_second",
            "USD per GiB-second",
            1.0,
            1.0,
        ),
        (
            RunInstanceVcpuSeconds,
            "cloud_run_instance_vcpu_second",
            "USD per vCPU-second",
            1.0,
            1.0,
        ),
        (
            RunInstanceGibSeconds,
            "cloud_run_instance_gib_second",
            "USD per GiB-second",
            1.0,
            1.0,
        ),
        (Logging, "logging_ingestion", "USD per GiB", GIB, GIB),
        (
            BigQueryStorageWrite,
            "bigquery_storage_write",
            "USD per GiB",
            GIB,
            GIB,
        ),
        (
            BigQueryInsertAll,
            "bigquery_streaming_inserts",
            "USD per 200 MiB",
            200.0 * MIB,
            GIB,
        ),
        (
            GcsClassA,
            "gcs_class_a",
            "USD per 1000 operations",
            1000.0,
            1.0,
        ),
        (
            GcsStorage,
            "gcs_standard_storage",
            "USD per GiB-month",
            GIB,
            GIB,
        ),
    ];
    for (sku, key, unit_name, per, free_unit) in skus {
        let (value, free_value) = list_price(doc, key, unit_name)?;
        unit.insert(sku, value / per);
        free.insert(sku, free_value * free_unit);
    }
    let prices = Prices {
        read: doc
            .get("read")
            .and_then(Value::as_str)
            .ok_or("prices.json: no `read` (the date the prices were read)")?
            .to_string(),
        unit,
        free,
        pubsub_minimum: list_price(doc, "pubsub_request_minimum", "bytes per request")?.0,
        row_minimum: list_price(doc, "bigquery_streaming_row_minimum", "bytes per row")?.0,
        run_granularity: list_price(doc, "cloud_run_billing_granularity", "seconds")?.0,
        dataflow_vcpu_hour: list_price(doc, "dataflow_streaming_vcpu_hour", "USD per vCPU-hour")?.0,
        dataflow_memory_gb_hour: list_price(
            doc,
            "dataflow_streaming_memory_gb_hour",
            "USD per GB-hour",
        )?
        .0,
        dataflow_disk_gb_hour: list_price(doc, "dataflow_standard_pd_gb_hour", "USD per GB-hour")?
            .0,
    };
    let volumes = assumption(doc, "volumes_per_month")?
        .as_array()
        .ok_or("prices.json: `assumptions.volumes_per_month.value` must be an array")?
        .iter()
        .map(|v| number(v, "prices.json: a volume"))
        .collect::<Result<Vec<_>, _>>()?;
    let workers = assumption(doc, "dataflow_workers")?
        .as_array()
        .ok_or("prices.json: `assumptions.dataflow_workers.value` must be an array")?
        .iter()
        .map(|w| {
            let field = |k: &str| {
                number(
                    w.get(k).unwrap_or(&Value::Null),
                    &format!("prices.json: dataflow worker `{k}`"),
                )
            };
            Ok(Worker {
                name: w["name"].as_str().unwrap_or("worker").to_string(),
                vcpus: field("vcpus")?,
                memory_gb: field("memory_gb")?,
                disk_gb: field("disk_gb")?,
                note: w["note"].as_str().unwrap_or("").to_string(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let assumptions = Assumptions {
        hours_per_month: assumed(doc, "hours_per_month")?,
        volumes,
        message_id_bytes: assumed(doc, "message_id_bytes")?,
        publish_messages_per_request: assumed(doc, "publish_messages_per_request")?.max(1.0),
        cpu_utilisation: assumed(doc, "cpu_target_utilisation")?,
        concurrency_utilisation: assumed(doc, "concurrency_target_utilisation")?,
        in_flight_seconds: assumed(doc, "push_in_flight_seconds")?,
        entry_metadata_bytes: assumed(doc, "log_entry_metadata_bytes")?,
        request_log_bytes: assumed(doc, "request_log_bytes")?,
        gcs_months: assumed(doc, "gcs_storage_months")?,
        busiest_hour_factor: assumed(doc, "busiest_hour_factor")?,
        workers,
    };
    Ok((prices, assumptions))
}

/// The `prices` of prices.json as a table: what, value and unit, page and date, how good.
pub(crate) fn price_list(doc: &Value) -> String {
    let mut out = header(&["price", "value", "page (read)", "source"].map(String::from));
    let empty = serde_json::Map::new();
    for (key, p) in doc["prices"].as_object().unwrap_or(&empty) {
        let text = |k: &str| p[k].as_str().unwrap_or("").to_string();
        let mut value = format!("{} {}", p["value"], text("unit"));
        if let Some(f) = p.get("free_tier") {
            let _ = write!(
                value,
                "; free: {} {}",
                f["value"],
                f["unit"].as_str().unwrap_or("")
            );
        }
        out.push_str(&row(&[
            format!("`{key}`"),
            value,
            format!("[{}]({}) ({})", text("page"), text("url"), text("read")),
            text("source"),
        ]));
    }
    out
}
