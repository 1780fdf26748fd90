//! One DNS question -> one DNS response, from the record table (pure).
//!
//! Names in the cluster zone and service PTR names are answered here with the
//! authoritative bit; an unknown zone name is NXDOMAIN and an existing name without
//! the asked type is NOERROR/no data, both with the zone's SOA in the authority section
//! so resolvers cache the denial for its minimum TTL (RFC 2308). Everything else is
//! [`Outcome::Forward`]ed to the node's upstream resolvers by the server.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::records::{normalize, Lookup, Rdata, RecordTable};

/// TTL of every cluster record and of negative answers: short, as CoreDNS's
/// `kubernetes` plugin default, so pods see service changes within seconds.
pub const TTL: u32 = 5;

/// The EDNS payload size we advertise (the DNS flag day 2020 recommendation).
const EDNS_PAYLOAD: u16 = 1232;

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Send this response.
    Reply(Message),
    /// The name is not ours: ask the upstream resolvers.
    Forward,
}

/// Answers `request` from `table`.
pub fn answer(table: &RecordTable, request: &Message) -> Outcome {
    if request.metadata.message_type != MessageType::Query {
        return Outcome::Reply(reply(request, ResponseCode::FormErr));
    }
    if request.metadata.op_code != OpCode::Query {
        return Outcome::Reply(reply(request, ResponseCode::NotImp));
    }
    let [query] = request.queries.as_slice() else {
        return Outcome::Reply(reply(request, ResponseCode::FormErr));
    };
    let qname = normalize(&query.name().to_ascii());
    let qtype = query.query_type();
    let lookup = table.lookup(&qname);
    if lookup == Lookup::Outside {
        return Outcome::Forward;
    }
    // Denying a name from a table that was never filled would make pods cache a wrong
    // NXDOMAIN at startup; SERVFAIL makes them retry instead.
    if !table.ready {
        return Outcome::Reply(reply(request, ResponseCode::ServFail));
    }
    let mut msg = reply(request, ResponseCode::NoError);
    msg.metadata.authoritative = true;
    match lookup {
        Lookup::Found(rs) => {
            let mut picked: Vec<&Rdata> = rs.iter().filter(|r| matches_type(r, qtype)).collect();
            // A CNAME answers every type asked of its name (RFC 1034 3.6.2).
            if picked.is_empty() {
                picked = rs.iter().filter(|r| matches!(r, Rdata::Cname(_))).collect();
            }
            for r in &picked {
                push(&mut msg.answers, &qname, r);
            }
            // A CNAME to another cluster name: follow it here, as a recursive server
            // must (stub resolvers such as glibc's do not chase CNAMEs themselves).
            if let [Rdata::Cname(target)] = picked.as_slice() {
                if qtype != RecordType::CNAME {
                    if let Lookup::Found(target_rs) = table.lookup(target) {
                        for t in target_rs.iter().filter(|t| matches_type(t, qtype)) {
                            push(&mut msg.answers, target, t);
                        }
                    }
                }
            }
            // Save the client a round trip: addresses of SRV targets we know.
            for r in &picked {
                if let Rdata::Srv { target, .. } = r {
                    if let Lookup::Found(target_rs) = table.lookup(target) {
                        for t in target_rs
                            .iter()
                            .filter(|t| matches!(t, Rdata::A(_) | Rdata::Aaaa(_)))
                        {
                            push(&mut msg.additionals, target, t);
                        }
                    }
                }
            }
            if msg.answers.is_empty() && table.in_zone(&qname) {
                msg.authorities.extend(soa(table));
            }
        }
        Lookup::Empty => {
            if qtype == RecordType::SOA && qname == table.domain {
                msg.answers.extend(soa(table));
            } else {
                msg.authorities.extend(soa(table));
            }
        }
        Lookup::NxDomain => {
            msg.metadata.response_code = ResponseCode::NXDomain;
            msg.authorities.extend(soa(table));
        }
        Lookup::Outside => unreachable!("handled above"),
    }
    Outcome::Reply(msg)
}

/// The name and type still to resolve upstream when `reply` ends in a CNAME that points
/// outside the cluster zone (an ExternalName service): the server asks the upstream
/// resolvers and appends their answers, as CoreDNS does.
pub fn cname_to_chase(table: &RecordTable, reply: &Message) -> Option<(Name, RecordType)> {
    let qtype = reply.queries.first()?.query_type();
    if matches!(qtype, RecordType::CNAME | RecordType::ANY) || reply.answers.len() != 1 {
        return None;
    }
    let RData::CNAME(CNAME(target)) = &reply.answers[0].data else {
        return None;
    };
    match table.lookup(&target.to_ascii()) {
        Lookup::Outside => Some((target.clone(), qtype)),
        _ => None,
    }
}

/// A response to `request` with `code` and the question echoed, no records.
pub fn reply(request: &Message, code: ResponseCode) -> Message {
    let mut msg = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    msg.metadata.recursion_desired = request.metadata.recursion_desired;
    msg.metadata.checking_disabled = request.metadata.checking_disabled;
    // We resolve names outside the cluster through the node's resolvers.
    msg.metadata.recursion_available = true;
    msg.metadata.response_code = code;
    msg.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        msg.set_edns(edns);
    }
    msg
}

/// A SERVFAIL for a request whose body could not be parsed: only the id survives.
pub fn servfail_for_id(id: u16) -> Message {
    Message::error_msg(id, OpCode::Query, ResponseCode::ServFail)
}

/// Encodes `msg` for UDP: a response larger than the client accepts is sent truncated
/// (TC set, no records) so the client retries over TCP.
pub fn encode_for_udp(msg: &Message, client_max: u16) -> Option<Vec<u8>> {
    let bytes = msg.to_vec().ok()?;
    if bytes.len() <= usize::from(client_max.max(512)) {
        return Some(bytes);
    }
    msg.truncate().to_vec().ok()
}

fn matches_type(r: &Rdata, qtype: RecordType) -> bool {
    if qtype == RecordType::ANY {
        return true;
    }
    match r {
        Rdata::A(_) => qtype == RecordType::A,
        Rdata::Aaaa(_) => qtype == RecordType::AAAA,
        Rdata::Cname(_) => qtype == RecordType::CNAME,
        Rdata::Ptr(_) => qtype == RecordType::PTR,
        Rdata::Srv { .. } => qtype == RecordType::SRV,
    }
}

fn fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{name}.")).ok()
}

fn push(section: &mut Vec<Record>, owner: &str, r: &Rdata) {
    let Some(owner) = fqdn(owner) else { return };
    let data = match r {
        Rdata::A(ip) => RData::A(A(*ip)),
        Rdata::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        Rdata::Cname(t) => match fqdn(t) {
            Some(n) => RData::CNAME(CNAME(n)),
            None => return,
        },
        Rdata::Ptr(t) => match fqdn(t) {
            Some(n) => RData::PTR(PTR(n)),
            None => return,
        },
        Rdata::Srv {
            priority,
            weight,
            port,
            target,
        } => match fqdn(target) {
            Some(n) => RData::SRV(SRV::new(*priority, *weight, *port, n)),
            None => return,
        },
    };
    section.push(Record::from_rdata(owner, TTL, data));
}

/// The zone's SOA: its minimum doubles as the negative-caching TTL.
fn soa(table: &RecordTable) -> Option<Record> {
    let zone = fqdn(&table.domain)?;
    let mname = fqdn(&format!("ns.dns.{}", table.domain))?;
    let rname = fqdn(&format!("hostmaster.{}", table.domain))?;
    let data = SOA::new(mname, rname, table.serial, 7200, 1800, 86400, TTL);
    Some(Record::from_rdata(zone, TTL, RData::SOA(data)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    fn table() -> RecordTable {
        let services: Vec<Service> = vec![
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}})).unwrap(),
            serde_json::from_value(json!({"metadata": {"name": "ext", "namespace": "shop"}, "spec": {"type": "ExternalName", "externalName": "example.com"}})).unwrap(),
        ];
        let slices: Vec<EndpointSlice> = vec![];
        RecordTable::build("cluster.local", services.iter(), slices.iter())
    }

    fn ask(t: &RecordTable, name: &str, qtype: RecordType) -> Outcome {
        let mut q = Message::new(7, MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        answer(t, &q)
    }

    /// (rcode, answer data as text, authority types) of a reply.
    fn summary(o: Outcome) -> (ResponseCode, Vec<String>, Vec<RecordType>) {
        let Outcome::Reply(m) = o else {
            panic!("expected a reply, got forward")
        };
        assert_eq!(m.metadata.id, 7);
        assert!(m.metadata.recursion_desired);
        (
            m.metadata.response_code,
            m.answers
                .iter()
                .map(|r| format!("{} {}", r.record_type(), r.data))
                .collect(),
            m.authorities.iter().map(|r| r.record_type()).collect(),
        )
    }

    #[test]
    fn questions_get_the_right_sections() {
        let t = table();
        let soa = vec![RecordType::SOA];
        // (name, type, rcode, answers, authority types)
        type Case<'a> = (
            &'a str,
            RecordType,
            ResponseCode,
            Vec<&'a str>,
            Vec<RecordType>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "web.shop.svc.cluster.local.",
                RecordType::A,
                ResponseCode::NoError,
                vec!["A 10.96.0.20"],
                vec![],
            ),
            (
                "web.shop.svc.cluster.local.",
                RecordType::AAAA,
                ResponseCode::NoError,
                vec![],
                soa.clone(),
            ),
            (
                "_http._tcp.web.shop.svc.cluster.local.",
                RecordType::SRV,
                ResponseCode::NoError,
                vec!["SRV 0 100 80 web.shop.svc.cluster.local."],
                vec![],
            ),
            (
                "20.0.96.10.in-addr.arpa.",
                RecordType::PTR,
                ResponseCode::NoError,
                vec!["PTR web.shop.svc.cluster.local."],
                vec![],
            ),
            (
                "ext.shop.svc.cluster.local.",
                RecordType::A,
                ResponseCode::NoError,
                vec!["CNAME example.com."],
                vec![],
            ),
            (
                "nope.shop.svc.cluster.local.",
                RecordType::A,
                ResponseCode::NXDomain,
                vec![],
                soa.clone(),
            ),
            (
                "shop.svc.cluster.local.",
                RecordType::A,
                ResponseCode::NoError,
                vec![],
                soa.clone(),
            ),
            (
                "cluster.local.",
                RecordType::SOA,
                ResponseCode::NoError,
                vec!["SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 5"],
                vec![],
            ),
        ];
        for (name, qtype, code, answers, auth) in cases {
            let (c, a, au) = summary(ask(&t, name, qtype));
            assert_eq!(
                (c, a.iter().map(String::as_str).collect::<Vec<_>>(), au),
                (code, answers, auth),
                "{name} {qtype}"
            );
        }
    }

    #[test]
    fn external_name_cnames_are_chased_upstream_and_internal_ones_here() {
        let mut t = table();
        let Outcome::Reply(m) = ask(&t, "ext.shop.svc.cluster.local.", RecordType::A) else {
            panic!()
        };
        assert_eq!(
            cname_to_chase(&t, &m),
            Some((Name::from_ascii("example.com.").unwrap(), RecordType::A))
        );
        let Outcome::Reply(m) = ask(&t, "ext.shop.svc.cluster.local.", RecordType::CNAME) else {
            panic!()
        };
        assert_eq!(cname_to_chase(&t, &m), None);
        let Outcome::Reply(m) = ask(&t, "web.shop.svc.cluster.local.", RecordType::A) else {
            panic!()
        };
        assert_eq!(cname_to_chase(&t, &m), None);

        let services: Vec<Service> = vec![
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.20"}})).unwrap(),
            serde_json::from_value(json!({"metadata": {"name": "alias", "namespace": "shop"}, "spec": {"type": "ExternalName", "externalName": "web.shop.svc.cluster.local"}})).unwrap(),
        ];
        t = RecordTable::build("cluster.local", services.iter(), []);
        let (code, answers, _) = summary(ask(&t, "alias.shop.svc.cluster.local.", RecordType::A));
        assert_eq!(
            (code, answers),
            (
                ResponseCode::NoError,
                vec![
                    "CNAME web.shop.svc.cluster.local.".to_string(),
                    "A 10.96.0.20".to_string()
                ]
            )
        );
    }

    #[test]
    fn srv_answers_carry_target_addresses() {
        let Outcome::Reply(m) = ask(
            &table(),
            "_http._tcp.web.shop.svc.cluster.local.",
            RecordType::SRV,
        ) else {
            panic!()
        };
        let extra: Vec<String> = m
            .additionals
            .iter()
            .map(|r| format!("{} {}", r.name, r.data))
            .collect();
        assert_eq!(extra, ["web.shop.svc.cluster.local. 10.96.0.20"]);
    }

    #[test]
    fn outside_names_are_forwarded_and_unready_tables_do_not_deny() {
        assert_eq!(
            ask(&table(), "example.com.", RecordType::A),
            Outcome::Forward
        );
        let (code, _, _) = summary(ask(
            &RecordTable::empty("cluster.local"),
            "web.shop.svc.cluster.local.",
            RecordType::A,
        ));
        assert_eq!(code, ResponseCode::ServFail);
    }

    #[test]
    fn large_udp_answers_are_truncated() {
        let mut m = reply(
            &Message::new(1, MessageType::Query, OpCode::Query),
            ResponseCode::NoError,
        );
        for i in 0..100u8 {
            push(
                &mut m.answers,
                "big.cluster.local",
                &Rdata::A(std::net::Ipv4Addr::new(10, 0, 0, i)),
            );
        }
        let small = Message::from_vec(&encode_for_udp(&m, 512).unwrap()).unwrap();
        assert!(small.metadata.truncation);
        assert!(small.answers.is_empty());
        let big = Message::from_vec(&encode_for_udp(&m, 4096).unwrap()).unwrap();
        assert_eq!(big.answers.len(), 100);
    }
}
