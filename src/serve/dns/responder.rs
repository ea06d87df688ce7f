//! One DNS message in, at most one out: the whole request handling of the listener, with no
//! I/O, so that the UDP and TCP loops, the tests and the fuzz target run the very same code.
//!
//! Parsing is hickory-server's (`Request::from_bytes`), encoding and truncation hickory's
//! (`MessageResponse::destructive_emit` under a size limit). What is answered:
//!
//! - only names in a validation zone, and only class IN; every other name gets REFUSED with no
//!   records (RFC 1035 §4.1.1: the server is not authoritative and will not recurse; RA is
//!   never set);
//! - at the apex SOA and NS, at an in-zone name server its A/AAAA, at `<name>.<zone>` the TXT
//!   values of the DNS-01 challenges in flight for `<name>` (RFC 8555 §8.4); every other type
//!   at a name that exists is NODATA, an empty non-terminal is NODATA too (RFC 8020), anything
//!   else NXDOMAIN, each with the SOA for negative caching (RFC 2308 §3);
//! - ANY gets one synthesized HINFO record (RFC 8482 §4.2), never the expansion;
//! - minimal responses: records only where they answer the question, glue only for the NS set;
//! - UDP responses fit 512 bytes without EDNS (RFC 1035 §4.2.1) or the smaller of the client's
//!   EDNS size and 1232 (the DNS flag day 2020 size, RFC 9715); one that does not fit is sent
//!   empty with TC set, for the client to ask again over TCP (RFC 7766 §5);
//! - EDNS versions above 0 get BADVERS (RFC 6891 §6.1.3); opcodes other than QUERY NOTIMP;
//!   a message that does not parse FORMERR; a response, or fewer than 12 bytes, nothing;
//!   zone transfers are refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{HINFO, TXT};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding,
};
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};

use super::counters::{rcode_label, type_label, DnsCounters, Dropped};
use super::ratelimit::{RateLimiter, Verdict};
use super::zones::{Zone, Zones, NS_TTL};
use crate::state::ChallengeStore;

/// The largest message accepted. Queries are a few dozen bytes (a question and an OPT record);
/// anything near this is not a query.
pub const MAX_QUERY: usize = 4096;
/// The largest UDP response sent to an EDNS client (RFC 9715: avoids IP fragmentation).
pub(super) const MAX_UDP_PAYLOAD: u16 = 1232;
/// Without EDNS (RFC 1035 §4.2.1).
const CLASSIC_UDP_PAYLOAD: u16 = 512;

/// How the message came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Answers the validation zones from the challenge store.
pub struct Responder {
    zones: Zones,
    challenges: Arc<ChallengeStore>,
    limiter: RateLimiter,
    counters: DnsCounters,
}

/// What the zone data says for one question.
struct Answer<'z> {
    zone: Option<&'z Zone>,
    code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    /// The SOA of a negative answer.
    authorities: Vec<Record>,
    additionals: Vec<Record>,
    /// Challenge TXT records in `answers`.
    txt: usize,
}

impl<'z> Answer<'z> {
    fn refused() -> Self {
        Self::code(None, ResponseCode::Refused)
    }

    fn code(zone: Option<&'z Zone>, code: ResponseCode) -> Self {
        Self {
            zone,
            code,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            txt: 0,
        }
    }

    fn records(zone: &'z Zone, answers: Vec<Record>) -> Self {
        Self {
            zone: Some(zone),
            code: ResponseCode::NoError,
            authoritative: true,
            answers,
            authorities: Vec::new(),
            additionals: Vec::new(),
            txt: 0,
        }
    }

    /// NODATA (`exists`) or NXDOMAIN, with the SOA whose TTL bounds negative caching.
    fn negative(zone: &'z Zone, exists: bool) -> Self {
        Self {
            zone: Some(zone),
            code: if exists {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            },
            authoritative: true,
            answers: Vec::new(),
            authorities: vec![zone.soa.clone()],
            additionals: Vec::new(),
            txt: 0,
        }
    }
}

impl Responder {
    pub fn new(zones: Zones, challenges: Arc<ChallengeStore>, rate_limit: u32) -> Self {
        Self::with_counters(zones, challenges, rate_limit, DnsCounters::new())
    }

    pub fn with_counters(
        zones: Zones,
        challenges: Arc<ChallengeStore>,
        rate_limit: u32,
        counters: DnsCounters,
    ) -> Self {
        Self {
            zones,
            challenges,
            limiter: RateLimiter::new(rate_limit),
            counters,
        }
    }

    pub fn counters(&self) -> &DnsCounters {
        &self.counters
    }

    /// The response to `message` from `source`, if one is to be sent.
    pub fn respond(
        &self,
        message: &[u8],
        source: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        self.respond_at(message, source, transport, Instant::now())
    }

    /// [`Self::respond`] at `now` (the rate limit's clock).
    pub fn respond_at(
        &self,
        message: &[u8],
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Option<Vec<u8>> {
        if message.len() > MAX_QUERY {
            self.counters.dropped(Dropped::Oversize);
            return None;
        }
        let Ok(header) = Header::read(&mut BinDecoder::new(message)) else {
            self.counters.dropped(Dropped::Malformed);
            return None;
        };
        if header.metadata.message_type == MessageType::Response {
            self.counters.dropped(Dropped::Response);
            return None;
        }
        // Forged sources exist on UDP only; TCP connections are bounded by the listener.
        let verdict = match transport {
            Transport::Udp => self.limiter.check(source.ip(), now),
            Transport::Tcp => Verdict::Answer,
        };
        if verdict == Verdict::Drop {
            self.counters.dropped(Dropped::RateLimited);
            return None;
        }
        let protocol = match transport {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        };
        let request = match Request::from_bytes(message.to_vec(), source, protocol) {
            Ok(request) => request,
            Err(_) => return self.form_error(&header, verdict == Verdict::Slip),
        };
        let answer = if verdict == Verdict::Slip {
            None
        } else {
            Some(self.answer(&request))
        };
        let limit = match transport {
            Transport::Tcp => u16::MAX,
            Transport::Udp if request.edns.is_some() => request
                .max_payload()
                .clamp(CLASSIC_UDP_PAYLOAD, MAX_UDP_PAYLOAD),
            Transport::Udp => CLASSIC_UDP_PAYLOAD,
        };
        let Some(answer) = answer else {
            // The slip of the rate limit: as small as a response gets, and TC asks for TCP.
            self.counters.truncated(true);
            return encode(
                &request,
                &Answer::code(None, ResponseCode::NoError),
                true,
                limit,
            );
        };
        let zone = answer.zone.map_or("none", |z| z.label.as_str());
        let rtype = request
            .queries
            .queries()
            .first()
            .map_or("none", |q| type_label(q.query_type()));
        self.counters
            .answered(zone, rtype, rcode_label(answer.code));
        let wire = encode(&request, &answer, false, limit);
        if wire.is_none() {
            self.counters.truncated(false);
            return encode(&request, &answer, true, limit);
        }
        if answer.txt > 0 {
            self.counters.txt_served(zone, answer.txt);
        }
        wire
    }

    /// FORMERR for a message whose header parsed and nothing else (hickory's server does the
    /// same): the header's id, no question.
    fn form_error(&self, header: &Header, slipped: bool) -> Option<Vec<u8>> {
        if slipped {
            self.counters.dropped(Dropped::RateLimited);
            return None;
        }
        self.counters
            .answered("none", "none", rcode_label(ResponseCode::FormErr));
        let queries = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
        let response = MessageResponseBuilder::new(&queries, None)
            .error_msg(&header.metadata, ResponseCode::FormErr);
        let mut wire = Vec::with_capacity(12);
        let mut encoder = BinEncoder::new(&mut wire);
        response.destructive_emit(&mut encoder).ok()?;
        Some(wire)
    }

    /// What the zones say to the request's question.
    fn answer(&self, request: &Request) -> Answer<'_> {
        if request.metadata.op_code != OpCode::Query {
            return Answer::code(None, ResponseCode::NotImp);
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return Answer::code(None, ResponseCode::BADVERS);
        }
        // RFC 9619: a QUERY has exactly one question.
        let [query] = request.queries.queries() else {
            return Answer::code(None, ResponseCode::FormErr);
        };
        if query.query_class() != DNSClass::IN {
            return Answer::refused();
        }
        let Some(zone) = self.zones.find(query.name()) else {
            return Answer::refused();
        };
        let qtype = query.query_type();
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return Answer::code(Some(zone), ResponseCode::Refused);
        }
        // The owner as the client spelt it (a resolver may mix the case, draft-vixie-dnsext-dns0x20).
        let owner = query.original().name().clone();
        let Some(relative) = relative_name(query.name(), zone) else {
            return self.apex(zone, owner, qtype);
        };
        let full = format!("{relative}.{}", zone.label);
        if let Some(records) = zone.host_records(&full, qtype) {
            return match qtype {
                RecordType::ANY => Answer::records(zone, vec![rfc8482(owner, zone.ttl)]),
                _ if records.is_empty() => Answer::negative(zone, true),
                _ => Answer::records(zone, records),
            };
        }
        let snapshot = self.challenges.snapshot();
        let now = SystemTime::now();
        let values: Vec<&str> = snapshot.dns01_values(&relative, now).collect();
        if !values.is_empty() {
            return match qtype {
                RecordType::TXT => {
                    let records: Vec<Record> = values
                        .iter()
                        .map(|v| {
                            Record::from_rdata(
                                owner.clone(),
                                zone.ttl,
                                RData::TXT(TXT::new(vec![(*v).to_owned()])),
                            )
                        })
                        .collect();
                    let mut answer = Answer::records(zone, records);
                    answer.txt = values.len();
                    answer
                }
                RecordType::ANY => Answer::records(zone, vec![rfc8482(owner, zone.ttl)]),
                _ => Answer::negative(zone, true),
            };
        }
        let exists = snapshot.dns01_name_exists(&relative) || zone.host_parents.contains(&full);
        Answer::negative(zone, exists)
    }

    fn apex<'z>(&self, zone: &'z Zone, owner: Name, qtype: RecordType) -> Answer<'z> {
        match qtype {
            RecordType::SOA => {
                let mut soa = zone.soa.clone();
                soa.name = owner;
                Answer::records(zone, vec![soa])
            }
            RecordType::NS => {
                let ns = zone
                    .ns
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r.name = owner.clone();
                        r
                    })
                    .collect();
                let mut answer = Answer::records(zone, ns);
                // The addresses of in-zone name servers, which a resolver needs to use them.
                answer.additionals = zone.hosts.values().flatten().cloned().collect();
                answer
            }
            RecordType::ANY => Answer::records(zone, vec![rfc8482(owner, NS_TTL)]),
            _ => Answer::negative(zone, true),
        }
    }
}

/// The labels of `name` below the zone's apex, as `a.b` (`None` at the apex itself). A label
/// that no DNS name of the store can hold (anything but letters, digits, `-` and `_`) makes
/// the name one that does not exist here: `~` is never a customer's name.
fn relative_name(name: &LowerName, zone: &Zone) -> Option<String> {
    let below = name.num_labels().saturating_sub(zone.origin.num_labels());
    if below == 0 {
        return None;
    }
    let labels: Vec<&[u8]> = name.iter().take(usize::from(below)).collect();
    let mut text = String::with_capacity(name.len());
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            text.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            // Keeps the depth (an empty non-terminal check stays label-exact) and matches no
            // stored name.
            text.push('\u{fffd}');
        }
    }
    Some(text)
}

/// The one record an ANY query gets (RFC 8482 §4.2): `HINFO "RFC8482" ""`.
fn rfc8482(owner: Name, ttl: u32) -> Record {
    Record::from_rdata(
        owner,
        ttl,
        RData::HINFO(HINFO::new("RFC8482".to_owned(), String::new())),
    )
}

/// The wire form of `answer` to `request`, within `limit` bytes. `None` when the records do not
/// fit and `empty` was not asked: the caller then sends it `empty`, with TC set and no records.
/// The request's question section as it goes back in the response: written out again from the
/// parsed questions, names uncompressed and in the asker's case (RFC 1035 §4.1.2; the case
/// matters to resolvers that randomise it). hickory-server's `Queries` keeps the request's own
/// bytes and its response builder copies them, so a question that was compressed — a pointer
/// into the request's header, whose flags differ in the response — came back as a name that
/// does not parse (found by the `dns_listener` fuzz target).
fn echoed_queries(queries: &Queries) -> Option<Queries> {
    let mut wire = Vec::with_capacity(64);
    let mut encoder = BinEncoder::new(&mut wire);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    for query in queries.queries() {
        query.original().emit(&mut encoder).ok()?;
    }
    Queries::read(&mut BinDecoder::new(&wire), queries.len()).ok()
}

fn encode(request: &Request, answer: &Answer<'_>, empty: bool, limit: u16) -> Option<Vec<u8>> {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = answer.code;
    metadata.authoritative = answer.authoritative;
    metadata.truncation = empty;
    // An OPT record answers an OPT record (RFC 6891 §6.1.1), with the size this server takes.
    let edns = request.edns.as_ref().map(|_| {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        edns.set_version(0);
        edns
    });
    let queries = echoed_queries(&request.queries)?;
    let mut builder = MessageResponseBuilder::new(&queries, None);
    if let Some(edns) = &edns {
        builder.edns(edns);
    }
    let none: &[Record] = &[];
    let (answers, authorities, additionals) = if empty {
        (none, none, none)
    } else {
        (
            answer.answers.as_slice(),
            answer.authorities.as_slice(),
            answer.additionals.as_slice(),
        )
    };
    let response = builder.build(
        metadata,
        answers.iter(),
        authorities.iter(),
        std::iter::empty(),
        additionals.iter(),
    );
    let mut wire = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut wire);
    encoder.set_max_size(limit);
    match response.destructive_emit(&mut encoder) {
        // A partial RRset with TC set is what hickory makes of a response that does not fit;
        // an empty one asks for TCP just as well and cannot be mistaken for the whole set.
        Ok(info) if info.truncation && !empty => None,
        Ok(_) => Some(wire),
        Err(_) if !empty => None,
        Err(_) => {
            // Not even the question fits (a query of 500 bytes to a 512-byte client): the
            // header alone, TC set.
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.truncation = true;
            let header = Header {
                metadata,
                counts: Default::default(),
            };
            let mut wire = Vec::with_capacity(12);
            let mut encoder = BinEncoder::new(&mut wire);
            hickory_server::proto::serialize::binary::BinEncodable::emit(&header, &mut encoder)
                .ok()?;
            Some(wire)
        }
    }
}

#[cfg(test)]
mod tests;
