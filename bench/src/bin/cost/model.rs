use crate::*;

/// Everything the model reads besides the events and the measurements.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) p: Prices,
    pub(crate) a: Assumptions,
    pub(crate) run: RunConfig,
}

impl Ctx {
    /// Instance-seconds a push holds a Cloud Run instance for at high volume: its CPU over the
    /// CPU the autoscaler lets it use, or its time in flight over the pushes an instance holds.
    pub(crate) fn instance_seconds(&self, cpu: f64) -> f64 {
        self.cpu_term(cpu).max(self.concurrency_term())
    }

    pub(crate) fn cpu_term(&self, cpu: f64) -> f64 {
        cpu / (self.run.vcpus * self.a.cpu_utilisation)
    }

    pub(crate) fn concurrency_term(&self) -> f64 {
        self.a.in_flight_seconds / (self.run.concurrency * self.a.concurrency_utilisation)
    }

    pub(crate) fn replay_months(&self) -> f64 {
        self.run.replay_days * 24.0 / self.a.hours_per_month
    }

    pub(crate) fn publish_bytes(&self, e: &Event) -> f64 {
        e.message_bytes
            .max(self.p.pubsub_minimum / self.a.publish_messages_per_request)
    }

    pub(crate) fn dataflow_monthly(&self, w: &Worker) -> f64 {
        self.a.hours_per_month
            * (w.vcpus * self.p.dataflow_vcpu_hour
                + w.memory_gb * self.p.dataflow_memory_gb_hour
                + w.disk_gb * self.p.dataflow_disk_gb_hour)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) label: String,
    pub(crate) basis: &'static str,
    pub(crate) sku: Sku,
    /// Per event, in the sku's unit.
    pub(crate) qty: f64,
}

pub(crate) fn line(label: impl Into<String>, basis: &'static str, sku: Sku, qty: f64) -> Line {
    Line {
        label: label.into(),
        basis,
        sku,
        qty,
    }
}

/// One service's pushes per event and the instance-seconds they hold at high volume.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Load {
    pub(crate) pushes: f64,
    pub(crate) instance_seconds: f64,
}

/// What one event (or the mean event of a mix) uses, line by line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Usage {
    pub(crate) lines: Vec<Line>,
    /// to-gcs, to-bq, sub-v2.
    pub(crate) services: [Load; 3],
}

pub(crate) const SERVICES: [&str; 3] = ["to-gcs", "to-bq", "sub-v2"];

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Action {
    Write,
    Store,
    Skip,
}

/// The pushes an event causes: (service index, what it does).
pub(crate) fn pushes(e: &Event) -> Vec<(usize, Action)> {
    let mut out = Vec::new();
    if e.to_gcs {
        out.push((
            0,
            if e.gcs_object {
                Action::Store
            } else {
                Action::Skip
            },
        ));
    }
    out.push((if e.to_bq { 1 } else { 2 }, Action::Write));
    out
}

pub(crate) fn push_cpu(m: &Measures, action: Action, body: f64) -> f64 {
    match action {
        Action::Write | Action::Store => m.cpu.write(body),
        Action::Skip => m.cpu.skip(body),
    }
}

pub(crate) fn push_log(m: &Measures, service: usize, action: Action) -> f64 {
    match (service, action) {
        (_, Action::Skip) => m.log.skip,
        (2, _) => m.log.sub_v2_write,
        _ => m.log.to_bq_write,
    }
}

/// The same Cloud Storage path for (a) and (b): a Cloud Storage subscription with to-gcs's filter,
/// an SMT that drops what is not a transcript, one month of the stored bytes.
pub(crate) fn storage_subscription(e: &Event, c: &Ctx) -> Vec<Line> {
    vec![
        line(
            "Pub/Sub: Cloud Storage subscription (every message)",
            "list × size",
            Sku::PubsubStorageSub,
            e.message_bytes,
        ),
        line(
            "Pub/Sub: SMT on it (the transcript check)",
            "list × size",
            Sku::PubsubSmt,
            if e.to_gcs { e.message_bytes } else { 0.0 },
        ),
        gcs_storage(e, c),
    ]
}

pub(crate) fn gcs_storage(e: &Event, c: &Ctx) -> Line {
    line(
        if c.a.gcs_months == 1.0 {
            "Cloud Storage: storage, 1 month".to_string()
        } else {
            format!("Cloud Storage: storage, {} months", c.a.gcs_months)
        },
        "list × object bytes",
        Sku::GcsStorage,
        if e.gcs_object {
            e.data_bytes * c.a.gcs_months
        } else {
            0.0
        },
    )
}

/// Every option's publish: the message once, at its size or its share of the request minimum.
fn publish(e: &Event, c: &Ctx) -> Line {
    line(
        "Pub/Sub: publish",
        "list × size",
        Sku::PubsubThroughput,
        c.publish_bytes(e),
    )
}

/// Our pipeline, writing BigQuery with `m`'s method.
pub(crate) fn ours(e: &Event, m: &Measures, c: &Ctx) -> Usage {
    let msg = e.message_bytes;
    let delivered = |pushed: bool| {
        if pushed {
            msg.max(c.p.pubsub_minimum)
        } else {
            msg
        }
    };
    let subscribed = [e.to_gcs, e.to_bq, !e.to_bq];
    let mut services = [Load::default(); 3];
    let (mut requests, mut vcpu, mut gib, mut log) = (0.0, 0.0, 0.0, 0.0);
    for (service, action) in pushes(e) {
        let inst = c.instance_seconds(push_cpu(m, action, e.body_bytes));
        services[service].pushes += 1.0;
        services[service].instance_seconds += inst;
        requests += 1.0;
        vcpu += c.run.vcpus * inst;
        gib += c.run.memory_gib * inst;
        log += push_log(m, service, action);
    }
    let row = m.rows.row(e.redacted_bytes, e.has_private_metadata);
    let bigquery = if m.method == "insert_all" {
        line(
            "BigQuery: insertAll (1 KB minimum per row)",
            "list × measured row bytes",
            Sku::BigQueryInsertAll,
            row.max(c.p.row_minimum),
        )
    } else {
        line(
            "BigQuery: Storage Write API",
            "list × measured row bytes",
            Sku::BigQueryStorageWrite,
            row,
        )
    };
    let delivered_count = subscribed.iter().filter(|s| **s).count() as f64;
    let mut lines = vec![publish(e, c)];
    for (i, name) in SERVICES.iter().enumerate() {
        lines.push(line(
            format!("Pub/Sub: {name} subscription"),
            "list × size (pushed: ≥ 1,000 B)",
            Sku::PubsubThroughput,
            delivered(subscribed[i]),
        ));
    }
    lines.extend([
        match c.run.replay_retention {
            Retention::Subscription => line(
                "Pub/Sub: replay window, kept by each subscription that delivered it",
                "list × size × subscriptions × window",
                Sku::PubsubStorage,
                msg * delivered_count * c.replay_months(),
            ),
            Retention::Topic => line(
                "Pub/Sub: replay window, kept once by the topic",
                "list × size × window",
                Sku::PubsubStorage,
                msg * c.replay_months(),
            ),
        },
        line(
            "Cloud Run: requests",
            "list × pushes",
            Sku::RunRequests,
            requests,
        ),
        line(
            "Cloud Run: vCPU-seconds",
            "list × max(CPU term, in-flight term)",
            Sku::RunVcpuSeconds,
            vcpu,
        ),
        line(
            "Cloud Run: GiB-seconds",
            "list × max(CPU term, in-flight term)",
            Sku::RunGibSeconds,
            gib,
        ),
        line(
            if c.run.success_log_kept < 1.0 {
                format!(
                    "Cloud Logging: our line per push ({} % of the successes kept)",
                    percent(c.run.success_log_kept)
                )
            } else {
                "Cloud Logging: our line per push".to_string()
            },
            "list × measured bytes × kept",
            Sku::Logging,
            log * c.run.success_log_kept,
        ),
        if c.run.request_log_excluded {
            line(
                "Cloud Logging: entry metadata of our kept lines (Cloud Run's request log of a 2xx push excluded)",
                "list × estimate × kept",
                Sku::Logging,
                requests * c.a.entry_metadata_bytes * c.run.success_log_kept,
            )
        } else {
            line(
                "Cloud Logging: entry metadata of our kept lines, and Cloud Run's request log",
                "list × estimate",
                Sku::Logging,
                requests
                    * (c.a.entry_metadata_bytes * c.run.success_log_kept + c.a.request_log_bytes),
            )
        },
        bigquery,
        line(
            "Cloud Storage: Class A (one object per transcript)",
            "list × objects",
            Sku::GcsClassA,
            if e.gcs_object { 1.0 } else { 0.0 },
        ),
        gcs_storage(e, c),
    ]);
    Usage { lines, services }
}

/// (a): a BigQuery subscription with a JavaScript SMT (redaction) takes every message; the
/// Cloud Storage path of [`storage_subscription`].
pub(crate) fn option_a(e: &Event, c: &Ctx) -> Usage {
    let mut lines = vec![
        publish(e, c),
        line(
            "Pub/Sub: BigQuery subscription (every message)",
            "list × size",
            Sku::PubsubBigQuerySub,
            e.message_bytes,
        ),
        line(
            "Pub/Sub: SMT on it (redaction)",
            "list × size",
            Sku::PubsubSmt,
            e.message_bytes,
        ),
    ];
    lines.extend(storage_subscription(e, c));
    Usage {
        lines,
        services: [Load::default(); 3],
    }
}

/// (b), without its worker: the Dataflow template reads every message through a pull
/// subscription and writes rows with legacy streaming inserts (its default); the Cloud Storage
/// path of [`storage_subscription`].
pub(crate) fn option_b(e: &Event, insert_all: &Measures, c: &Ctx) -> Usage {
    let row = insert_all
        .rows
        .row(e.redacted_bytes, e.has_private_metadata);
    let mut lines = vec![
        publish(e, c),
        line(
            "Pub/Sub: Dataflow's pull subscription",
            "list × size",
            Sku::PubsubThroughput,
            e.message_bytes,
        ),
        line(
            "BigQuery: legacy streaming inserts (1 KB minimum per row)",
            "list × measured row bytes",
            Sku::BigQueryInsertAll,
            row.max(c.p.row_minimum),
        ),
    ];
    lines.extend(storage_subscription(e, c));
    Usage {
        lines,
        services: [Load::default(); 3],
    }
}

/// The mean usage of a kind's events (every event built the same lines).
pub(crate) fn mean(usages: &[Usage]) -> Usage {
    let n = usages.len().max(1) as f64;
    let mut out = usages[0].clone();
    for (i, l) in out.lines.iter_mut().enumerate() {
        l.qty = usages.iter().map(|u| u.lines[i].qty).sum::<f64>() / n;
    }
    for (s, load) in out.services.iter_mut().enumerate() {
        load.pushes = usages.iter().map(|u| u.services[s].pushes).sum::<f64>() / n;
        load.instance_seconds = usages
            .iter()
            .map(|u| u.services[s].instance_seconds)
            .sum::<f64>()
            / n;
    }
    out
}

pub(crate) fn kind_usage(k: &Kind, f: impl Fn(&Event) -> Usage) -> Usage {
    mean(&k.events.iter().map(f).collect::<Vec<_>>())
}

pub(crate) fn line_cost(l: &Line, c: &Ctx) -> f64 {
    l.qty * c.p.price(l.sku)
}

pub(crate) fn per_million(u: &Usage, c: &Ctx) -> f64 {
    u.lines.iter().map(|l| line_cost(l, c)).sum::<f64>() * MILLION
}

/// Cloud Run's compute for one service's pushes over a month at `volume` events, billed in `mode`,
/// as (sku, quantity):
/// - request-based: a fee per push, and the larger of the instance-seconds the pushes hold at
///   high volume and the time an instance has any push in flight (each busy interval billed at
///   least the rounding);
/// - instance-based: the instances the autoscaler keeps (the mean demand, at least one while
///   traffic flows, at least `min_instances`) for the whole month, no request fee. The mean holds
///   for traffic that varies over the day, since the autoscaler follows it (a busy hour's extra
///   instances are a quiet hour's fewer); the rounding to whole instances, an instance lingering
///   after a burst and a floor of one in quiet hours while the mean is below one are not modelled.
pub(crate) fn run_usage(load: &Load, volume: f64, mode: Billing, c: &Ctx) -> Vec<(Sku, f64)> {
    let month = c.a.seconds_per_month();
    let demand = volume * load.instance_seconds;
    match mode {
        Billing::Request if load.pushes > 0.0 => {
            let rate = volume * load.pushes / month;
            let interval = c.a.in_flight_seconds.max(c.p.run_granularity);
            let busy = month * (1.0 - (-rate * interval).exp());
            let instance = demand.max(busy);
            vec![
                (Sku::RunRequests, volume * load.pushes),
                (Sku::RunVcpuSeconds, c.run.vcpus * instance),
                (Sku::RunGibSeconds, c.run.memory_gib * instance),
            ]
        }
        Billing::Request => vec![],
        Billing::Instance => {
            let traffic = if load.pushes > 0.0 { 1.0 } else { 0.0 };
            let instances = (demand / month).max(traffic).max(c.run.min_instances);
            let instance = instances * month;
            vec![
                (Sku::RunInstanceVcpuSeconds, c.run.vcpus * instance),
                (Sku::RunInstanceGibSeconds, c.run.memory_gib * instance),
            ]
        }
    }
}

/// One service's Cloud Run bill for the month at list prices (no free tier).
pub(crate) fn run_cost(load: &Load, volume: f64, mode: Billing, c: &Ctx) -> f64 {
    run_usage(load, volume, mode, c)
        .iter()
        .map(|(sku, q)| q * c.p.price(*sku))
        .sum()
}

/// The cheaper billing mode of each service at `volume`.
pub(crate) fn cheapest(u: &Usage, volume: f64, c: &Ctx) -> [Billing; 3] {
    u.services.map(|load| {
        if run_cost(&load, volume, Billing::Instance, c)
            < run_cost(&load, volume, Billing::Request, c)
        {
            Billing::Instance
        } else {
            Billing::Request
        }
    })
}

/// Where instance-based billing becomes the cheaper for one service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Crossover {
    /// Above this many events a month.
    At(f64),
    /// Already at 10 thousand events a month.
    Always,
    /// Not by 1 trillion.
    Never,
    /// The service gets no pushes.
    NoTraffic,
}

/// The monthly volume above which instance-based billing is the cheaper for a service with
/// `load` (bisection between 10 thousand and 1 trillion events a month).
pub(crate) fn crossover(load: &Load, c: &Ctx) -> Crossover {
    if load.pushes <= 0.0 {
        return Crossover::NoTraffic;
    }
    let gap =
        |v: f64| run_cost(load, v, Billing::Instance, c) - run_cost(load, v, Billing::Request, c);
    let (mut lo, mut hi) = (1e4_f64.ln(), 1e12_f64.ln());
    if gap(lo.exp()) <= 0.0 {
        return Crossover::Always;
    }
    if gap(hi.exp()) > 0.0 {
        return Crossover::Never;
    }
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if gap(mid.exp()) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Crossover::At(hi.exp())
}

/// `u`'s per-push Cloud Run lines as instance-based billing prices them at high volume: the same
/// instance-seconds at its rates, and no request fee.
pub(crate) fn instance_billed(u: &Usage) -> Usage {
    let mut out = u.clone();
    for l in &mut out.lines {
        match l.sku {
            Sku::RunRequests => {
                l.label = "Cloud Run: requests (no fee with instance-based billing)".into();
                l.qty = 0.0;
            }
            Sku::RunVcpuSeconds => {
                l.label = "Cloud Run: vCPU-seconds, instance-based".into();
                l.sku = Sku::RunInstanceVcpuSeconds;
            }
            Sku::RunGibSeconds => {
                l.label = "Cloud Run: GiB-seconds, instance-based".into();
                l.sku = Sku::RunInstanceGibSeconds;
            }
            _ => {}
        }
    }
    out
}

fn is_run(sku: Sku) -> bool {
    matches!(
        sku,
        Sku::RunRequests
            | Sku::RunVcpuSeconds
            | Sku::RunGibSeconds
            | Sku::RunInstanceVcpuSeconds
            | Sku::RunInstanceGibSeconds
    )
}

/// A month at `volume` events: the usage lines times the volume, except Cloud Run, which is each
/// service's [`run_usage`] in its billing mode (`modes`, in [`SERVICES`] order); `free` takes off
/// the free tiers; `fixed` is added (a Dataflow worker).
pub(crate) fn monthly(
    u: &Usage,
    volume: f64,
    free: bool,
    fixed: f64,
    modes: [Billing; 3],
    c: &Ctx,
) -> f64 {
    let mut qty: BTreeMap<Sku, f64> = BTreeMap::new();
    for l in u.lines.iter().filter(|l| !is_run(l.sku)) {
        *qty.entry(l.sku).or_default() += volume * l.qty;
    }
    for (load, mode) in u.services.iter().zip(modes) {
        for (sku, q) in run_usage(load, volume, mode, c) {
            *qty.entry(sku).or_default() += q;
        }
    }
    fixed
        + qty
            .iter()
            .map(|(sku, q)| {
                let billed = if free {
                    (q - c.p.free(*sku)).max(0.0)
                } else {
                    *q
                };
                billed * c.p.price(*sku)
            })
            .sum::<f64>()
}

/// What no setting removes, for a month at `volume`: Pub/Sub's publish and subscription legs, the
/// writes themselves (BigQuery's bytes, Cloud Storage's objects and their storage) and, for each
/// service with traffic, one instance billed instance-based for the month or, where less, its
/// request fee alone (request-based billing cannot go below it).
pub(crate) fn floor_monthly(u: &Usage, volume: f64, c: &Ctx) -> f64 {
    let work = u
        .lines
        .iter()
        .filter(|l| {
            matches!(
                l.sku,
                Sku::PubsubThroughput
                    | Sku::BigQueryStorageWrite
                    | Sku::BigQueryInsertAll
                    | Sku::GcsClassA
                    | Sku::GcsStorage
            )
        })
        .map(|l| volume * line_cost(l, c))
        .sum::<f64>();
    let instance = c.a.seconds_per_month()
        * (c.run.vcpus * c.p.price(Sku::RunInstanceVcpuSeconds)
            + c.run.memory_gib * c.p.price(Sku::RunInstanceGibSeconds));
    let compute = u
        .services
        .iter()
        .filter(|l| l.pushes > 0.0)
        .map(|l| instance.min(volume * l.pushes * c.p.price(Sku::RunRequests)))
        .sum::<f64>();
    work + compute
}
