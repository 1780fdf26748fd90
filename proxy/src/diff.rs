//! From "what is there" to "what should be there": the `iptables-restore --noflush`
//! input that gets the kernel from one rule set to the next while touching as little as
//! possible.
//!
//! Pure. Three entry points:
//! - [`incremental`]: previous rule set (what the proxy last wrote) vs desired. Chains
//!   that did not change are not mentioned at all, so the kernel keeps them as they
//!   are; small ordered chains that changed are rewritten (a `:CHAIN` line flushes
//!   them); the big order-free chains (`KUBE-SERVICES`, `KUBE-NODEPORTS`, ...) get
//!   single `-D`/`-I` edits, because rewriting a 20,000-rule chain for one new service
//!   would cost as much as the whole sync.
//! - [`fragments`]: the same for a few changed service ports, from their old and new
//!   rule fragments alone, so its cost follows the change and not the rule set.
//! - [`full`]: desired vs the parsed `iptables-save` of the tables: every owned chain is
//!   rewritten, stale owned chains are deleted, missing jumps from built-in chains are
//!   inserted. Used at start, periodically, and after something else touched the tables.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::rules::{builtin_jumps, is_owned_chain, Chain, Fragment, RuleSet, Table};

/// When more than this fraction of an order-free chain changes, rewriting it is cheaper
/// than editing rule by rule (each `-D` makes iptables search the chain).
const EDIT_LIMIT_DIVISOR: usize = 4;

/// What `iptables-save` showed for one table, reduced to what the full sync needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableState {
    pub chains: BTreeSet<String>,
    /// (chain, jump target) pairs found in the built-in chains.
    pub builtin_jumps: BTreeSet<(String, String)>,
}

/// Parses `iptables-save -t <table>` output.
pub fn parse_save(text: &str) -> TableState {
    let mut state = TableState::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(':') {
            if let Some(name) = rest.split_whitespace().next() {
                state.chains.insert(name.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let Some(chain) = rest.split_whitespace().next() else {
                continue;
            };
            if is_owned_chain(chain) {
                continue;
            }
            if let Some(target) = rest.rsplit(" -j ").next().filter(|_| rest.contains(" -j ")) {
                let target = target.split_whitespace().next().unwrap_or_default();
                state
                    .builtin_jumps
                    .insert((chain.to_string(), target.to_string()));
            }
        }
    }
    state
}

fn push_chain_rules(out: &mut String, name: &str, chain: &Chain) {
    for rule in chain.all_rules() {
        let _ = writeln!(out, "-A {name} {rule}");
    }
}

/// Restore text that rewrites every owned chain of both tables. `existing` holds the
/// parsed state per table; a table missing from it is treated as empty.
pub fn full(desired: &RuleSet, existing: &BTreeMap<Table, TableState>) -> String {
    let empty = TableState::default();
    let mut out = String::new();
    for table in Table::ALL {
        let want = desired.table(table);
        let have = existing.get(&table).unwrap_or(&empty);
        let stale: Vec<&String> = have
            .chains
            .iter()
            .filter(|c| is_owned_chain(c) && !want.contains_key(*c))
            .collect();
        let _ = writeln!(out, "*{}", table.name());
        for name in want.keys().chain(stale.iter().copied()) {
            let _ = writeln!(out, ":{name} - [0:0]");
        }
        for (name, chain) in want {
            push_chain_rules(&mut out, name, chain);
        }
        // `-I` without a position puts the rule first; going backwards keeps the list's
        // order among several jumps in one chain.
        for jump in builtin_jumps().iter().rev().filter(|j| j.table == table) {
            if !have
                .builtin_jumps
                .contains(&(jump.chain.to_string(), jump.target.to_string()))
            {
                let _ = writeln!(out, "-I {} {}", jump.chain, jump.rule);
            }
        }
        for name in stale {
            let _ = writeln!(out, "-X {name}");
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// Restore text that turns `prev` into `desired`; empty when nothing changed.
pub fn incremental(prev: &RuleSet, desired: &RuleSet) -> String {
    let mut out = String::new();
    for table in Table::ALL {
        let (old, new) = (prev.table(table), desired.table(table));
        let mut declare = Vec::new();
        let mut deletes = Vec::new();
        let mut adds = Vec::new();
        let mut remove_chains = Vec::new();

        for (name, chain) in new {
            match old.get(name) {
                Some(before) if before == chain => {}
                Some(before) => {
                    if let Some((del, ins)) = rule_edits(before, chain) {
                        deletes.extend(del.into_iter().map(|r| format!("-D {name} {r}")));
                        adds.extend(ins.into_iter().map(|r| format!("-I {name} {r}")));
                    } else {
                        declare.push(name);
                        adds.extend(chain.all_rules().map(|r| format!("-A {name} {r}")));
                    }
                }
                None => {
                    declare.push(name);
                    adds.extend(chain.all_rules().map(|r| format!("-A {name} {r}")));
                }
            }
        }
        for name in old.keys().filter(|n| !new.contains_key(*n)) {
            // Flush first: a chain must be empty to be deleted. References to it are
            // gone by the time `-X` runs, because they sit in chains rewritten or
            // edited above in the same transaction.
            declare.push(name);
            remove_chains.push(format!("-X {name}"));
        }
        if declare.is_empty() && deletes.is_empty() && adds.is_empty() {
            continue;
        }
        let _ = writeln!(out, "*{}", table.name());
        for name in declare {
            let _ = writeln!(out, ":{name} - [0:0]");
        }
        for line in deletes.iter().chain(&adds).chain(&remove_chains) {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// Restore text that replaces some service ports' fragments (`None` before: added;
/// `None` after: removed), everything else being unchanged. Cost follows the size of
/// the change, not of the rule set: no chain outside the fragments is compared,
/// shared chains get single-rule `-D`/`-I` edits.
pub fn fragments(changes: &[(Option<Fragment>, Option<Fragment>)]) -> String {
    let mut old_chains: BTreeMap<&String, &Chain> = BTreeMap::new();
    let mut new_chains: BTreeMap<&String, &Chain> = BTreeMap::new();
    let mut old_shared: BTreeSet<(Table, &str, &String)> = BTreeSet::new();
    let mut new_shared: BTreeSet<(Table, &str, &String)> = BTreeSet::new();
    for (before, after) in changes {
        if let Some(f) = before {
            old_chains.extend(f.chains.iter().map(|(n, c)| (n, c)));
            old_shared.extend(f.shared.iter().map(|(t, c, r)| (*t, *c, r)));
        }
        if let Some(f) = after {
            new_chains.extend(f.chains.iter().map(|(n, c)| (n, c)));
            new_shared.extend(f.shared.iter().map(|(t, c, r)| (*t, *c, r)));
        }
    }
    let mut out = String::new();
    for table in Table::ALL {
        let mut declare = Vec::new();
        let mut lines = Vec::new();
        let mut remove = Vec::new();
        if table == Table::Nat {
            for (name, chain) in &new_chains {
                if old_chains.get(name) != Some(chain) {
                    declare.push(*name);
                    lines.extend(chain.all_rules().map(|r| format!("-A {name} {r}")));
                }
            }
            for name in old_chains.keys().filter(|n| !new_chains.contains_key(*n)) {
                declare.push(*name);
                remove.push(format!("-X {name}"));
            }
        }
        let deletes: Vec<String> = old_shared
            .difference(&new_shared)
            .filter(|(t, _, _)| *t == table)
            .map(|(_, c, r)| format!("-D {c} {r}"))
            .collect();
        let inserts = new_shared
            .difference(&old_shared)
            .filter(|(t, _, _)| *t == table)
            .map(|(_, c, r)| format!("-I {c} {r}"));
        lines.extend(inserts);
        if declare.is_empty() && deletes.is_empty() && lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "*{}", table.name());
        for name in declare {
            let _ = writeln!(out, ":{name} - [0:0]");
        }
        for line in deletes.iter().chain(&lines).chain(&remove) {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// For an order-free chain with an unchanged tail: the rules to delete and to insert,
/// or `None` when the chain should be rewritten instead.
fn rule_edits<'a>(
    before: &'a Chain,
    after: &'a Chain,
) -> Option<(Vec<&'a String>, Vec<&'a String>)> {
    if !(before.order_free && after.order_free) || before.tail != after.tail {
        return None;
    }
    let old: BTreeSet<&String> = before.rules.iter().collect();
    let new: BTreeSet<&String> = after.rules.iter().collect();
    // Duplicates would make `-D` ambiguous; they do not occur in computed rule sets,
    // but rewriting is always correct.
    if old.len() != before.rules.len() || new.len() != after.rules.len() {
        return None;
    }
    let del: Vec<&String> = old.difference(&new).copied().collect();
    let ins: Vec<&String> = new.difference(&old).copied().collect();
    if (del.len() + ins.len()) * EDIT_LIMIT_DIVISOR
        > after.rules.len().max(before.rules.len()) + EDIT_LIMIT_DIVISOR * 8
    {
        return None;
    }
    Some((del, ins))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{FakeBackend, RuleBackend};
    use crate::model::build_model;
    use crate::model::testutil::*;
    use crate::rules::{compute, NodeInfo, KUBE_SERVICES};

    fn node() -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            node_port_addresses: vec![],
            cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        }
    }

    /// The rule set of `many_model`.
    fn many(n: usize, eps: usize) -> RuleSet {
        compute(&many_model(n, eps), &node())
    }

    /// A model with `n` services, each with `eps` endpoints.
    fn many_model(n: usize, eps: usize) -> crate::model::ProxyModel {
        let mut svcs = Vec::new();
        let mut slices = Vec::new();
        for i in 0..n {
            let name = format!("s{i}");
            svcs.push(with_node_ports(
                service(
                    "d",
                    &name,
                    &format!("10.96.{}.{}", i / 250, i % 250 + 1),
                    &[("", 80, "TCP")],
                ),
                &[30000 + i as i32],
            ));
            let ips: Vec<String> = (0..eps)
                .map(|e| format!("10.244.{}.{}", e, i % 250 + 1))
                .collect();
            let list: Vec<(&str, bool, bool, bool, &str)> = ips
                .iter()
                .map(|ip| (ip.as_str(), true, true, false, "n1"))
                .collect();
            slices.push(slice(
                "d",
                &format!("{name}-a"),
                &name,
                &[("", 8080, "TCP")],
                &list,
            ));
        }
        build_model(&svcs, &slices)
    }

    /// Applies `text` to a fake kernel and returns the fake's view of the proxy chains.
    fn owned_view(fake: &FakeBackend) -> BTreeMap<(Table, String), Vec<String>> {
        fake.owned_chains()
    }

    fn expected_view(set: &RuleSet) -> BTreeMap<(Table, String), Vec<String>> {
        let mut m = BTreeMap::new();
        for t in Table::ALL {
            for (name, chain) in set.table(t) {
                m.insert((t, name.clone()), chain.all_rules().cloned().collect());
            }
        }
        m
    }

    /// Order-free chains compare as sets plus tail position; everything else exactly.
    fn assert_equivalent(fake: &FakeBackend, set: &RuleSet) {
        let got = owned_view(fake);
        let want = expected_view(set);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "chain names differ"
        );
        for ((t, name), rules) in &want {
            let have = &got[&(*t, name.clone())];
            let chain = &set.table(*t)[name];
            if chain.order_free {
                let mut a = have[..have.len() - chain.tail.len()].to_vec();
                let mut b = chain.rules.clone();
                a.sort();
                b.sort();
                assert_eq!(a, b, "{name} rules differ");
                assert_eq!(
                    &have[have.len() - chain.tail.len()..],
                    &chain.tail[..],
                    "{name} tail moved"
                );
            } else {
                assert_eq!(have, rules, "{name} differs");
            }
        }
    }

    #[test]
    fn parse_save_finds_chains_and_builtin_jumps() {
        let text = "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:DOCKER - [0:0]\n\
            -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n-A PREROUTING -j DOCKER\n\
            -A KUBE-SERVICES -d 10.0.0.1/32 -j KUBE-SVC-X\nCOMMIT\n";
        let st = parse_save(text);
        assert_eq!(
            st.chains.iter().map(String::as_str).collect::<Vec<_>>(),
            vec!["DOCKER", "KUBE-SERVICES", "OUTPUT", "PREROUTING"]
        );
        let jumps: Vec<(String, String)> = st.builtin_jumps.into_iter().collect();
        assert_eq!(
            jumps,
            vec![
                ("PREROUTING".into(), "DOCKER".into()),
                ("PREROUTING".into(), "KUBE-SERVICES".into())
            ]
        );
    }

    #[test]
    fn full_on_empty_tables_creates_everything_and_hooks_builtins() {
        let set = many(3, 2);
        let fake = FakeBackend::new();
        fake.restore(&full(&set, &BTreeMap::new())).unwrap();
        assert_equivalent(&fake, &set);
        let nat = parse_save(&fake.save(Table::Nat).unwrap());
        for j in builtin_jumps() {
            let st = parse_save(&fake.save(j.table).unwrap());
            assert!(
                st.builtin_jumps
                    .contains(&(j.chain.to_string(), j.target.to_string())),
                "{j:?}"
            );
        }
        assert!(nat.chains.contains(KUBE_SERVICES));
    }

    #[test]
    fn full_twice_does_not_duplicate_jumps_and_removes_stale_chains() {
        let fake = FakeBackend::new();
        fake.restore(&full(&many(3, 2), &BTreeMap::new())).unwrap();
        // Someone else's chain and rule must survive.
        fake.restore("*nat\n:DOCKER - [0:0]\n-A PREROUTING -j DOCKER\nCOMMIT\n")
            .unwrap();
        let smaller = many(1, 1);
        let existing: BTreeMap<Table, TableState> = Table::ALL
            .iter()
            .map(|t| (*t, parse_save(&fake.save(*t).unwrap())))
            .collect();
        fake.restore(&full(&smaller, &existing)).unwrap();
        assert_equivalent(&fake, &smaller);
        let prerouting = fake.chain(Table::Nat, "PREROUTING").unwrap();
        assert_eq!(
            prerouting
                .iter()
                .filter(|r| r.ends_with("-j KUBE-SERVICES"))
                .count(),
            1
        );
        assert!(prerouting.iter().any(|r| r == "-j DOCKER"));
        assert!(fake.chain(Table::Nat, "DOCKER").is_some());
    }

    #[test]
    fn incremental_converges_for_every_kind_of_change() {
        // (name, before, after): every transition must leave the kernel equal to a
        // fresh full restore of `after`.
        let base = many(40, 2);
        let cases: Vec<(&str, RuleSet, RuleSet)> = vec![
            ("no change", base.clone(), base.clone()),
            ("add services", many(38, 2), base.clone()),
            ("remove services", base.clone(), many(37, 2)),
            ("more endpoints", base.clone(), many(40, 3)),
            ("fewer endpoints", many(40, 3), many(40, 1)),
            ("to zero endpoints", base.clone(), many(40, 0)),
            ("from zero endpoints", many(40, 0), base.clone()),
            ("everything goes", base.clone(), many(0, 0)),
            ("from nothing", many(0, 0), many(5, 1)),
        ];
        for (name, before, after) in cases {
            let fake = FakeBackend::new();
            fake.restore(&full(&before, &BTreeMap::new())).unwrap();
            let text = incremental(&before, &after);
            if before == after {
                assert!(text.is_empty(), "{name}: expected no restore, got {text}");
            }
            if !text.is_empty() {
                fake.restore(&text)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            }
            assert_equivalent(&fake, &after);
        }
    }

    #[test]
    fn fragment_diff_converges_like_a_full_compute() {
        // (name, before, after): replacing the changed ports' fragments must leave the
        // kernel equal to the rules of `after`.
        let base = many_model(30, 2);
        let mut one_endpoint_more = base.clone();
        let ep = one_endpoint_more.ports.values().next().unwrap().endpoints[0].clone();
        one_endpoint_more
            .ports
            .values_mut()
            .nth(3)
            .unwrap()
            .endpoints
            .push(crate::model::Endpoint {
                ip: "10.250.0.1".parse().unwrap(),
                ..ep
            });
        let cases: Vec<(&str, crate::model::ProxyModel, crate::model::ProxyModel)> = vec![
            ("no change", base.clone(), base.clone()),
            ("one endpoint more", base.clone(), one_endpoint_more.clone()),
            ("one endpoint less", one_endpoint_more, base.clone()),
            ("services added", many_model(27, 2), base.clone()),
            ("services removed", base.clone(), many_model(25, 2)),
            ("all endpoints change", base.clone(), many_model(30, 3)),
            ("to zero endpoints", base.clone(), many_model(30, 0)),
            ("from zero endpoints", many_model(30, 0), base.clone()),
            ("everything goes", base.clone(), many_model(0, 0)),
        ];
        let n = node();
        for (name, before, after) in cases {
            let fake = FakeBackend::new();
            fake.restore(&full(&compute(&before, &n), &BTreeMap::new()))
                .unwrap();
            let changes: Vec<(Option<Fragment>, Option<Fragment>)> = before
                .changes(&after)
                .into_iter()
                .map(|(b, a)| {
                    (
                        b.map(|p| crate::rules::port_fragment(p, &n)),
                        a.map(|p| crate::rules::port_fragment(p, &n)),
                    )
                })
                .collect();
            let text = fragments(&changes);
            if before == after {
                assert!(text.is_empty(), "{name}: {text}");
            } else {
                fake.restore(&text)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            }
            assert_equivalent(&fake, &compute(&after, &n));
            // The in-memory bookkeeping follows the same path.
            let mut applied = compute(&before, &n);
            for (b, a) in &changes {
                if let Some(b) = b {
                    applied.remove_fragment(b);
                }
                if let Some(a) = a {
                    applied.add_fragment(a);
                }
            }
            let want = compute(&after, &n);
            for t in Table::ALL {
                let names = |s: &RuleSet| s.table(t).keys().cloned().collect::<Vec<_>>();
                assert_eq!(names(&applied), names(&want), "{name}: chain names");
                for (c, chain) in want.table(t) {
                    let mut x = applied.table(t)[c].rules.clone();
                    let mut y = chain.rules.clone();
                    if chain.order_free {
                        x.sort();
                        y.sort();
                    }
                    assert_eq!(x, y, "{name}: {c}");
                }
            }
        }
    }

    /// What a restore text does, per table: chains declared (created or flushed),
    /// chains appended to, chains deleted, and the rules inserted into / deleted from
    /// each chain (`-I` / `-D`), counted.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Effect {
        declared: BTreeSet<String>,
        appended: BTreeSet<String>,
        removed: BTreeSet<String>,
        inserted: BTreeMap<String, usize>,
        deleted: BTreeMap<String, usize>,
    }

    fn effects(text: &str) -> BTreeMap<String, Effect> {
        let mut out: BTreeMap<String, Effect> = BTreeMap::new();
        let mut table = String::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix('*') {
                table = t.to_string();
                continue;
            }
            let e = out.entry(table.clone()).or_default();
            let word = |rest: &str| {
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            };
            if let Some(rest) = line.strip_prefix(':') {
                e.declared.insert(word(rest));
            } else if let Some(rest) = line.strip_prefix("-A ") {
                e.appended.insert(word(rest));
            } else if let Some(rest) = line.strip_prefix("-X ") {
                e.removed.insert(word(rest));
            } else if let Some(rest) = line.strip_prefix("-I ") {
                *e.inserted.entry(word(rest)).or_default() += 1;
            } else if let Some(rest) = line.strip_prefix("-D ") {
                *e.deleted.entry(word(rest)).or_default() += 1;
            }
        }
        out
    }

    #[test]
    fn fragments_touch_only_the_chains_that_changed() {
        use crate::model::{Endpoint, Protocol, ProxyModel, ServicePortInfo, ServicePortName};
        use crate::rules::{endpoint_chain, external_chain, service_chain};

        let spn = |name: &str| ServicePortName {
            namespace: "d".into(),
            name: name.into(),
            port: "http".into(),
            protocol: Protocol::Tcp,
        };
        let ep = |last: u8| Endpoint {
            ip: std::net::Ipv4Addr::new(10, 244, 0, last),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some("n1".into()),
        };
        // `web` has a node port (so a KUBE-EXT chain and a KUBE-NODEPORTS rule), `db`
        // only a cluster IP; `eps` are the last octets of the endpoint addresses.
        let port = |name: &str, ip: u8, node_port: Option<u16>, eps: &[u8]| ServicePortInfo {
            name: spn(name),
            cluster_ip: Some(std::net::Ipv4Addr::new(10, 96, 0, ip)),
            port: 80,
            node_port,
            external_ips: vec![],
            affinity_timeout: None,
            external_local: false,
            endpoints: eps.iter().map(|l| ep(*l)).collect(),
        };
        let model = |ports: Vec<ServicePortInfo>| ProxyModel {
            ports: ports.into_iter().map(|p| (p.name.clone(), p)).collect(),
        };
        let web = |eps: &[u8]| port("web", 10, Some(30080), eps);
        let db = |eps: &[u8]| port("db", 20, None, eps);
        let (svc, ext) = (service_chain(&spn("web")), external_chain(&spn("web")));
        let sep = |l: u8| endpoint_chain(&spn("web"), &ep(l));
        let db_svc = service_chain(&spn("db"));
        let db_sep = |l: u8| endpoint_chain(&spn("db"), &ep(l));
        let set = |names: &[&String]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        let count = |pairs: &[(&str, usize)]| {
            pairs
                .iter()
                .map(|(c, n)| (c.to_string(), *n))
                .collect::<BTreeMap<_, _>>()
        };

        // (case, before, after, expected effect on the nat table, on the filter table)
        let cases: Vec<(&str, ProxyModel, ProxyModel, Effect, Effect)> = vec![
            (
                // The service chain is rewritten, the new endpoint's chain created;
                // KUBE-SERVICES, KUBE-NODEPORTS and the EXT chain are not mentioned.
                "endpoint added",
                model(vec![web(&[2]), db(&[5])]),
                model(vec![web(&[2, 3]), db(&[5])]),
                Effect {
                    declared: set(&[&svc, &sep(3)]),
                    appended: set(&[&svc, &sep(3)]),
                    ..Effect::default()
                },
                Effect::default(),
            ),
            (
                "endpoint removed",
                model(vec![web(&[2, 3]), db(&[5])]),
                model(vec![web(&[2]), db(&[5])]),
                Effect {
                    declared: set(&[&svc, &sep(3)]),
                    appended: set(&[&svc]),
                    removed: set(&[&sep(3)]),
                    ..Effect::default()
                },
                Effect::default(),
            ),
            (
                "endpoint replaced",
                model(vec![web(&[2]), db(&[5])]),
                model(vec![web(&[2]), db(&[6])]),
                Effect {
                    declared: set(&[&db_svc, &db_sep(5), &db_sep(6)]),
                    appended: set(&[&db_svc, &db_sep(6)]),
                    removed: set(&[&db_sep(5)]),
                    ..Effect::default()
                },
                Effect::default(),
            ),
            (
                // One line each in KUBE-SERVICES and KUBE-NODEPORTS, inserted.
                "service added",
                model(vec![db(&[5])]),
                model(vec![web(&[2]), db(&[5])]),
                Effect {
                    declared: set(&[&svc, &ext, &sep(2)]),
                    appended: set(&[&svc, &ext, &sep(2)]),
                    inserted: count(&[("KUBE-SERVICES", 1), ("KUBE-NODEPORTS", 1)]),
                    ..Effect::default()
                },
                Effect::default(),
            ),
            (
                "service removed",
                model(vec![web(&[2, 3]), db(&[5])]),
                model(vec![db(&[5])]),
                Effect {
                    declared: set(&[&svc, &ext, &sep(2), &sep(3)]),
                    removed: set(&[&svc, &ext, &sep(2), &sep(3)]),
                    deleted: count(&[("KUBE-SERVICES", 1), ("KUBE-NODEPORTS", 1)]),
                    ..Effect::default()
                },
                Effect::default(),
            ),
            (
                // Traffic is now rejected in the filter table instead of DNATed.
                "scaled to zero",
                model(vec![web(&[2]), db(&[5])]),
                model(vec![web(&[]), db(&[5])]),
                Effect {
                    declared: set(&[&svc, &ext, &sep(2)]),
                    removed: set(&[&svc, &ext, &sep(2)]),
                    deleted: count(&[("KUBE-SERVICES", 1), ("KUBE-NODEPORTS", 1)]),
                    ..Effect::default()
                },
                Effect {
                    inserted: count(&[("KUBE-SERVICES", 1), ("KUBE-EXTERNAL-SERVICES", 1)]),
                    ..Effect::default()
                },
            ),
            (
                "back from zero",
                model(vec![web(&[]), db(&[5])]),
                model(vec![web(&[2]), db(&[5])]),
                Effect {
                    declared: set(&[&svc, &ext, &sep(2)]),
                    appended: set(&[&svc, &ext, &sep(2)]),
                    inserted: count(&[("KUBE-SERVICES", 1), ("KUBE-NODEPORTS", 1)]),
                    ..Effect::default()
                },
                Effect {
                    deleted: count(&[("KUBE-SERVICES", 1), ("KUBE-EXTERNAL-SERVICES", 1)]),
                    ..Effect::default()
                },
            ),
            (
                "nothing changed",
                model(vec![web(&[2]), db(&[5])]),
                model(vec![web(&[2]), db(&[5])]),
                Effect::default(),
                Effect::default(),
            ),
        ];
        let n = node();
        for (name, before, after, nat, filter) in cases {
            let changes: Vec<(Option<Fragment>, Option<Fragment>)> = before
                .changes(&after)
                .into_iter()
                .map(|(b, a)| {
                    (
                        b.map(|p| crate::rules::port_fragment(p, &n)),
                        a.map(|p| crate::rules::port_fragment(p, &n)),
                    )
                })
                .collect();
            let text = fragments(&changes);
            let mut got = effects(&text);
            assert_eq!(
                got.remove("nat").unwrap_or_default(),
                nat,
                "{name}: nat\n{text}"
            );
            assert_eq!(
                got.remove("filter").unwrap_or_default(),
                filter,
                "{name}: filter\n{text}"
            );
            // The text also brings a kernel holding `before` to exactly `after`.
            let fake = FakeBackend::new();
            fake.restore(&full(&compute(&before, &n), &BTreeMap::new()))
                .unwrap();
            if !text.is_empty() {
                fake.restore(&text)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            }
            assert_equivalent(&fake, &compute(&after, &n));
        }
    }

    #[test]
    fn one_new_service_edits_instead_of_rewriting_big_chains() {
        let before = many(200, 1);
        let after = many(201, 1);
        let text = incremental(&before, &after);
        // KUBE-SERVICES (nat) is not flushed, only one rule inserted at the head.
        assert!(!text.contains(":KUBE-SERVICES "), "{text}");
        assert_eq!(text.matches("-I KUBE-SERVICES ").count(), 1, "{text}");
        assert_eq!(text.matches("-I KUBE-NODEPORTS ").count(), 1, "{text}");
        // New chains: one SVC, one SEP, one EXT.
        assert_eq!(
            text.lines().filter(|l| l.starts_with(":KUBE-")).count(),
            3,
            "{text}"
        );
        // Tiny compared with the full text.
        assert!(
            text.len() * 100 < full(&after, &BTreeMap::new()).len(),
            "{}",
            text.len()
        );
    }

    #[test]
    fn large_changes_to_order_free_chains_rewrite_them() {
        let text = incremental(&many(10, 1), &many(100, 1));
        assert!(text.contains(":KUBE-SERVICES - [0:0]"), "{text}");
        assert!(!text.contains("-I KUBE-SERVICES"));
    }
}
