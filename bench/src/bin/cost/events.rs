use crate::*;

#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) file: String,
    pub(crate) attributes: BTreeMap<String, String>,
    pub(crate) data: Value,
    pub(crate) gcs: bool,
    pub(crate) bq_handler: String,
}

/// One event as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub(crate) name: String,
    pub(crate) data_bytes: f64,
    pub(crate) attribute_bytes: f64,
    /// What Pub/Sub bills: data, attributes, the timestamp and the message id.
    pub(crate) message_bytes: f64,
    /// The push body our services receive (CPU scales with it).
    pub(crate) body_bytes: f64,
    /// The event without the redacted keys (the row grows with it).
    pub(crate) redacted_bytes: f64,
    pub(crate) has_private_metadata: bool,
    /// to-bq's subscription takes it (else sub-v2's).
    pub(crate) to_bq: bool,
    /// to-gcs's subscription takes it.
    pub(crate) to_gcs: bool,
    /// to-gcs stores it (else skips it).
    pub(crate) gcs_object: bool,
}

/// Compact JSON as the gateway publishes it (Go's `encoding/json` escapes `<`, `>` and `&`).
pub(crate) fn go_json(v: &Value) -> Vec<u8> {
    serde_json::to_string(v)
        .expect("a JSON value serialises")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .into_bytes()
}

pub(crate) fn strip_redacted(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !REDACTED_KEYS.contains(&k.to_ascii_lowercase().as_str()));
            map.values_mut().for_each(strip_redacted);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_redacted),
        _ => {}
    }
}

pub(crate) fn redacted(data: &Value) -> Value {
    let mut data = data.clone();
    if let Some(private) = data.pointer_mut("/event/parameters/privateMetadata") {
        strip_redacted(private);
    }
    data
}

pub(crate) fn event(
    name: &str,
    attributes: &BTreeMap<String, String>,
    data: &Value,
    gcs_object: bool,
    message_id_bytes: f64,
) -> Event {
    let bytes = go_json(data);
    let attribute_bytes = attributes
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as f64)
        .sum::<f64>();
    let body = PushEnvelope::new("1", &bytes)
        .attributes(attributes)
        .publish_time("2026-11-28T00:00:00Z")
        .subscription("projects/p/subscriptions/s")
        .to_bytes();
    Event {
        name: name.to_string(),
        data_bytes: bytes.len() as f64,
        attribute_bytes,
        message_bytes: bytes.len() as f64 + attribute_bytes + TIMESTAMP_BYTES + message_id_bytes,
        body_bytes: body.len() as f64,
        redacted_bytes: go_json(&redacted(data)).len() as f64,
        has_private_metadata: data
            .pointer("/event/parameters/privateMetadata")
            .is_some_and(|p| p.as_object().is_some_and(|o| !o.is_empty())),
        to_bq: Route::from_attributes(attributes) == Route::Transcript,
        to_gcs: may_carry_transcript(attributes),
        gcs_object,
    }
}

pub(crate) fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn load_samples(dir: &Path) -> Result<Vec<Sample>, String> {
    let mut files = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect::<Vec<_>>();
    files.sort();
    files
        .iter()
        .map(|path| {
            let v = read_json(path)?;
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let attributes = v["attributes"]
                .as_object()
                .ok_or_else(|| format!("{}: no attributes", path.display()))?
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_string()))
                        .ok_or_else(|| format!("{}: attribute {k} is not a string", path.display()))
                })
                .collect::<Result<_, _>>()?;
            Ok(Sample {
                file,
                attributes,
                data: v["data"].clone(),
                gcs: v["expect"]["gcs"]
                    .as_bool()
                    .ok_or_else(|| format!("{}: no expect.gcs", path.display()))?,
                bq_handler: v["expect"]["bq_handler"]
                    .as_str()
                    .ok_or_else(|| format!("{}: no expect.bq_handler", path.display()))?
                    .to_string(),
            })
        })
        .collect()
}

/// A sample's event, checked against its own `expect`: the subscription filters must send it to
/// the handler that writes its row, and to to-gcs when it is stored.
pub(crate) fn sample_event(s: &Sample, message_id_bytes: f64) -> Result<Event, String> {
    let e = event(&s.file, &s.attributes, &s.data, s.gcs, message_id_bytes);
    let routed = if e.to_bq { "to-bq" } else { "sub-v2" };
    if routed != s.bq_handler {
        return Err(format!(
            "samples/{}: the filters route it to {routed}, expect.bq_handler says {}",
            s.file, s.bq_handler
        ));
    }
    if e.gcs_object && !e.to_gcs {
        return Err(format!(
            "samples/{}: expect.gcs but to-gcs's filter drops it",
            s.file
        ));
    }
    Ok(e)
}

/// A transcript of about `bytes` bytes, padded like the criterion corpus
/// (`shared/benches/corpus.rs`): prompt and response text split the padding.
pub(crate) fn padded_transcript(data: &Value, bytes: usize) -> Value {
    let mut data = data.clone();
    let text = "Why does parseConfig return nil when the file is empty? ".repeat(bytes / 112 + 1);
    let private = &mut data["event"]["parameters"]["privateMetadata"];
    private["promptText"] = json!(text);
    private["responseText"] = json!(text);
    data
}

/// A column of the tables: one kind of event, or the mix (its events weighted equally).
#[derive(Debug, Clone)]
pub(crate) struct Kind {
    pub(crate) title: String,
    pub(crate) events: Vec<Event>,
}

pub(crate) fn kb(bytes: f64) -> String {
    let kb = bytes / 1000.0;
    if kb < 10.0 {
        format!("{kb:.1} KB")
    } else {
        format!("{kb:.0} KB")
    }
}

pub(crate) fn kinds(samples: &[Sample], message_id_bytes: f64) -> Result<Vec<Kind>, String> {
    let find = |name: &str| {
        samples
            .iter()
            .find(|s| s.file == name)
            .ok_or_else(|| format!("samples/{name} is missing"))
    };
    let plain = find("licensed-search-viewed.json")?;
    let transcript = find("dotcom-chat-prompt-transcript.json")?;
    let plain_event = sample_event(plain, message_id_bytes)?;
    let mut out = vec![Kind {
        title: format!("plain ({} B)", thousands(plain_event.data_bytes)),
        events: vec![plain_event],
    }];
    for (name, bytes) in [("transcript_4k", 4 * 1024), ("transcript_64k", 64 * 1024)] {
        let data = padded_transcript(&transcript.data, bytes);
        let e = event(
            &format!("`dotcom-chat-prompt-transcript.json`, padded (criterion's `{name}`)"),
            &transcript.attributes,
            &data,
            transcript.gcs,
            message_id_bytes,
        );
        out.push(Kind {
            title: format!("transcript ({})", kb(e.data_bytes)),
            events: vec![e],
        });
    }
    let mix = samples
        .iter()
        .map(|s| sample_event(s, message_id_bytes))
        .collect::<Result<Vec<_>, _>>()?;
    out.push(Kind {
        title: format!("mix of samples/ ({})", mix.len()),
        events: mix,
    });
    Ok(out)
}
