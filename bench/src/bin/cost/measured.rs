use crate::*;

#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) index: usize,
    pub(crate) label: String,
    pub(crate) server: String,
    pub(crate) method: String,
    pub(crate) body: String,
    /// `insert_client` (insertAll's client; empty when the file has none).
    pub(crate) client: String,
    pub(crate) numbers: BTreeMap<String, Option<f64>>,
}

impl Scenario {
    pub(crate) fn get(&self, key: &str) -> Option<f64> {
        self.numbers.get(key).copied().flatten()
    }

    /// A figure this model needs: an error naming the scenario and the key when it is null.
    pub(crate) fn need(&self, key: &str) -> Result<f64, String> {
        self.get(key).ok_or_else(|| {
            format!(
                "measured.json: scenarios[{}] ({}) has `{key}` null; the cost model needs a number",
                self.index, self.label
            )
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Measured {
    pub(crate) date: String,
    pub(crate) machine: String,
    pub(crate) load: String,
    pub(crate) example: bool,
    pub(crate) scenarios: Vec<Scenario>,
}

pub(crate) fn display(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

pub(crate) fn parse_measured(doc: &Value) -> Result<Measured, String> {
    let top = |key: &str| {
        doc.get(key)
            .ok_or_else(|| format!("measured.json: no top-level `{key}`"))
    };
    let scenarios = top("scenarios")?
        .as_array()
        .ok_or("measured.json: `scenarios` must be an array")?
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let obj = s
                .as_object()
                .ok_or_else(|| format!("measured.json: scenarios[{index}] is not an object"))?;
            for key in SCENARIO_KEYS {
                if !obj.contains_key(key) {
                    return Err(format!("measured.json: scenarios[{index}] has no `{key}`"));
                }
            }
            let text = |k: &str| display(&obj[k]);
            let mut numbers = BTreeMap::new();
            for (k, v) in obj {
                if v.is_null() {
                    numbers.insert(k.clone(), None);
                } else if let Some(n) = v.as_f64() {
                    numbers.insert(k.clone(), Some(n));
                }
            }
            for key in &SCENARIO_KEYS[4..] {
                if !obj[*key].is_null() && !obj[*key].is_number() {
                    return Err(format!(
                        "measured.json: scenarios[{index}] `{key}` must be a number or null, found {}",
                        obj[*key]
                    ));
                }
            }
            Ok(Scenario {
                index,
                label: text("scenario"),
                server: text("server"),
                method: text("method"),
                body: text("body"),
                client: obj.get("insert_client").map(display).unwrap_or_default(),
                numbers,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Measured {
        date: display(top("date")?),
        machine: display(top("machine")?),
        // bench-load.sh writes `load_average` (start and end); an older file, `load`.
        load: display(
            doc.get("load_average")
                .or_else(|| doc.get("load"))
                .ok_or("measured.json: no top-level `load_average`")?,
        ),
        example: doc.get("EXAMPLE").is_some(),
        scenarios,
    })
}

/// The scenario of this server, method and body whose connections are nearest Cloud Run's
/// concurrency (then the lower BigQuery latency, then the first).
pub(crate) fn pick<'a>(
    m: &'a Measured,
    server: &str,
    method: Option<&str>,
    body: &str,
    concurrency: f64,
) -> Result<&'a Scenario, String> {
    let key = |s: &Scenario| {
        let conns = s.get("conns").unwrap_or(f64::MAX);
        let latency = s.get("latency_ms").unwrap_or(f64::MAX);
        ((conns - concurrency).abs(), latency, s.index)
    };
    m.scenarios
        .iter()
        .filter(|s| s.server == server && s.body == body && method.is_none_or(|m| s.method == m))
        .min_by(|a, b| {
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .ok_or_else(|| {
            format!(
                "measured.json has no scenario with server={server}, method={}, body={body}",
                method.unwrap_or("any")
            )
        })
}

/// The scenario [`pick`] finds, each figure the median over its rounds: the scenarios of the same
/// server, method, insertAll client, body, connections and latency. bench-load runs the
/// write-method A/B in `AB_ROUNDS` rounds, and one round swings by ±15 % on a shared machine.
pub(crate) fn pick_rounds(
    m: &Measured,
    server: &str,
    method: Option<&str>,
    body: &str,
    concurrency: f64,
) -> Result<Scenario, String> {
    let first = pick(m, server, method, body, concurrency)?;
    let rounds: Vec<&Scenario> = m
        .scenarios
        .iter()
        .filter(|s| {
            s.server == first.server
                && s.method == first.method
                && s.client == first.client
                && s.body == first.body
                && s.get("conns") == first.get("conns")
                && s.get("latency_ms") == first.get("latency_ms")
        })
        .collect();
    let mut merged = first.clone();
    if rounds.len() > 1 {
        merged.label = format!("{} (median of {} rounds)", first.label, rounds.len());
    }
    for (key, value) in &mut merged.numbers {
        let mut values: Vec<f64> = rounds.iter().filter_map(|s| s.get(key)).collect();
        *value = median(&mut values);
    }
    Ok(merged)
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// CPU seconds per push against push-body bytes: the line through the two measured writes, and
/// the measured skip scaled along it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuLine {
    pub(crate) plain_body: f64,
    pub(crate) plain_cpu: f64,
    pub(crate) transcript_body: f64,
    pub(crate) transcript_cpu: f64,
    pub(crate) skip_body: f64,
    pub(crate) skip_cpu: f64,
}

impl CpuLine {
    pub(crate) fn slope(&self) -> f64 {
        let run = self.transcript_body - self.plain_body;
        if run.abs() < 1.0 {
            0.0
        } else {
            ((self.transcript_cpu - self.plain_cpu) / run).max(0.0)
        }
    }

    pub(crate) fn write(&self, body: f64) -> f64 {
        (self.plain_cpu + self.slope() * (body - self.plain_body)).max(0.0)
    }

    pub(crate) fn skip(&self, body: f64) -> f64 {
        let at = self.write(self.skip_body);
        if at > 0.0 {
            self.skip_cpu * self.write(body) / at
        } else {
            self.skip_cpu
        }
    }
}

/// Bytes per row of one method: measured for the plain and the transcript body; another event's
/// row differs from the measured one of its shape by what its redacted event does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RowModel {
    pub(crate) plain_wire: f64,
    pub(crate) plain_redacted: f64,
    pub(crate) transcript_wire: f64,
    pub(crate) transcript_redacted: f64,
}

impl RowModel {
    pub(crate) fn row(&self, redacted: f64, has_private_metadata: bool) -> f64 {
        let (wire, base) = if has_private_metadata {
            (self.transcript_wire, self.transcript_redacted)
        } else {
            (self.plain_wire, self.plain_redacted)
        };
        (wire + redacted - base).max(1.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LogModel {
    pub(crate) sub_v2_write: f64,
    pub(crate) to_bq_write: f64,
    pub(crate) skip: f64,
}

/// Everything measured for one BigQuery method.
#[derive(Debug, Clone)]
pub(crate) struct Measures {
    pub(crate) method: &'static str,
    pub(crate) plain: Scenario,
    pub(crate) transcript: Scenario,
    pub(crate) skip: Scenario,
    pub(crate) cpu: CpuLine,
    pub(crate) rows: RowModel,
    pub(crate) log: LogModel,
}

pub(crate) fn measures(
    m: &Measured,
    method: &'static str,
    concurrency: f64,
    plain_redacted: f64,
    transcript_redacted: f64,
) -> Result<Measures, String> {
    let plain = pick_rounds(m, "sub-v2", Some(method), "plain", concurrency)?;
    let transcript = pick_rounds(m, "to-bq", Some(method), "transcript", concurrency)?;
    let skip = pick_rounds(m, "sub-v2", Some(method), "skip", concurrency)
        .or_else(|_| pick_rounds(m, "sub-v2", None, "skip", concurrency))?;
    Ok(Measures {
        method,
        cpu: CpuLine {
            plain_body: plain.need("body_bytes")?,
            plain_cpu: plain.need("cpu_seconds_per_push")?,
            transcript_body: transcript.need("body_bytes")?,
            transcript_cpu: transcript.need("cpu_seconds_per_push")?,
            skip_body: skip.need("body_bytes")?,
            skip_cpu: skip.need("cpu_seconds_per_push")?,
        },
        rows: RowModel {
            plain_wire: plain.need("wire_bytes_per_row")?,
            plain_redacted,
            transcript_wire: transcript.need("wire_bytes_per_row")?,
            transcript_redacted,
        },
        log: LogModel {
            sub_v2_write: plain.need("log_bytes_per_push")?,
            to_bq_write: transcript.need("log_bytes_per_push")?,
            skip: skip.need("log_bytes_per_push")?,
        },
        plain,
        transcript,
        skip,
    })
}
