//! The arithmetic on hand-worked figures (`cargo test -p bench --bin cost`).

use crate::*;

/// Round prices: $1 per TiB of Pub/Sub, $1 per vCPU-second, and so on, so that each expected
/// figure below can be worked out by hand.
fn ctx() -> Ctx {
    use Sku::*;
    let unit = BTreeMap::from([
        (PubsubThroughput, 40.0 / TIB),
        (PubsubStorage, 0.0),
        (PubsubBigQuerySub, 50.0 / TIB),
        (PubsubStorageSub, 50.0 / TIB),
        (PubsubSmt, 40.0 / TIB),
        (RunRequests, 0.40 / MILLION),
        (RunVcpuSeconds, 0.000024),
        (RunGibSeconds, 0.0000025),
        (RunInstanceVcpuSeconds, 0.000018),
        (RunInstanceGibSeconds, 0.000002),
        (Logging, 0.50 / GIB),
        (BigQueryStorageWrite, 0.025 / GIB),
        (BigQueryInsertAll, 0.01 / (200.0 * MIB)),
        (GcsClassA, 0.005 / 1000.0),
        (GcsStorage, 0.02 / GIB),
    ]);
    let free = BTreeMap::from([
        (PubsubThroughput, 10.0 * GIB),
        (BigQueryStorageWrite, 2048.0 * GIB),
        (RunRequests, 2e6),
    ]);
    Ctx {
        p: Prices {
            read: "test".into(),
            unit,
            free,
            pubsub_minimum: 1000.0,
            row_minimum: 1024.0,
            run_granularity: 0.1,
            dataflow_vcpu_hour: 0.069,
            dataflow_memory_gb_hour: 0.003557,
            dataflow_disk_gb_hour: 0.000054,
        },
        a: Assumptions {
            hours_per_month: 730.0,
            volumes: vec![1e7],
            message_id_bytes: 16.0,
            publish_messages_per_request: 1.0,
            cpu_utilisation: 0.5,
            concurrency_utilisation: 0.5,
            in_flight_seconds: 0.05,
            entry_metadata_bytes: 0.0,
            request_log_bytes: 0.0,
            gcs_months: 1.0,
            busiest_hour_factor: 3.0,
            workers: vec![],
        },
        run: RunConfig {
            concurrency: 10.0,
            vcpus: 1.0,
            memory_gib: 0.5,
            memory_text: "512Mi".into(),
            replay_days: 0.0,
            replay_retention: Retention::Subscription,
            retention_days: 365.0,
            request_log_excluded: false,
            success_log_kept: 1.0,
            billing: [Billing::Request; 3],
            min_instances: 0.0,
            max_instances: 10.0,
            dataset_location: "US".into(),
            connection_quota: None,
        },
    }
}

fn measures_fixture(method: &'static str) -> Measures {
    let s = Scenario {
        index: 0,
        label: "x".into(),
        server: "sub-v2".into(),
        method: method.into(),
        body: "plain".into(),
        client: String::new(),
        numbers: BTreeMap::new(),
    };
    Measures {
        method,
        plain: s.clone(),
        transcript: s.clone(),
        skip: s,
        // 100 µs at 1,000 B, 200 µs at 11,000 B: 10 µs per 1,000 B.
        cpu: CpuLine {
            plain_body: 1000.0,
            plain_cpu: 100e-6,
            transcript_body: 11_000.0,
            transcript_cpu: 200e-6,
            skip_body: 11_000.0,
            skip_cpu: 50e-6,
        },
        rows: RowModel {
            plain_wire: 300.0,
            plain_redacted: 700.0,
            transcript_wire: 900.0,
            transcript_redacted: 1200.0,
        },
        log: LogModel {
            sub_v2_write: 500.0,
            to_bq_write: 600.0,
            skip: 400.0,
        },
    }
}

/// A 500 B message that only sub-v2's subscription lets through.
fn small_plain() -> Event {
    Event {
        name: "plain".into(),
        data_bytes: 400.0,
        attribute_bytes: 64.0,
        message_bytes: 500.0,
        body_bytes: 1000.0,
        redacted_bytes: 700.0,
        has_private_metadata: false,
        to_bq: false,
        to_gcs: false,
        gcs_object: false,
    }
}

fn qty(u: &Usage, label: &str) -> f64 {
    u.lines
        .iter()
        .find(|l| l.label == label)
        .unwrap_or_else(|| panic!("no line {label}"))
        .qty
}

/// What `u` bills of `sku` per event, over all its lines.
fn sku_qty(u: &Usage, sku: Sku) -> f64 {
    u.lines.iter().filter(|l| l.sku == sku).map(|l| l.qty).sum()
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-12), "{a} is not {b}");
}

#[test]
fn pushed_messages_pay_the_1000_byte_minimum_filtered_ones_their_size() {
    let c = ctx();
    let u = ours(&small_plain(), &measures_fixture("storage_write"), &c);
    assert_eq!(qty(&u, "Pub/Sub: sub-v2 subscription"), 1000.0);
    assert_eq!(qty(&u, "Pub/Sub: to-bq subscription"), 500.0);
    assert_eq!(qty(&u, "Pub/Sub: to-gcs subscription"), 500.0);
    // One message per publish request: the minimum applies there too.
    assert_eq!(qty(&u, "Pub/Sub: publish"), 1000.0);
    // 3,000 B per event at $40 per TiB, per million events.
    close(
        u.lines[..4].iter().map(|l| line_cost(l, &c)).sum::<f64>() * MILLION,
        3000.0 * MILLION * 40.0 / TIB,
    );
    // Batched publishing (10 per request) leaves the message at its own size.
    let mut c = ctx();
    c.a.publish_messages_per_request = 10.0;
    let u = ours(&small_plain(), &measures_fixture("storage_write"), &c);
    assert_eq!(qty(&u, "Pub/Sub: publish"), 500.0);
}

#[test]
fn insert_all_rows_pay_the_1_kb_minimum_storage_write_its_bytes_and_no_free_tier() {
    let c = ctx();
    let e = small_plain();
    let insert = ours(&e, &measures_fixture("insert_all"), &c);
    assert_eq!(
        qty(&insert, "BigQuery: insertAll (1 KB minimum per row)"),
        1024.0
    );
    let write = ours(&e, &measures_fixture("storage_write"), &c);
    assert_eq!(qty(&write, "BigQuery: Storage Write API"), 300.0);
    // Per million: 300 MB at $0.025 per GiB, although 2 TiB a month are free.
    let line = write
        .lines
        .iter()
        .find(|l| l.sku == Sku::BigQueryStorageWrite)
        .unwrap();
    close(line_cost(line, &c) * MILLION, 300.0 * MILLION / GIB * 0.025);
    // insertAll: 1,024 MB at $0.01 per 200 MiB.
    let line = insert
        .lines
        .iter()
        .find(|l| l.sku == Sku::BigQueryInsertAll)
        .unwrap();
    close(
        line_cost(line, &c) * MILLION,
        1024.0 * MILLION / (200.0 * MIB) * 0.01,
    );
}

#[test]
fn free_tiers_only_in_the_monthly_figure_with_free() {
    let c = ctx();
    let u = Usage {
        lines: vec![line("w", "", Sku::BigQueryStorageWrite, 1000.0)],
        services: [Load::default(); 3],
    };
    // 1 M rows of 1,000 B: well inside the 2 TiB.
    close(
        monthly(&u, 1e6, false, 0.0, [Billing::Request; 3], &c),
        1e9 / GIB * 0.025,
    );
    assert_eq!(monthly(&u, 1e6, true, 0.0, [Billing::Request; 3], &c), 0.0);
    // 3 TiB a month: 1 TiB over.
    let v = 3.0 * TIB / 1000.0;
    close(
        monthly(&u, v, true, 0.0, [Billing::Request; 3], &c),
        1024.0 * 0.025,
    );
}

#[test]
fn a_fixed_cost_is_divided_by_the_volume() {
    let c = ctx();
    let worker = Worker {
        name: "w".into(),
        vcpus: 4.0,
        memory_gb: 15.0,
        disk_gb: 400.0,
        note: String::new(),
    };
    // 730 h × (4 × 0.069 + 15 × 0.003557 + 400 × 0.000054) = 256.2235.
    let fixed = c.dataflow_monthly(&worker);
    close(fixed, 730.0 * (0.276 + 0.053355 + 0.0216));
    let nothing = Usage {
        lines: vec![],
        services: [Load::default(); 3],
    };
    for volume in [1e7, 1e8, 1e9] {
        close(
            monthly(&nothing, volume, false, fixed, [Billing::Request; 3], &c) / (volume / MILLION),
            fixed * MILLION / volume,
        );
    }
}

#[test]
fn cpu_scales_linearly_in_body_bytes_and_the_skip_along_the_line() {
    let m = measures_fixture("storage_write");
    close(m.cpu.write(1000.0), 100e-6);
    close(m.cpu.write(6000.0), 150e-6);
    close(m.cpu.write(101_000.0), 1100e-6);
    // The skip is a quarter of the write at 11,000 B, so a quarter at any size.
    close(m.cpu.skip(11_000.0), 50e-6);
    close(m.cpu.skip(101_000.0), 275e-6);
    // A noisy measurement with the larger body cheaper does not make CPU fall with size.
    let flat = CpuLine {
        transcript_cpu: 90e-6,
        ..m.cpu
    };
    close(flat.write(101_000.0), 100e-6);
}

#[test]
fn cloud_run_pays_the_larger_of_cpu_and_concurrency_and_idle_time_at_low_volume() {
    let c = ctx();
    // Concurrency term: 0.05 s ÷ (10 × 50 %) = 10 ms; CPU term: 100 µs ÷ 50 % = 200 µs.
    close(c.instance_seconds(100e-6), 0.01);
    close(c.instance_seconds(0.02), 0.04);
    let u = ours(&small_plain(), &measures_fixture("storage_write"), &c);
    close(qty(&u, "Cloud Run: vCPU-seconds"), 0.01);
    close(qty(&u, "Cloud Run: GiB-seconds"), 0.005);
    assert_eq!(u.services[2].pushes, 1.0);
    // One push a month: billed at least the 100 ms rounding, not the 10 ms steady figure.
    let compute = Usage {
        lines: vec![],
        ..u.clone()
    };
    let month = monthly(&compute, 1.0, false, 0.0, [Billing::Request; 3], &c);
    // Less the request fee of the one push.
    let month = month - 0.40 / MILLION;
    let expected = 730.0 * 3600.0 * (1.0 - (-0.1 / (730.0 * 3600.0_f64)).exp());
    close(month, expected * (0.000024 + 0.5 * 0.0000025));
    assert!((expected - 0.1).abs() < 1e-6);
}

#[test]
fn a_transcript_is_pushed_twice_and_stored_once() {
    let c = ctx();
    let e = Event {
        to_bq: true,
        to_gcs: true,
        gcs_object: true,
        data_bytes: 5000.0,
        message_bytes: 5200.0,
        body_bytes: 11_000.0,
        redacted_bytes: 1300.0,
        has_private_metadata: true,
        ..small_plain()
    };
    let u = ours(&e, &measures_fixture("storage_write"), &c);
    assert_eq!(qty(&u, "Cloud Run: requests"), 2.0);
    assert_eq!(qty(&u, "Cloud Logging: our line per push"), 1200.0);
    assert_eq!(
        qty(&u, "Cloud Storage: Class A (one object per transcript)"),
        1.0
    );
    assert_eq!(qty(&u, "Cloud Storage: storage, 1 month"), 5000.0);
    assert_eq!(qty(&u, "Pub/Sub: sub-v2 subscription"), 5200.0);
    // The row: the measured transcript row plus 100 B more redacted event.
    assert_eq!(qty(&u, "BigQuery: Storage Write API"), 1000.0);
    // (a) processes every byte twice with an SMT and bills both export subscriptions.
    let a = option_a(&e, &c);
    close(
        per_million(&a, &c),
        5200.0 * MILLION * (40.0 + 50.0 + 40.0 + 50.0 + 40.0) / TIB + 5000.0 * MILLION * 0.02 / GIB,
    );
}

#[test]
fn a_figure_is_the_median_of_its_rounds_and_other_clients_or_loads_are_not_rounds() {
    let scenario = |label: &str, client: &str, conns: u32, cpu: f64| {
        json!({"scenario": label, "server": "sub-v2", "method": "insert_all", "body": "plain",
               "insert_client": client, "body_bytes": 1, "conns": conns, "latency_ms": 0,
               "cpu_seconds_per_push": cpu, "log_bytes_per_push": 1,
               "wire_bytes_per_row": null})
    };
    let doc = json!({"date": "d", "machine": "m", "load": 1, "scenarios": [
        scenario("r1", "direct", 64, 9.0),
        scenario("gcp", "gcp-bigquery-client", 64, 100.0),
        scenario("r2", "direct", 64, 1.0),
        scenario("c512", "direct", 512, 100.0),
        scenario("r3", "direct", 64, 3.0),
    ]});
    let m = parse_measured(&doc).unwrap();
    let s = pick_rounds(&m, "sub-v2", Some("insert_all"), "plain", 80.0).unwrap();
    assert_eq!(s.label, "r1 (median of 3 rounds)");
    assert_eq!(s.get("cpu_seconds_per_push"), Some(3.0));
    assert_eq!(s.get("wire_bytes_per_row"), None);
    assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(median(&mut []), None);
}

#[test]
fn a_missing_key_is_named() {
    let doc = json!({"date": "d", "machine": "m", "load": 1, "scenarios": [
        {"scenario": "s", "server": "sub-v2", "method": "storage_write", "body": "plain",
         "body_bytes": 1, "conns": 64, "latency_ms": 0, "cpu_seconds_per_push": 1,
         "log_bytes_per_push": 1}
    ]});
    let e = parse_measured(&doc).unwrap_err();
    assert!(
        e.contains("scenarios[0]") && e.contains("`wire_bytes_per_row`"),
        "{e}"
    );
    let e = parse_measured(&json!({"date": "d", "scenarios": []})).unwrap_err();
    assert!(e.contains("`machine`"), "{e}");
    let mut doc = doc;
    doc["scenarios"][0]["wire_bytes_per_row"] = Value::Null;
    let m = parse_measured(&doc).unwrap();
    let e = measures(&m, "storage_write", 80.0, 0.0, 0.0).unwrap_err();
    assert!(e.contains("to-bq"), "{e}");
    let e = m.scenarios[0].need("wire_bytes_per_row").unwrap_err();
    assert!(e.contains("`wire_bytes_per_row` null"), "{e}");
}

#[test]
fn a_unit_changed_in_prices_json_is_refused() {
    let doc = json!({"prices": {"pubsub_throughput": {"value": 40, "unit": "USD per TB"}}});
    let e = list_price(&doc, "pubsub_throughput", "USD per TiB").unwrap_err();
    assert!(e.contains("USD per TB"), "{e}");
}

#[test]
fn the_markers_are_rewritten_in_place() {
    let (begin, end) = COST_MARKERS;
    let doc = format!("intro\n{begin}\nold\n{end}\nend\n");
    let new = rewrite(&doc, COST_MARKERS, "new table\n").unwrap().unwrap();
    assert_eq!(new, format!("intro\n{begin}\nnew table\n{end}\nend\n"));
    assert_eq!(
        rewrite(&new, COST_MARKERS, "new table").unwrap().unwrap(),
        new
    );
    assert_eq!(rewrite("no markers", COST_MARKERS, "x").unwrap(), None);
    assert_eq!(rewrite(&new, QUOTA_MARKERS, "x").unwrap(), None);
    assert!(rewrite(&format!("{begin} but no end"), COST_MARKERS, "x").is_err());
}

/// A service's load: `pushes` a month at `volume`, each holding an instance for 10 ms.
fn load(pushes: f64) -> Load {
    Load {
        pushes,
        instance_seconds: pushes * 0.01,
    }
}

#[test]
fn instance_billing_keeps_one_instance_a_month_or_the_demand_and_has_no_request_fee() {
    let mut c = ctx();
    let month = 730.0 * 3600.0;
    let rate = 1.0 * 0.000018 + 0.5 * 0.000002;
    // 1 M pushes × 10 ms = 10,000 instance-seconds: far below one instance all month.
    close(
        run_cost(&load(1.0), 1e6, Billing::Instance, &c),
        month * rate,
    );
    // 1 B pushes × 10 ms = 1e7 instance-seconds: 3.8 instances on average.
    close(run_cost(&load(1.0), 1e9, Billing::Instance, &c), 1e7 * rate);
    // No pushes, no instance; min_instances keeps them anyway.
    assert_eq!(run_cost(&load(0.0), 1e9, Billing::Instance, &c), 0.0);
    c.run.min_instances = 2.0;
    close(
        run_cost(&load(0.0), 1e9, Billing::Instance, &c),
        2.0 * month * rate,
    );
    close(
        run_cost(&load(1.0), 1e6, Billing::Instance, &c),
        2.0 * month * rate,
    );
    // Request-based at 1 B: the fee and the same instance-seconds at its rates.
    let c = ctx();
    close(
        run_cost(&load(1.0), 1e9, Billing::Request, &c),
        1e9 * 0.40 / MILLION + 1e7 * (0.000024 + 0.5 * 0.0000025),
    );
    assert!(
        run_usage(&load(1.0), 1e9, Billing::Instance, &c)
            .iter()
            .all(|(sku, _)| *sku != Sku::RunRequests)
    );
}

#[test]
fn the_cheaper_mode_flips_once_at_the_crossover() {
    let c = ctx();
    let l = load(1.0);
    let Crossover::At(v) = crossover(&l, &c) else {
        panic!("no crossover between 10 thousand and 1 trillion")
    };
    let gap =
        |v: f64| run_cost(&l, v, Billing::Instance, &c) - run_cost(&l, v, Billing::Request, &c);
    assert!(gap(v * 0.99) > 0.0 && gap(v * 1.01) < 0.0, "{v}");
    assert!(gap(v).abs() < 1e-6 * run_cost(&l, v, Billing::Request, &c));
    let u = Usage {
        lines: vec![],
        services: [load(0.0), load(1.0), load(1.0)],
    };
    assert_eq!(cheapest(&u, v / 10.0, &c), [Billing::Request; 3]);
    assert_eq!(
        cheapest(&u, v * 10.0, &c),
        [Billing::Request, Billing::Instance, Billing::Instance]
    );
    assert_eq!(crossover(&load(0.0), &c), Crossover::NoTraffic);
    // A service that keeps instances busy at any volume; one whose fee is nothing.
    let busy = Load {
        pushes: 1.0,
        instance_seconds: 1e3,
    };
    assert_eq!(crossover(&busy, &c), Crossover::Always);
    let mut free = c.clone();
    free.p.unit.insert(Sku::RunRequests, 0.0);
    free.p.unit.insert(Sku::RunVcpuSeconds, 0.0);
    free.p.unit.insert(Sku::RunGibSeconds, 0.0);
    assert_eq!(crossover(&l, &free), Crossover::Never);
    assert_eq!(percent(0.01), "1");
    assert_eq!(percent(0.075), "7.5");
    assert_eq!(percent(1.0), "100");
}

#[test]
fn instance_billed_lines_drop_the_request_fee_and_keep_the_instance_seconds() {
    let c = ctx();
    let u = ours(&small_plain(), &measures_fixture("storage_write"), &c);
    let i = instance_billed(&u);
    assert_eq!(u.lines.len(), i.lines.len());
    let cost = |u: &Usage, sku: Sku| {
        u.lines
            .iter()
            .filter(|l| l.sku == sku)
            .map(|l| line_cost(l, &c))
            .sum::<f64>()
    };
    assert_eq!(cost(&i, Sku::RunRequests), 0.0);
    close(cost(&i, Sku::RunInstanceVcpuSeconds), 0.01 * 0.000018);
    close(cost(&i, Sku::RunInstanceGibSeconds), 0.005 * 0.000002);
    close(
        per_million(&u, &c) - per_million(&i, &c),
        0.40 + MILLION * (0.01 * (0.000024 - 0.000018) + 0.005 * (0.0000025 - 0.000002)),
    );
}

#[test]
fn only_the_kept_sample_of_success_lines_is_billed() {
    let mut c = ctx();
    c.a.entry_metadata_bytes = 600.0;
    c.a.request_log_bytes = 1000.0;
    c.run.request_log_excluded = true;
    c.run.success_log_kept = 0.01;
    let u = ours(&small_plain(), &measures_fixture("storage_write"), &c);
    let logged = sku_qty(&u, Sku::Logging);
    // sub-v2's 500 B line and its 600 B of metadata, 1 % of them.
    close(logged, 11.0);
    // Cloud Run's request log, when kept, is not sampled.
    c.run.request_log_excluded = false;
    let u = ours(&small_plain(), &measures_fixture("storage_write"), &c);
    let logged = sku_qty(&u, Sku::Logging);
    close(logged, 1011.0);
}

#[test]
fn the_topic_keeps_the_replay_window_once_the_subscriptions_once_each() {
    let mut c = ctx();
    c.run.replay_days = 730.0 / 24.0; // one month
    let e = Event {
        to_bq: true,
        to_gcs: true,
        gcs_object: true,
        ..small_plain()
    };
    let stored = |c: &Ctx| -> f64 {
        let u = ours(&e, &measures_fixture("storage_write"), c);
        sku_qty(&u, Sku::PubsubStorage)
    };
    // A transcript is delivered by to-gcs and to-bq: two copies, 500 B each, for a month.
    close(stored(&c), 1000.0);
    c.run.replay_retention = Retention::Topic;
    close(stored(&c), 500.0);
}

#[test]
fn the_floor_is_the_legs_the_writes_and_one_instance_or_the_request_fee() {
    let c = ctx();
    let u = ours(&small_plain(), &measures_fixture("storage_write"), &c);
    let legs = 3000.0 * 40.0 / TIB + 300.0 * 0.025 / GIB;
    let instance = 730.0 * 3600.0 * (0.000018 + 0.5 * 0.000002);
    // At 1 B a month, one instance is less than the fee: $49.9 against $400.
    close(floor_monthly(&u, 1e9, &c), 1e9 * legs + instance);
    // At 10 M, the fee is less: $4 against $49.9.
    close(floor_monthly(&u, 1e7, &c), 1e7 * legs + 4.0);
    for v in [1e6, 1e7, 1e8, 1e9, 1e10] {
        let best = monthly(&u, v, false, 0.0, cheapest(&u, v, &c), &c);
        assert!(
            best >= floor_monthly(&u, v, &c),
            "{v}: {best} below the floor"
        );
    }
}

#[test]
fn the_quota_table_sizes_each_limit_at_the_busiest_hour() {
    let c = ctx();
    let q = load_quotas(&read_json(&repo_root().join("terraform/quotas.json")).unwrap()).unwrap();
    // 1,000 pushes a second at the busiest hour (3 × the mean of 876 M a month) on sub-v2.
    let v = 1000.0 / 3.0 * 730.0 * 3600.0;
    let u = Usage {
        lines: vec![
            line("row", "", Sku::BigQueryStorageWrite, 1000.0),
            line("object", "", Sku::GcsClassA, 0.5),
        ],
        services: [load(0.5), load(0.0), load(1.0)],
    };
    let d = demand(&u, v, &c);
    close(d.events_per_second, 1000.0);
    // 1,000 pushes a second × 10 ms = 10 instances; to-gcs half that.
    assert_eq!(d.instances, [5.0, 0.0, 10.0]);
    assert_eq!(
        d.connections,
        10.0 * pipeline::google::storage_write::CONNECTIONS as f64
    );
    close(d.append_bytes_per_second, 1e6);
    close(d.objects_per_second, 500.0);
    close(d.pushes_per_second, 1000.0);
    let p = pressures(&d, &q, &c);
    close(p[0].1, 1.0); // max_instances 10
    close(p[1].1, d.connections / 10_000.0); // US: the multi-region quota
    close(p[2].1, 1e6 / 3e9); // 1 MB/s of the US multi-region's 3 GB/s
    close(p[3].1, 0.5); // half of the 1,000 writes a second
    let mut regional = c.clone();
    regional.run.dataset_location = "us-central1".into();
    assert_eq!(q.connections(&regional), 100.0);
    regional.run.connection_quota = Some(4000.0);
    assert_eq!(q.connections(&regional), 4000.0);
}

#[test]
fn the_repository_files_parse() {
    let root = repo_root();
    let (p, a) = load_prices(&read_json(&root.join("bench/cost/prices.json")).unwrap()).unwrap();
    assert_eq!(p.pubsub_minimum, 1000.0);
    assert_eq!(a.workers.len(), 2);
    let run =
        run_config(&std::fs::read_to_string(root.join("terraform/variables.tf")).unwrap()).unwrap();
    assert!(run.concurrency >= 1.0 && run.vcpus >= 1.0 && run.memory_gib > 0.0);
    // Terraform's defaults as HCL: request-based everywhere, 1 % of the success lines.
    assert_eq!(run.billing, [Billing::Request; 3]);
    assert_eq!(run.success_log_kept, 0.01);
    assert_eq!(run.replay_retention, Retention::Subscription);
    assert_eq!(run.connection_quota, None);
    assert!(run.min_instances <= run.max_instances);
    let samples = load_samples(&root.join("samples")).unwrap();
    let kinds = kinds(&samples, 16.0).unwrap();
    assert_eq!(kinds.len(), 4);
    // The padded transcripts are the 5.5 and 67 KB of the criterion corpus.
    assert!((5000.0..6000.0).contains(&kinds[1].events[0].data_bytes));
    assert!((60_000.0..70_000.0).contains(&kinds[2].events[0].data_bytes));
    // Redaction leaves the same event whatever the padding.
    assert_eq!(
        kinds[1].events[0].redacted_bytes,
        kinds[2].events[0].redacted_bytes
    );
    let measured =
        parse_measured(&read_json(&root.join("bench/cost/example-measured.json")).unwrap())
            .unwrap();
    assert!(measured.example);
    measures(&measured, "storage_write", run.concurrency, 0.0, 0.0).unwrap();
    measures(&measured, "insert_all", run.concurrency, 0.0, 0.0).unwrap();
}

#[test]
fn money_is_printed_to_three_figures() {
    assert_eq!(usd(0.0), "–");
    assert_eq!(usd(0.036_38), "$0.0364");
    assert_eq!(usd(0.5), "$0.500");
    assert_eq!(usd(2.934), "$2.93");
    assert_eq!(usd(25.61), "$25.61");
    assert_eq!(usd(256.22), "$256");
    assert_eq!(usd(12_345.0), "$12,345");
}
