//! The thin I/O shell around the kernel's tables: [`RuleBackend`] with the real
//! implementation running `iptables-restore` / `iptables-save` / `iptables -S`, and
//! [`FakeBackend`], an in-memory table that interprets restore text, for unit tests.
//!
//! The real backend runs in the current network namespace; a command prefix (for
//! example `nsenter --net=/var/run/netns/NODE`) lets tests and benchmarks aim it at a
//! namespace they created.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::rules::{is_owned_chain, Table};

/// A failed call to the iptables tools.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot run {command}: {source} (is the iptables package installed?)")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("restore rejected: {0}")]
    Rejected(String),
}

/// Reads and writes the proxy's chains.
pub trait RuleBackend: Send + 'static {
    /// Applies restore text with `--noflush` (chains not mentioned are left alone).
    fn restore(&self, text: &str) -> Result<(), BackendError>;
    /// `iptables-save` of one table.
    fn save(&self, table: Table) -> Result<String, BackendError>;
    /// The rules of one chain (as `-A CHAIN ...` lines), or `None` when it does not exist.
    fn chain(&self, table: Table, chain: &str) -> Result<Option<Vec<String>>, BackendError>;
}

/// The real tools, optionally behind a command prefix.
#[derive(Debug, Clone, Default)]
pub struct IptablesBackend {
    prefix: Vec<String>,
}

impl IptablesBackend {
    /// Runs the tools directly, in this process's network namespace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs every tool as `prefix... tool args...`, e.g. `["nsenter", "--net=/var/run/netns/n1"]`.
    pub fn with_prefix(prefix: Vec<String>) -> Self {
        IptablesBackend { prefix }
    }

    fn command(&self, tool: &str, args: &[&str]) -> (Command, String) {
        let mut parts: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        parts.push(tool);
        parts.extend_from_slice(args);
        let mut cmd = Command::new(parts[0]);
        cmd.args(&parts[1..]);
        (cmd, parts.join(" "))
    }

    fn run(
        &self,
        tool: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<std::process::Output, BackendError> {
        let (mut cmd, label) = self.command(tool, args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let spawn_err = |source| BackendError::Spawn {
            command: label.clone(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin was piped");
            // A write error means the tool exited early; its stderr says why.
            let _ = pipe.write_all(text.as_bytes());
        }
        child.wait_with_output().map_err(spawn_err)
    }
}

fn failed(command: String, out: &std::process::Output) -> BackendError {
    BackendError::Failed {
        command,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

impl RuleBackend for IptablesBackend {
    fn restore(&self, text: &str) -> Result<(), BackendError> {
        let out = self.run("iptables-restore", &["-w", "--noflush"], Some(text))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failed("iptables-restore --noflush".into(), &out))
        }
    }

    fn save(&self, table: Table) -> Result<String, BackendError> {
        let out = self.run("iptables-save", &["-t", table.name()], None)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(failed(format!("iptables-save -t {}", table.name()), &out))
        }
    }

    fn chain(&self, table: Table, chain: &str) -> Result<Option<Vec<String>>, BackendError> {
        let out = self.run("iptables", &["-w", "-t", table.name(), "-S", chain], None)?;
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            return Ok(Some(
                text.lines()
                    .filter(|l| l.starts_with("-A "))
                    .map(str::to_string)
                    .collect(),
            ));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        // iptables-nft says "chain `X' in table `nat' is incompatible" for foreign
        // chains and "No chain/target/match by that name" for missing ones.
        if stderr.contains("No chain") || stderr.contains("does not exist") {
            return Ok(None);
        }
        Err(failed(
            format!("iptables -t {} -S {chain}", table.name()),
            &out,
        ))
    }
}

const BUILTIN: [(Table, &[&str]); 2] = [
    (
        Table::Nat,
        &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
    ),
    (Table::Filter, &["INPUT", "FORWARD", "OUTPUT"]),
];

const TARGETS: [&str; 7] = [
    "ACCEPT",
    "DROP",
    "RETURN",
    "REJECT",
    "MARK",
    "DNAT",
    "MASQUERADE",
];

type Tables = BTreeMap<Table, BTreeMap<String, Vec<String>>>;

#[derive(Debug)]
struct FakeState {
    tables: Tables,
    restores: Vec<String>,
    fail_next: bool,
    fail_saves: bool,
}

/// An in-memory kernel table for unit tests: interprets the restore-text subset the
/// proxy writes (`:CHAIN`, `-A`, `-I`, `-D`, `-X`, `-F`), applies a restore
/// all-or-nothing, rejects jumps to missing chains and deletes of non-empty or missing
/// ones, and records every restore. Clones share the same state.
#[derive(Debug, Clone)]
pub struct FakeBackend {
    state: Arc<Mutex<FakeState>>,
}

impl Default for FakeBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeBackend {
    pub fn new() -> Self {
        let mut tables = Tables::new();
        for (t, chains) in BUILTIN {
            tables.insert(
                t,
                chains.iter().map(|c| (c.to_string(), Vec::new())).collect(),
            );
        }
        FakeBackend {
            state: Arc::new(Mutex::new(FakeState {
                tables,
                restores: Vec::new(),
                fail_next: false,
                fail_saves: false,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every restore text applied so far (including rejected ones).
    pub fn restores(&self) -> Vec<String> {
        self.lock().restores.clone()
    }

    /// Makes the next restore fail, as a busy or broken iptables would.
    pub fn fail_next_restore(&self) {
        self.lock().fail_next = true;
    }

    /// Makes `save` fail (or work again), as iptables-save does on huge tables.
    pub fn fail_saves(&self, fail: bool) {
        self.lock().fail_saves = fail;
    }

    /// `iptables -t <table> -F`: empties every chain of the table, keeps the chains.
    pub fn flush_table(&self, table: Table) {
        if let Some(t) = self.lock().tables.get_mut(&table) {
            t.values_mut().for_each(Vec::clear);
        }
    }

    /// `iptables -t <table> -F; -X`: empties the built-in chains, deletes the rest.
    pub fn wipe_table(&self, table: Table) {
        if let Some(t) = self.lock().tables.get_mut(&table) {
            let builtin = BUILTIN
                .iter()
                .find(|(bt, _)| *bt == table)
                .map(|(_, c)| *c)
                .unwrap_or(&[]);
            t.retain(|name, _| builtin.contains(&name.as_str()));
            t.values_mut().for_each(Vec::clear);
        }
    }

    /// The rule specs (without `-A CHAIN`) of one chain.
    pub fn chain(&self, table: Table, chain: &str) -> Option<Vec<String>> {
        self.lock().tables.get(&table)?.get(chain).cloned()
    }

    /// Every proxy-owned chain with its rule specs.
    pub fn owned_chains(&self) -> BTreeMap<(Table, String), Vec<String>> {
        let st = self.lock();
        let mut out = BTreeMap::new();
        for (t, chains) in &st.tables {
            for (name, rules) in chains.iter().filter(|(n, _)| is_owned_chain(n)) {
                out.insert((*t, name.clone()), rules.clone());
            }
        }
        out
    }
}

fn apply(tables: &mut Tables, text: &str) -> Result<(), String> {
    let mut current: Option<Table> = None;
    for (no, line) in text.lines().enumerate() {
        let line = line.trim();
        let err = |msg: &str| format!("line {}: {msg}: {line}", no + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            current = Some(match name {
                "nat" => Table::Nat,
                "filter" => Table::Filter,
                _ => return Err(err("unknown table")),
            });
            continue;
        }
        let table = current.ok_or_else(|| err("no table"))?;
        let chains = tables.entry(table).or_default();
        if line == "COMMIT" {
            check_references(chains).map_err(|e| err(&e))?;
            current = None;
            continue;
        }
        if let Some(rest) = line.strip_prefix(':') {
            let name = rest
                .split_whitespace()
                .next()
                .ok_or_else(|| err("no chain name"))?;
            chains.entry(name.to_string()).or_default().clear();
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let op = parts.next().unwrap_or_default();
        let chain = parts.next().ok_or_else(|| err("no chain"))?.to_string();
        let mut spec = parts.next().unwrap_or_default().to_string();
        let rules = chains.get_mut(&chain).ok_or_else(|| err("no such chain"))?;
        match op {
            "-A" => rules.push(spec),
            "-I" => {
                let mut at = 0;
                if let Some((first, rest)) = spec.split_once(' ') {
                    if let Ok(n) = first.parse::<usize>() {
                        at = n.saturating_sub(1).min(rules.len());
                        spec = rest.to_string();
                    }
                }
                rules.insert(at, spec);
            }
            "-D" => {
                let pos = rules
                    .iter()
                    .position(|r| *r == spec)
                    .ok_or_else(|| err("rule does not exist"))?;
                rules.remove(pos);
            }
            "-F" => rules.clear(),
            "-X" => {
                if !rules.is_empty() {
                    return Err(err("chain not empty"));
                }
                chains.remove(&chain);
            }
            _ => return Err(err("unknown command")),
        }
    }
    if current.is_some() {
        return Err("missing COMMIT".into());
    }
    Ok(())
}

fn check_references(chains: &BTreeMap<String, Vec<String>>) -> Result<(), String> {
    for (name, rules) in chains {
        for rule in rules {
            if let Some(pos) = rule.rfind("-j ") {
                let target = rule[pos + 3..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default();
                if !TARGETS.contains(&target) && !chains.contains_key(target) {
                    return Err(format!("{name} jumps to missing chain {target}"));
                }
            }
        }
    }
    Ok(())
}

impl RuleBackend for FakeBackend {
    fn restore(&self, text: &str) -> Result<(), BackendError> {
        let mut st = self.lock();
        st.restores.push(text.to_string());
        if std::mem::take(&mut st.fail_next) {
            return Err(BackendError::Rejected("injected failure".into()));
        }
        let mut scratch = st.tables.clone();
        apply(&mut scratch, text).map_err(BackendError::Rejected)?;
        st.tables = scratch;
        Ok(())
    }

    fn save(&self, table: Table) -> Result<String, BackendError> {
        let st = self.lock();
        if st.fail_saves {
            return Err(BackendError::Rejected(
                "injected iptables-save failure".into(),
            ));
        }
        let mut out = format!("*{}\n", table.name());
        let builtin = BUILTIN
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, c)| *c)
            .unwrap_or(&[]);
        let chains = st.tables.get(&table).cloned().unwrap_or_default();
        for name in chains.keys() {
            let policy = if builtin.contains(&name.as_str()) {
                "ACCEPT"
            } else {
                "-"
            };
            out.push_str(&format!(":{name} {policy} [0:0]\n"));
        }
        for (name, rules) in &chains {
            for r in rules {
                out.push_str(&format!("-A {name} {r}\n"));
            }
        }
        out.push_str("COMMIT\n");
        Ok(out)
    }

    fn chain(&self, table: Table, chain: &str) -> Result<Option<Vec<String>>, BackendError> {
        Ok(FakeBackend::chain(self, table, chain).map(|rules| {
            rules
                .into_iter()
                .map(|r| format!("-A {chain} {r}"))
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_applies_all_or_nothing() {
        let fake = FakeBackend::new();
        fake.restore(
            "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\n-A PREROUTING -j KUBE-A\nCOMMIT\n",
        )
        .unwrap();
        // The second restore fails half-way: nothing of it may stick.
        let bad = "*nat\n:KUBE-B - [0:0]\n-A KUBE-B -j RETURN\n-D KUBE-A -j ACCEPT\nCOMMIT\n";
        assert!(fake.restore(bad).is_err());
        assert_eq!(FakeBackend::chain(&fake, Table::Nat, "KUBE-B"), None);
        assert_eq!(
            FakeBackend::chain(&fake, Table::Nat, "KUBE-A"),
            Some(vec!["-j RETURN".to_string()])
        );
    }

    #[test]
    fn fake_rejects_what_iptables_rejects() {
        let cases = [
            (
                "jump to a missing chain",
                "*nat\n-A PREROUTING -j KUBE-NOPE\nCOMMIT\n",
            ),
            (
                "append to a missing chain",
                "*nat\n-A KUBE-NOPE -j RETURN\nCOMMIT\n",
            ),
            (
                "delete a non-empty chain",
                "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\n-X KUBE-A\nCOMMIT\n",
            ),
            (
                "delete a referenced chain",
                "*nat\n:KUBE-A - [0:0]\n-A PREROUTING -j KUBE-A\n-X KUBE-A\nCOMMIT\n",
            ),
            ("missing commit", "*nat\n:KUBE-A - [0:0]\n"),
        ];
        for (name, text) in cases {
            assert!(
                FakeBackend::new().restore(text).is_err(),
                "{name} was accepted"
            );
        }
    }

    #[test]
    fn fake_insert_goes_first_and_declare_flushes() {
        let fake = FakeBackend::new();
        fake.restore("*filter\n:KUBE-A - [0:0]\n-A KUBE-A -j ACCEPT\n-I KUBE-A -j DROP\nCOMMIT\n")
            .unwrap();
        assert_eq!(
            FakeBackend::chain(&fake, Table::Filter, "KUBE-A").unwrap(),
            vec!["-j DROP", "-j ACCEPT"]
        );
        fake.restore("*filter\n:KUBE-A - [0:0]\nCOMMIT\n").unwrap();
        assert_eq!(
            FakeBackend::chain(&fake, Table::Filter, "KUBE-A").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn real_backend_reports_a_missing_tool_clearly() {
        let b = IptablesBackend::with_prefix(vec!["/nonexistent/skiff-test-prefix".into()]);
        let err = b.save(Table::Nat).unwrap_err().to_string();
        assert!(
            err.contains("cannot run /nonexistent/skiff-test-prefix iptables-save -t nat"),
            "{err}"
        );
    }
}
