//! Keeping the kernel in line with the model: [`Syncer`] does one sync (compute, diff,
//! restore, clear stale conntrack entries) and [`sync_loop`] decides when.
//!
//! When: changes are batched so that a burst of endpoint updates costs one restore
//! (at most one sync per `min_sync_period`); every `check_period` the canary chains
//! are read, and if someone flushed or deleted the proxy's rules a full resync puts
//! them back; every `full_sync_period` a full resync runs regardless; a failed restore
//! is retried as a full resync with exponential backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::{BackendError, RuleBackend};
use crate::conntrack::{stale_flows, Conntrack};
use crate::diff::{self, parse_save, TableState};
use crate::model::ProxyModel;
use crate::rules::{
    self, is_owned_chain, port_fragment, Fragment, NodeInfo, RuleSet, Table, CANARY,
};

/// How often the loop syncs and checks.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Minimum time between two syncs; changes arriving meanwhile are batched.
    pub min_sync_period: Duration,
    /// How often to check that the rules are still in place.
    pub check_period: Duration,
    /// How often to rewrite everything even when nothing seems wrong.
    pub full_sync_period: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            min_sync_period: Duration::from_secs(1),
            check_period: Duration::from_secs(10),
            full_sync_period: Duration::from_secs(3600),
        }
    }
}

/// Up to this many changed service ports, a sync edits fragments instead of
/// recomputing everything.
const FRAGMENT_LIMIT: usize = 64;

/// How a sync updates its record of what the kernel holds.
enum Plan {
    Replace(RuleSet),
    Patch(Vec<(Option<Fragment>, Option<Fragment>)>),
}

/// Whether a sync rewrote everything or only the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Full,
    Incremental,
}

/// What one sync did.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub mode: SyncMode,
    /// Bytes of restore text written (0: nothing changed, no restore ran).
    pub restore_bytes: usize,
    pub rules: usize,
    pub stale_flows: usize,
    /// Time spent in iptables-restore.
    pub restore: Duration,
    /// Time of the whole sync.
    pub duration: Duration,
}

/// Owns the backend and remembers what it last wrote.
pub struct Syncer<B, C> {
    backend: B,
    conntrack: C,
    node: NodeInfo,
    /// What the kernel holds as far as we know; `None` before the first sync.
    applied: Option<RuleSet>,
    /// The last restore failed: the next sync must be full.
    need_full: bool,
    /// The model of the last successful sync, for stale conntrack detection.
    last_model: Option<ProxyModel>,
}

impl<B: RuleBackend, C: Conntrack> Syncer<B, C> {
    pub fn new(backend: B, conntrack: C, node: NodeInfo) -> Self {
        Syncer {
            backend,
            conntrack,
            node,
            applied: None,
            need_full: false,
            last_model: None,
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Brings the kernel to the rules for `model`. `force_full` rewrites every owned
    /// chain (after reading the tables to find stale chains and missing jumps);
    /// otherwise only the service ports that changed since the last sync are written.
    pub fn sync(
        &mut self,
        model: ProxyModel,
        force_full: bool,
    ) -> Result<SyncReport, BackendError> {
        let started = Instant::now();
        let force_full = force_full || self.need_full;
        let (mode, text, plan) = match (&self.applied, &self.last_model, force_full) {
            (Some(applied), Some(prev), false) => {
                let changes = prev.changes(&model);
                if changes.len() > (model.ports.len() / 8).max(FRAGMENT_LIMIT) {
                    // A big change (e.g. a namespace deleted): diffing whole rule sets
                    // is cheaper than thousands of fragment edits.
                    let desired = rules::compute(&model, &self.node);
                    (
                        SyncMode::Incremental,
                        diff::incremental(applied, &desired),
                        Plan::Replace(desired),
                    )
                } else {
                    let frags: Vec<(Option<Fragment>, Option<Fragment>)> = changes
                        .into_iter()
                        .map(|(b, a)| {
                            (
                                b.map(|p| port_fragment(p, &self.node)),
                                a.map(|p| port_fragment(p, &self.node)),
                            )
                        })
                        .collect();
                    (
                        SyncMode::Incremental,
                        diff::fragments(&frags),
                        Plan::Patch(frags),
                    )
                }
            }
            _ => {
                let desired = rules::compute(&model, &self.node);
                let existing = self.read_existing()?;
                (
                    SyncMode::Full,
                    diff::full(&desired, &existing),
                    Plan::Replace(desired),
                )
            }
        };
        let restore_started = Instant::now();
        if !text.is_empty() {
            if let Err(e) = self.backend.restore(&text) {
                // A restore is all-or-nothing, so `applied` still describes the
                // kernel; but something is off, so start over with a full sync.
                self.need_full = true;
                return Err(e);
            }
        }
        let restore = restore_started.elapsed();
        self.need_full = false;
        match plan {
            Plan::Replace(desired) => self.applied = Some(desired),
            Plan::Patch(frags) => {
                let applied = self
                    .applied
                    .as_mut()
                    .expect("patching requires a previous rule set");
                for (before, after) in &frags {
                    if let Some(b) = before {
                        applied.remove_fragment(b);
                    }
                    if let Some(a) = after {
                        applied.add_fragment(a);
                    }
                }
            }
        }
        let rules = self
            .applied
            .as_ref()
            .map(RuleSet::rule_count)
            .unwrap_or_default();

        // After the restore, so that new packets of a cleared flow already meet the
        // new rules. Skipped on the first sync: there is no previous model to compare
        // with, and clearing every UDP service at start-up would be a storm.
        let mut stale = 0;
        if let Some(prev) = &self.last_model {
            for flow in stale_flows(prev, &model) {
                stale += 1;
                if let Err(e) = self.conntrack.delete(&flow) {
                    warn!(error = %e, ?flow, "could not clear stale conntrack entries; UDP clients may keep reaching a removed endpoint");
                }
            }
        }
        self.last_model = Some(model);
        Ok(SyncReport {
            mode,
            restore_bytes: text.len(),
            rules,
            stale_flows: stale,
            restore,
            duration: started.elapsed(),
        })
    }

    /// What a full sync needs to know about the tables: which chains exist (to delete
    /// stale owned ones) and which jumps the built-in chains hold. `iptables-save`
    /// crashes (SIGSEGV, iptables 1.8.9) on tables with ~100,000 chains, so when it
    /// fails the chains we wrote last time stand in for the list (the full restore
    /// declares a stale chain before deleting it, so one that is already gone does no
    /// harm) and the built-in chains are read one by one.
    fn read_existing(&self) -> Result<BTreeMap<Table, TableState>, BackendError> {
        let mut out = BTreeMap::new();
        for t in Table::ALL {
            let state = match self.backend.save(t) {
                Ok(text) => parse_save(&text),
                Err(e) => {
                    warn!(error = %e, table = t.name(), "iptables-save failed; using the last known chain list");
                    let mut lines = String::new();
                    let mut builtins: Vec<&str> = rules::builtin_jumps()
                        .iter()
                        .filter(|j| j.table == t)
                        .map(|j| j.chain)
                        .collect();
                    builtins.dedup();
                    for chain in builtins {
                        for rule in self.backend.chain(t, chain)?.unwrap_or_default() {
                            lines.push_str(&rule);
                            lines.push('\n');
                        }
                    }
                    let mut state = parse_save(&lines);
                    if let Some(applied) = &self.applied {
                        state.chains.extend(applied.table(t).keys().cloned());
                    }
                    state
                }
            };
            out.insert(t, state);
        }
        Ok(out)
    }

    /// Whether the canary chains still hold their rule in both tables. A flush of a
    /// table empties them; a delete of the table's chains removes them.
    pub fn rules_intact(&self) -> Result<bool, BackendError> {
        for t in Table::ALL {
            match self.backend.chain(t, CANARY)? {
                Some(rules) if !rules.is_empty() => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// Removes every chain the proxy owns and the jumps to them from built-in chains,
/// leaving all other rules alone (`skiff agent --cleanup`).
pub fn cleanup<B: RuleBackend>(backend: &B) -> Result<(), BackendError> {
    let mut text = String::new();
    for t in Table::ALL {
        let saved = backend.save(t)?;
        let state: TableState = parse_save(&saved);
        let owned: Vec<&String> = state.chains.iter().filter(|c| is_owned_chain(c)).collect();
        if owned.is_empty() {
            continue;
        }
        text.push_str(&format!("*{}\n", t.name()));
        for c in &owned {
            text.push_str(&format!(":{c} - [0:0]\n"));
        }
        for line in saved.lines() {
            // iptables-save prints rules as valid `-A` input; the same text after `-D`
            // deletes exactly that rule.
            let Some(rest) = line.strip_prefix("-A ") else {
                continue;
            };
            let chain = rest.split_whitespace().next().unwrap_or_default();
            let target = rest
                .rsplit(" -j ")
                .next()
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or_default();
            if !is_owned_chain(chain) && rest.contains(" -j ") && is_owned_chain(target) {
                text.push_str(&format!("-D {rest}\n"));
            }
        }
        for c in &owned {
            text.push_str(&format!("-X {c}\n"));
        }
        text.push_str("COMMIT\n");
    }
    if text.is_empty() {
        return Ok(());
    }
    backend.restore(&text)
}

/// Runs `sync` on a blocking thread: iptables-restore can take seconds at scale.
async fn blocking<B, C, T>(
    syncer: Syncer<B, C>,
    f: impl FnOnce(&mut Syncer<B, C>) -> T + Send + 'static,
) -> (Syncer<B, C>, T)
where
    B: RuleBackend,
    C: Conntrack,
    T: Send + 'static,
{
    let mut syncer = syncer;
    tokio::task::spawn_blocking(move || {
        let out = f(&mut syncer);
        (syncer, out)
    })
    .await
    .expect("proxy sync thread panicked")
}

/// Syncs whenever `changes` is notified (batched), checks and resyncs periodically,
/// until `shutdown`. `snapshot` returns the current model (from the informer caches).
/// Returns the syncer so callers (tests) can inspect it.
pub async fn sync_loop<B, C, F>(
    syncer: Syncer<B, C>,
    snapshot: F,
    changes: Arc<Notify>,
    config: SyncConfig,
    shutdown: CancellationToken,
) -> Syncer<B, C>
where
    B: RuleBackend,
    C: Conntrack,
    F: Fn() -> ProxyModel + Send + Sync + 'static,
{
    let mut syncer = syncer;
    let mut pending = true;
    let mut force_full = true;
    let mut not_before = tokio::time::Instant::now();
    let mut next_check = tokio::time::Instant::now() + config.check_period;
    let mut next_full = tokio::time::Instant::now() + config.full_sync_period;
    let mut backoff = config.min_sync_period;
    let max_backoff = Duration::from_secs(30).max(config.min_sync_period);

    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = changes.notified() => pending = true,
            _ = tokio::time::sleep_until(not_before), if pending || force_full => {
                let model = snapshot();
                let full = force_full;
                let (s, result) = blocking(syncer, move |s| s.sync(model, full)).await;
                syncer = s;
                match result {
                    Ok(report) => {
                        pending = false;
                        force_full = false;
                        backoff = config.min_sync_period;
                        not_before = tokio::time::Instant::now() + config.min_sync_period;
                        if full {
                            next_full = tokio::time::Instant::now() + config.full_sync_period;
                            info!(rules = report.rules, ms = report.duration.as_millis() as u64, "full proxy sync done");
                        } else {
                            debug!(
                                bytes = report.restore_bytes,
                                stale = report.stale_flows,
                                restore_ms = report.restore.as_millis() as u64,
                                ms = report.duration.as_millis() as u64,
                                "proxy sync done"
                            );
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "proxy sync failed; retrying with a full resync");
                        force_full = true;
                        not_before = tokio::time::Instant::now() + backoff;
                        backoff = (backoff * 2).min(max_backoff);
                    }
                }
            }
            _ = tokio::time::sleep_until(next_check) => {
                let (s, intact) = blocking(syncer, |s| s.rules_intact()).await;
                syncer = s;
                match intact {
                    Ok(true) => {}
                    Ok(false) => {
                        warn!("proxy rules are missing (table flushed?); resyncing everything");
                        force_full = true;
                    }
                    Err(e) => warn!(error = %e, "could not check the proxy's canary chains"),
                }
                next_check = tokio::time::Instant::now() + config.check_period;
            }
            _ = tokio::time::sleep_until(next_full) => {
                force_full = true;
                next_full = tokio::time::Instant::now() + config.full_sync_period;
            }
        }
    }
    syncer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FakeBackend;
    use crate::conntrack::RecordingConntrack;
    use crate::model::build_model;
    use crate::model::testutil::*;
    use std::sync::Mutex;

    fn node() -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            node_port_addresses: vec![],
            cluster_cidr: None,
        }
    }

    fn model(n_eps: usize, proto: &str) -> ProxyModel {
        let svc = service("d", "web", "10.96.0.10", &[("", 80, proto)]);
        let ips: Vec<String> = (0..n_eps).map(|i| format!("10.244.0.{}", i + 2)).collect();
        let list: Vec<(&str, bool, bool, bool, &str)> = ips
            .iter()
            .map(|ip| (ip.as_str(), true, true, false, "n1"))
            .collect();
        let sl = slice("d", "web-a", "web", &[("", 8080, proto)], &list);
        build_model([&svc], [&sl])
    }

    fn syncer() -> (
        Syncer<FakeBackend, RecordingConntrack>,
        FakeBackend,
        RecordingConntrack,
    ) {
        let fake = FakeBackend::new();
        let ct = RecordingConntrack::default();
        (Syncer::new(fake.clone(), ct.clone(), node()), fake, ct)
    }

    #[test]
    fn first_sync_is_full_then_incremental_and_idle_syncs_write_nothing() {
        let (mut s, fake, _) = syncer();
        let r = s.sync(model(2, "TCP"), false).unwrap();
        assert_eq!(r.mode, SyncMode::Full);
        assert!(s.rules_intact().unwrap());
        let r = s.sync(model(2, "TCP"), false).unwrap();
        assert_eq!((r.mode, r.restore_bytes), (SyncMode::Incremental, 0));
        let r = s.sync(model(3, "TCP"), false).unwrap();
        assert_eq!(r.mode, SyncMode::Incremental);
        assert!(r.restore_bytes > 0);
        assert_eq!(
            fake.restores().len(),
            2,
            "the idle sync must not run iptables-restore"
        );
        // An endpoint change touches only the service's own chains.
        let text = fake.restores()[1].clone();
        assert!(
            !text.contains("KUBE-SERVICES") && !text.contains("*filter"),
            "{text}"
        );
        assert!(text.contains("10.244.0.4:8080"), "{text}");
    }

    #[test]
    fn big_changes_take_the_whole_rule_set_path_and_stay_correct() {
        let many = |n: usize, eps: usize| {
            let svcs: Vec<_> = (0..n)
                .map(|i| {
                    service(
                        "d",
                        &format!("s{i}"),
                        &format!("10.96.1.{}", i + 1),
                        &[("", 80, "TCP")],
                    )
                })
                .collect();
            let slices: Vec<_> = (0..n)
                .map(|i| {
                    let ips: Vec<String> =
                        (0..eps).map(|e| format!("10.244.{e}.{}", i + 1)).collect();
                    let list: Vec<(&str, bool, bool, bool, &str)> = ips
                        .iter()
                        .map(|ip| (ip.as_str(), true, true, false, "n1"))
                        .collect();
                    slice(
                        "d",
                        &format!("s{i}-a"),
                        &format!("s{i}"),
                        &[("", 8080, "TCP")],
                        &list,
                    )
                })
                .collect();
            build_model(&svcs, &slices)
        };
        let (mut s, fake, _) = syncer();
        for (i, (n, eps)) in [(100, 1), (100, 2), (30, 2), (31, 2), (0, 0), (5, 1)]
            .into_iter()
            .enumerate()
        {
            let r = s.sync(many(n, eps), false).unwrap();
            assert_eq!(
                r.mode == SyncMode::Full,
                i == 0,
                "only the first sync is full"
            );
            let fresh = FakeBackend::new();
            fresh
                .restore(&diff::full(
                    &rules::compute(&many(n, eps), &node()),
                    &BTreeMap::new(),
                ))
                .unwrap();
            let sorted = |m: BTreeMap<(Table, String), Vec<String>>| {
                m.into_iter()
                    .map(|(k, mut v)| {
                        v.sort();
                        (k, v)
                    })
                    .collect::<BTreeMap<_, _>>()
            };
            assert_eq!(
                sorted(fake.owned_chains()),
                sorted(fresh.owned_chains()),
                "after {n} services x {eps}"
            );
        }
    }

    #[test]
    fn flush_is_detected_and_repaired_by_a_full_sync() {
        let (mut s, fake, _) = syncer();
        s.sync(model(2, "TCP"), false).unwrap();
        let before = fake.owned_chains();
        fake.flush_table(Table::Nat);
        assert!(!s.rules_intact().unwrap());
        s.sync(model(2, "TCP"), true).unwrap();
        assert!(s.rules_intact().unwrap());
        assert_eq!(fake.owned_chains(), before);
        // The flush also removed our jump from PREROUTING; it is back exactly once.
        let pre = FakeBackend::chain(&fake, Table::Nat, "PREROUTING").unwrap();
        assert_eq!(
            pre.iter()
                .filter(|r| r.ends_with("-j KUBE-SERVICES"))
                .count(),
            1
        );

        fake.wipe_table(Table::Filter);
        assert!(!s.rules_intact().unwrap());
        s.sync(model(2, "TCP"), true).unwrap();
        assert_eq!(fake.owned_chains(), before);
    }

    #[test]
    fn failed_restore_forces_a_full_sync_next() {
        let (mut s, fake, _) = syncer();
        s.sync(model(1, "TCP"), false).unwrap();
        fake.fail_next_restore();
        assert!(s.sync(model(2, "TCP"), false).is_err());
        let r = s.sync(model(2, "TCP"), false).unwrap();
        assert_eq!(r.mode, SyncMode::Full);
    }

    #[test]
    fn full_sync_works_when_iptables_save_fails() {
        let (mut s, fake, _) = syncer();
        s.sync(model(3, "TCP"), false).unwrap();
        fake.fail_saves(true);
        // Flushed and partly deleted; then a full sync with one endpoint fewer.
        fake.wipe_table(Table::Nat);
        s.sync(model(2, "TCP"), true).unwrap();
        let fresh = FakeBackend::new();
        fresh
            .restore(&diff::full(
                &rules::compute(&model(2, "TCP"), &node()),
                &BTreeMap::new(),
            ))
            .unwrap();
        assert_eq!(fake.owned_chains(), fresh.owned_chains());
        let pre = FakeBackend::chain(&fake, Table::Nat, "PREROUTING").unwrap();
        assert_eq!(
            pre.iter()
                .filter(|r| r.ends_with("-j KUBE-SERVICES"))
                .count(),
            1
        );
        // Not wiped this time: stale chains still exist and are removed, jumps not doubled.
        s.sync(model(1, "TCP"), true).unwrap();
        s.sync(model(1, "TCP"), true).unwrap();
        let fresh = FakeBackend::new();
        fresh
            .restore(&diff::full(
                &rules::compute(&model(1, "TCP"), &node()),
                &BTreeMap::new(),
            ))
            .unwrap();
        assert_eq!(fake.owned_chains(), fresh.owned_chains());
        let fwd = FakeBackend::chain(&fake, Table::Filter, "FORWARD").unwrap();
        assert_eq!(fwd.len(), 3, "{fwd:?}");
    }

    #[test]
    fn removed_udp_endpoints_clear_conntrack_but_not_on_first_sync() {
        let (mut s, _, ct) = syncer();
        s.sync(model(2, "UDP"), false).unwrap();
        assert!(ct.deleted.lock().unwrap().is_empty());
        s.sync(model(1, "UDP"), false).unwrap();
        let deleted = ct.deleted.lock().unwrap().clone();
        assert_eq!(deleted.len(), 1);
        assert_eq!(
            deleted[0].args().join(" "),
            "-D -p udp --orig-dst 10.96.0.10 --dst-nat 10.244.0.3"
        );
    }

    #[test]
    fn cleanup_removes_only_owned_chains_and_jumps() {
        let (mut s, fake, _) = syncer();
        s.sync(model(2, "TCP"), false).unwrap();
        fake.restore("*nat\n:OTHER - [0:0]\n-A OTHER -j RETURN\n-A PREROUTING -j OTHER\nCOMMIT\n")
            .unwrap();
        cleanup(&fake).unwrap();
        assert!(fake.owned_chains().is_empty(), "{:?}", fake.owned_chains());
        assert_eq!(
            FakeBackend::chain(&fake, Table::Nat, "PREROUTING").unwrap(),
            vec!["-j OTHER"]
        );
        assert_eq!(
            FakeBackend::chain(&fake, Table::Nat, "OTHER").unwrap(),
            vec!["-j RETURN"]
        );
        assert_eq!(
            FakeBackend::chain(&fake, Table::Filter, "FORWARD").unwrap(),
            Vec::<String>::new()
        );
        // Nothing left to clean: no restore at all.
        let n = fake.restores().len();
        cleanup(&fake).unwrap();
        assert_eq!(fake.restores().len(), n);
    }

    #[tokio::test(start_paused = true)]
    async fn loop_batches_changes_and_heals_flushes() {
        let fake = FakeBackend::new();
        let current = Arc::new(Mutex::new(model(1, "TCP")));
        let changes = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let cfg = SyncConfig {
            min_sync_period: Duration::from_secs(1),
            check_period: Duration::from_secs(5),
            full_sync_period: Duration::from_secs(3600),
        };
        let snap = current.clone();
        let task = tokio::spawn(sync_loop(
            Syncer::new(fake.clone(), RecordingConntrack::default(), node()),
            move || snap.lock().unwrap().clone(),
            changes.clone(),
            cfg,
            shutdown.clone(),
        ));
        // Blocking-pool work does not advance the paused clock; yield in small steps.
        async fn settle(d: Duration) {
            let steps = (d.as_millis() / 50).max(1);
            for _ in 0..steps {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tokio::task::yield_now().await;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        settle(Duration::from_millis(200)).await;
        assert_eq!(fake.restores().len(), 1, "initial full sync");

        // A burst of ten changes inside one min_sync_period gives at most one restore.
        for n in 2..12 {
            *current.lock().unwrap() = model(n, "TCP");
            changes.notify_one();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        settle(Duration::from_millis(1500)).await;
        let restores = fake.restores();
        assert_eq!(restores.len(), 2, "burst must be batched: {restores:#?}");
        assert!(
            restores[1].contains("10.244.0.12:8080"),
            "last state applied"
        );

        // Flush: back within the check period.
        fake.flush_table(Table::Nat);
        settle(Duration::from_secs(6)).await;
        let svc_chain = fake
            .owned_chains()
            .keys()
            .filter(|(t, c)| *t == Table::Nat && c.starts_with("KUBE-SEP-"))
            .count();
        assert_eq!(svc_chain, 11);
        assert!(fake
            .chain(Table::Nat, CANARY)
            .is_some_and(|r| !r.is_empty()));

        shutdown.cancel();
        let syncer = task.await.unwrap();
        assert!(syncer.rules_intact().unwrap());
    }
}
