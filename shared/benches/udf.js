// The seed's approach, as a baseline: the Dataflow template's JavaScript UDF that redacted
// transcripts (JSON.parse the message data, delete privateMetadata's promptText and responseText,
// JSON.stringify). Reads the corpus written by `redact_corpus --write DIR` and processes each
// message as many times as `redact_corpus DIR` does; prints one JSON line per kind.
//   node shared/benches/udf.js DIR
"use strict";
const fs = require("fs");

function transform(inJson) {
  const obj = JSON.parse(inJson);
  const pm = obj.event && obj.event.parameters && obj.event.parameters.privateMetadata;
  if (pm) {
    delete pm.promptText;
    delete pm.responseText;
  }
  return JSON.stringify(obj);
}

const iterations = (bytes) => Math.min(200000, Math.max(20, Math.floor(200000000 / bytes)));

const dir = process.argv[2];
for (const kind of ["plain_1k", "transcript_4k", "transcript_64k", "transcript_3m"]) {
  const data = fs.readFileSync(`${dir}/${kind}.json`, "utf8");
  const bytes = Buffer.byteLength(data);
  const n = iterations(bytes);
  const started = process.hrtime.bigint();
  let out = 0;
  for (let i = 0; i < n; i++) out += transform(data).length;
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(JSON.stringify({
    kind, bytes, events: n, seconds: +secs.toFixed(3),
    events_per_s: Math.round(n / secs), mb_per_s: +((n * bytes) / secs / 1e6).toFixed(1), out_bytes: out,
  }));
}
