//! Label selectors: the `labelSelector=` query grammar and `metav1.LabelSelector`
//! objects, parsed into one [`LabelSelector`] that matches label maps.
//!
//! The query grammar (`k8s.io/apimachinery/pkg/labels`) is a comma-separated AND of
//! requirements: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a` (exists), `!a`
//! (does not exist), and the numeric `a>1`, `a<1`; whitespace around tokens is ignored.
//! Errors are worded like upstream's (`unable to parse requirement: ...`, `found ',',
//! expected: ...`) and the API server returns them as a 400.
//!
//! Empty versus null, which upstream treats differently and so do we:
//! - [`parse`] of `""` and [`LabelSelector::from_json`] of `{}` give the *everything*
//!   selector ([`LabelSelector::is_empty`] is true, it matches every label set);
//! - [`LabelSelector::from_json`] of `null` (an absent selector, e.g. a Service without
//!   one, as seen through `LabelSelectorAsSelector`) gives [`LabelSelector::nothing`],
//!   which matches no label set.
//!
//! ```
//! use std::collections::BTreeMap;
//! use skiff_api::selector::{self, LabelSelector};
//!
//! let sel = selector::parse("tier in (front, back), app=web, !canary").unwrap();
//! assert_eq!(sel.to_string(), "app=web,!canary,tier in (back,front)");
//! let labels = BTreeMap::from([("app".to_string(), "web".to_string()), ("tier".to_string(), "front".to_string())]);
//! assert!(sel.matches(&labels));
//!
//! let spec = serde_json::json!({"matchLabels": {"app": "web"}});
//! assert!(LabelSelector::from_json(&spec).unwrap().matches(&labels));
//! assert!(!LabelSelector::from_json(&serde_json::Value::Null).unwrap().matches(&labels));
//! assert_eq!(selector::parse("app in web").unwrap_err(), "unable to parse requirement: found 'web' expected: '('");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use crate::validation::names;

/// How one requirement compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One clause of a selector: a key, an operator and its (sorted, distinct) values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, checking the key, the values and their count for the
    /// operator, as upstream's `NewRequirement` does.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Requirement, String> {
        let mut errs = Vec::new();
        // Upstream reports every problem of a key (or value) as one error, joined by "; ".
        let key_errs = names::qualified_name(key);
        if !key_errs.is_empty() {
            errs.push(format!(
                "<nil>: Invalid value: \"{key}\": {}",
                key_errs.join("; ")
            ));
        }
        let set: BTreeSet<String> = values.into_iter().collect();
        let values: Vec<String> = set.into_iter().collect();
        let shown = format!(
            "[]string{{{}}}",
            values
                .iter()
                .map(|v| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(format!(
                "values: Invalid value: {shown}: for 'in', 'notin' operators, values set can't be empty"
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => errs.push(
                format!("values: Invalid value: {shown}: exact-match compatibility requires one single value"),
            ),
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(format!(
                "values: Invalid value: {shown}: values set must be empty for exists and does not exist"
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {shown}: for 'Gt', 'Lt' operators, exactly one value is required"
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: \"{v}\": for 'Gt', 'Lt' operators, the value must be an integer"
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = names::label_value(v);
            if !value_errs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: \"{v}\": {}",
                    value_errs.join("; ")
                ));
            }
        }
        match errs.len() {
            0 => Ok(Requirement {
                key: key.to_string(),
                operator,
                values,
            }),
            1 => Err(errs.remove(0)),
            _ => Err(format!("[{}]", errs.join(", "))),
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let listed = |v: &String| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => value.is_some_and(listed),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(listed),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={}", self.key, first),
            Operator::DoubleEquals => write!(f, "{}=={}", self.key, first),
            Operator::NotEquals => write!(f, "{}!={}", self.key, first),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, first),
            Operator::LessThan => write!(f, "{}<{}", self.key, first),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
        }
    }
}

/// A parsed label selector: an AND of requirements, sorted by key as upstream keeps
/// them. The default (no requirements) matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// The selector of an absent (`null`) `metav1.LabelSelector`: matches nothing.
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every label set.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// The selector that matches no label set (what a null selector means).
    pub fn nothing() -> LabelSelector {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// A selector from requirements, sorted by key (stable, so the string form is
    /// deterministic).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> LabelSelector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// The equality selector of a label map (`matchLabels` alone, a Service's
    /// `spec.selector`); keys and values are not checked here.
    pub fn from_map(labels: &BTreeMap<String, String>) -> LabelSelector {
        LabelSelector::from_requirements(
            labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
        )
    }

    /// A `metav1.LabelSelector` object (`matchLabels` plus `matchExpressions` with
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`). `null` gives [`LabelSelector::nothing`],
    /// `{}` gives [`LabelSelector::everything`].
    pub fn from_json(v: &Value) -> Result<LabelSelector, String> {
        let obj = match v {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(o) => o,
            other => return Err(format!("a label selector must be an object, not {other}")),
        };
        let mut reqs = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, val) in m {
                    let val = val
                        .as_str()
                        .ok_or_else(|| format!("matchLabels value for {k:?} must be a string"))?;
                    reqs.push(Requirement::new(
                        k,
                        Operator::Equals,
                        vec![val.to_string()],
                    )?);
                }
            }
            Some(_) => return Err("matchLabels must be a map of strings".into()),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for e in exprs {
                    let key = e.get("key").and_then(Value::as_str).unwrap_or("");
                    let op_name = e.get("operator").and_then(Value::as_str).unwrap_or("");
                    let op = match op_name {
                        "In" => Operator::In,
                        "NotIn" => Operator::NotIn,
                        "Exists" => Operator::Exists,
                        "DoesNotExist" => Operator::DoesNotExist,
                        other => {
                            return Err(format!(
                                "\"{other}\" is not a valid label selector operator"
                            ))
                        }
                    };
                    let values = match e.get("values") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(a)) => a
                            .iter()
                            .map(|x| {
                                x.as_str()
                                    .map(str::to_string)
                                    .ok_or("values must be strings")
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                        Some(_) => return Err("values must be a list of strings".into()),
                    };
                    reqs.push(Requirement::new(key, op, values)?);
                }
            }
            Some(_) => return Err("matchExpressions must be a list".into()),
        }
        Ok(LabelSelector::from_requirements(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether this selector selects everything (no requirements). The `nothing`
    /// selector is not empty.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical query form, e.g. `app=web,tier in (a,b),!canary`. The nothing
    /// selector, which has no query form, prints as the empty string too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        write!(f, "{}", parts.join(","))
    }
}

/// Parses the `labelSelector` query parameter.
pub fn parse(s: &str) -> Result<LabelSelector, String> {
    let tokens = lex(s);
    Parser { tokens, pos: 0 }
        .parse()
        .map(LabelSelector::from_requirements)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
    /// A run of symbols that is no operator; the literal is upstream's message.
    Error,
}

fn symbol_token(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// Splits a selector into tokens: identifiers run until whitespace or a symbol, and a
/// symbol run takes the longest prefix that is an operator (so `!=` is one token and
/// `=(` is two).
fn lex(s: &str) -> Vec<(Tok, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if is_special(c) {
            let mut best: Option<(Tok, usize)> = None;
            let mut j = i;
            while j < chars.len() && is_special(chars[j]) {
                let cand: String = chars[i..=j].iter().collect();
                match symbol_token(&cand) {
                    Some(t) => best = Some((t, j + 1)),
                    None if best.is_some() => break,
                    None => {}
                }
                j += 1;
            }
            match best {
                Some((t, end)) => {
                    out.push((t, chars[i..end].iter().collect()));
                    i = end;
                }
                None => {
                    let run: String = chars[i..j].iter().collect();
                    out.push((Tok::Error, format!("error expected: keyword found '{run}'")));
                    i = j;
                }
            }
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let tok = match word.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Identifier,
            };
            out.push((tok, word));
        }
    }
    out.push((Tok::End, String::new()));
    out
}

/// Whether `in`/`notin` are keywords (after a key) or plain words (keys and values).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser {
    tokens: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn look(&self, ctx: Ctx) -> (Tok, String) {
        let (t, lit) = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        let t = match (ctx, t) {
            (Ctx::Values, Tok::In | Tok::NotIn) => Tok::Identifier,
            (_, t) => t,
        };
        (t, lit)
    }

    fn next(&mut self, ctx: Ctx) -> (Tok, String) {
        let out = self.look(ctx);
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        out
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.look(Ctx::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.next(Ctx::Values);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.look(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.key_and_inferred_operator()?;
        if let Some(op) = op {
            return Requirement::new(&key, op, Vec::new());
        }
        let op = self.operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.values()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    /// Reads `key` or `!key`; returns the operator when the requirement ends here.
    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let (mut tok, mut lit) = self.next(Ctx::Values);
        let negated = tok == Tok::DoesNotExist;
        if negated {
            (tok, lit) = self.next(Ctx::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let key_errs = names::qualified_name(&lit);
        if !key_errs.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: \"{lit}\": {}",
                key_errs.join("; ")
            ));
        }
        let (t, _) = self.look(Ctx::Values);
        let op = if negated {
            Some(Operator::DoesNotExist)
        } else if t == Tok::End || t == Tok::Comma {
            Some(Operator::Exists)
        } else {
            None
        };
        Ok((lit, op))
    }

    fn operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.next(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::NotEquals => Operator::NotEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        })
    }

    /// `( a, b )`; `()` is the single empty value, and empty items between commas are
    /// empty values, as upstream reads them.
    fn values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.next(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.look(Ctx::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let list = self.identifiers()?;
                let (t, l) = self.next(Ctx::Values);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{l}', expected: ')'"));
                }
                Ok(list)
            }
            Tok::ClosedPar => {
                self.next(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.next(Ctx::Values);
            match tok {
                Tok::Identifier => {
                    out.push(lit);
                    let (t2, l2) = self.look(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(out),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if out.is_empty() {
                        out.push(String::new());
                    }
                    let (t2, _) = self.look(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        out.push(String::new());
                        return Ok(out);
                    }
                    if t2 == Tok::Comma {
                        self.next(Ctx::Values);
                        out.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    /// The value after `=`, `!=`, `>`...; nothing (end or comma) is the empty value.
    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.look(Ctx::Values);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.next(Ctx::Values);
        if tok == Tok::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_prints_canonically() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("a=b", "a=b"),
            ("a==b", "a==b"),
            ("a!=b", "a!=b"),
            (" a = b ", "a=b"),
            ("a in (y, x)", "a in (x,y)"),
            ("a notin (x)", "a notin (x)"),
            ("a", "a"),
            ("!a", "!a"),
            ("  !  a  ", "!a"),
            ("z=1,a=2", "a=2,z=1"),
            ("a=", "a="),
            ("a in ()", "a in ()"),
            ("a in (,x)", "a in (,x)"),
            ("x>1", "x>1"),
            ("x<10", "x<10"),
            ("in=notin", "in=notin"),
            (
                "example.com/app=web,tier in (a,b),!canary",
                "!canary,example.com/app=web,tier in (a,b)",
            ),
            ("a in(x),b notin(y)", "a in (x),b notin (y)"),
            ("a in (x,x)", "a in (x)"),
        ];
        for (input, want) in cases {
            let sel = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(sel.to_string(), *want, "{input:?}");
            // The printed form parses back to the same selector.
            assert_eq!(
                parse(&sel.to_string()).unwrap(),
                sel,
                "{input:?} round trip"
            );
        }
    }

    #[test]
    fn rejects_bad_syntax_with_upstream_wording() {
        let cases: &[(&str, &str)] = &[
            ("a=b,", "found '', expected: identifier after ','"),
            (",a", "found ',', expected: !, identifier, or 'end of string'"),
            ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
            ("a in x", "unable to parse requirement: found 'x' expected: '('"),
            ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
            ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
            ("a in", "unable to parse requirement: found '' expected: '('"),
            ("a foo b", "unable to parse requirement: found 'foo', expected: in, notin, =, ==, !=, gt, lt"),
            ("a=(b)", "unable to parse requirement: found '(', expected: identifier"),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            ("a=b=c", "found '=', expected: ',' or 'end of string'"),
            ("x>a", "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).unwrap_err(), *want, "{input:?}");
        }
    }

    #[test]
    fn rejects_bad_keys_and_values() {
        let err = parse("a=b c").unwrap_err();
        assert_eq!(err, "found 'c', expected: ',' or 'end of string'");
        let err = parse("-a=b").unwrap_err();
        assert!(err.starts_with("unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of"), "{err}");
        let err = parse("a/b/c=x").unwrap_err();
        assert!(err.contains("a qualified name must consist of"), "{err}");
        let err = parse("a=-b").unwrap_err();
        assert!(err.starts_with("unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be"), "{err}");
        // Several problems with one key are one error, as upstream joins them.
        let err = parse("Example.com/-a=b").unwrap_err();
        assert!(err.starts_with("unable to parse requirement: <nil>: Invalid value: \"Example.com/-a\": prefix part a lowercase RFC 1123 subdomain"), "{err}");
        assert!(err.contains("; name part must consist of"), "{err}");
        let err = parse("app:monolith").unwrap_err();
        assert!(err.starts_with("unable to parse requirement: <nil>: Invalid value: \"app:monolith\": name part must consist of"), "{err}");
        let long = "v".repeat(64);
        assert!(parse(&format!("a={long}"))
            .unwrap_err()
            .contains("must be no more than 63 characters"));
    }

    #[test]
    fn matching() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("missing in (x)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("app>1", false),
            ("missing=", false),
        ];
        for (sel, want) in cases {
            assert_eq!(parse(sel).unwrap().matches(&l), *want, "{sel:?}");
        }
        assert!(parse("app=").unwrap().matches(&labels(&[("app", "")])));
    }

    #[test]
    fn from_json_objects() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases: Vec<(Value, &str, bool)> = vec![
            (json!({}), "", true),
            (json!({"matchLabels": {"app": "web"}}), "app=web", true),
            (json!({"matchLabels": {"app": "db"}}), "app=db", false),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}),
                "tier in (back,front)",
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}),
                "tier notin (front)",
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
                "app",
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
                "!app",
                false,
            ),
            (
                json!({"matchLabels": {"tier": "front"}, "matchExpressions": [{"key": "app", "operator": "Exists"}]}),
                "app,tier=front",
                true,
            ),
        ];
        for (v, printed, want) in cases {
            let sel = LabelSelector::from_json(&v).unwrap();
            assert_eq!(sel.to_string(), printed, "{v}");
            assert_eq!(sel.matches(&l), want, "{v}");
        }
        assert!(LabelSelector::from_json(&json!({})).unwrap().is_empty());
    }

    #[test]
    fn null_matches_nothing_and_empty_everything() {
        let l = labels(&[("app", "web")]);
        let null = LabelSelector::from_json(&Value::Null).unwrap();
        assert!(!null.matches(&l) && !null.matches(&BTreeMap::new()));
        assert!(!null.is_empty());
        let empty = LabelSelector::from_json(&json!({})).unwrap();
        assert!(empty.matches(&l) && empty.matches(&BTreeMap::new()));
        assert!(parse("").unwrap().is_empty());
        assert!(!parse("a").unwrap().is_empty());
    }

    #[test]
    fn from_json_errors() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}), "\"Equals\" is not a valid label selector operator"),
            (json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}), "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"),
            (json!({"matchExpressions": [{"key": "a", "operator": "In"}]}), "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"),
            (json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}), "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"),
            (json!({"matchLabels": {"a": "b c"}}), "values[0][a]: Invalid value: \"b c\": a valid label must be"),
            (json!({"matchLabels": {"-a": "b"}}), "<nil>: Invalid value: \"-a\": name part must consist of"),
            (json!({"matchLabels": {"a": 1}}), "matchLabels value for \"a\" must be a string"),
            (json!("app=web"), "a label selector must be an object"),
        ];
        for (v, want) in cases {
            let err = LabelSelector::from_json(&v).unwrap_err();
            assert!(err.starts_with(want), "{v}: {err}");
        }
    }

    #[test]
    fn from_map_is_an_equality_selector() {
        let m = labels(&[("b", "2"), ("a", "1")]);
        let sel = LabelSelector::from_map(&m);
        assert_eq!(sel.to_string(), "a=1,b=2");
        assert!(sel.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!sel.matches(&labels(&[("a", "1")])));
        assert!(LabelSelector::from_map(&BTreeMap::new()).is_empty());
    }

    /// Every string of up to four symbols from an alphabet of operators, escapes and
    /// multi-byte characters parses or errors, never panics.
    #[test]
    fn short_inputs_never_panic() {
        let alphabet = ['a', '=', '!', '(', ')', ',', '<', '>', ' ', '\\', 'é', 'n'];
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let next: Vec<String> = inputs
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            for s in &next {
                // Whatever parses prints to a canonical form that parses back the same.
                if let Ok(sel) = parse(s) {
                    assert_eq!(parse(&sel.to_string()).as_ref(), Ok(&sel), "{s:?} -> {sel}");
                }
            }
            inputs = next;
        }
        assert_eq!(inputs.len(), 12 * 12 * 12 * 12);
    }
}
