//! The envelopes nodes exchange over Redis, between their generated types
//! (`chat_protocol::cluster::v1`, from `schemas/chat/cluster/v1/cluster.proto`)
//! and what shards handle ([`Fanout`], [`UserEvent`], [`Forwarded`]): encoding
//! and checked decoding. It owns the mapping only: it publishes nothing and
//! hands nothing to shards (that is the bridge's job).

use crate::ids::{Caller, ConvId, NodeId};
use crate::shard::{Ask, Fanout, Forwarded, Pushed, UserEvent};
use bytes::Bytes;
use chat_protocol::cluster::v1::envelope::Body;
use chat_protocol::cluster::v1::{
    Envelope, Forward, ForwardReply, Interest, MembershipChanged, PushedMsg, RemoteFanout, RemotePresence,
    RemoteUserEvent, RepublishPresence,
};
use chat_protocol::v1::{self, ErrorCode, command, reply};
use prost::Message as _;
use std::sync::Arc;

/// `RemoteFanout.kind`: stored messages.
const FANOUT_MESSAGES: u32 = 1;
/// `RemoteFanout.kind`: an ephemeral push.
const FANOUT_EPHEMERAL: u32 = 2;
/// `RemoteFanout.kind`: a nudge to a head.
const FANOUT_NUDGE: u32 = 3;

/// `Interest.kind`: the sender needs these conversations.
const INTEREST_ADD: u32 = 1;
/// `Interest.kind`: the sender no longer needs them.
const INTEREST_REMOVE: u32 = 2;
/// `Interest.kind`: the sender's whole list for this owner.
const INTEREST_LIST: u32 = 3;

/// Why an envelope's content was dropped (it decoded, but means nothing valid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Malformed {
    /// Bytes that are not an envelope.
    #[error("not a cluster envelope: {0}")]
    Envelope(#[from] prost::DecodeError),
    /// A fan-out of stored messages that is empty or not in increasing seq.
    #[error("a fan-out of stored messages that is empty or not in increasing seq")]
    Messages,
    /// A fan-out kind this build does not know.
    #[error("unknown fan-out kind {0}")]
    FanoutKind(u32),
    /// A forwarded command that is not a `v1::Command` with a body.
    #[error("a forwarded command that does not decode")]
    Command,
    /// A forwarded reply that is not a `v1::Reply` with a result.
    #[error("a forwarded reply that does not decode")]
    Reply,
    /// An interest kind this build does not know.
    #[error("unknown interest kind {0}")]
    InterestKind(u32),
    /// A search request or answer that means nothing valid, and why.
    #[error("a malformed search message: {0}")]
    Search(&'static str),
}

/// What a node says of the fan-outs it needs from an owner (see `interest.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum InterestMsg {
    /// It needs `convs`; answer `req_id` (0: no answer) once it gets their fan-outs.
    Add {
        /// The request to answer.
        req_id: u64,
        /// Conversation ids.
        convs: Vec<ConvId>,
    },
    /// It no longer needs them.
    Remove(Vec<ConvId>),
    /// Its whole list, as of the live set with this fingerprint.
    List {
        /// The live set's fingerprint.
        live: u64,
        /// Conversation ids.
        convs: Vec<ConvId>,
    },
}

/// The wire form of an interest message.
pub(super) fn interest(m: InterestMsg) -> Body {
    Body::Interest(match m {
        InterestMsg::Add { req_id, convs } => Interest { req_id, kind: INTEREST_ADD, convs, live: 0 },
        InterestMsg::Remove(convs) => Interest { req_id: 0, kind: INTEREST_REMOVE, convs, live: 0 },
        InterestMsg::List { live, convs } => Interest { req_id: 0, kind: INTEREST_LIST, convs, live },
    })
}

/// An interest message another node sent, checked: a known kind.
pub(super) fn interest_msg(i: Interest) -> Result<InterestMsg, Malformed> {
    match i.kind {
        INTEREST_ADD => Ok(InterestMsg::Add { req_id: i.req_id, convs: i.convs }),
        INTEREST_REMOVE => Ok(InterestMsg::Remove(i.convs)),
        INTEREST_LIST => Ok(InterestMsg::List { live: i.live, convs: i.convs }),
        kind => Err(Malformed::InterestKind(kind)),
    }
}

/// One envelope from `from`, encoded.
pub(super) fn encode(from: &str, body: Body) -> Bytes {
    Bytes::from(Envelope { from: from.to_string(), body: Some(body) }.encode_to_vec())
}

/// Decodes one pub/sub message.
pub(super) fn decode(bytes: &[u8]) -> Result<Envelope, Malformed> {
    Ok(Envelope::decode(bytes)?)
}

/// The wire form of a fan-out of `conv`; None for what every node works out
/// for itself (presence).
pub(super) fn remote_fanout(conv: ConvId, f: &Fanout) -> Option<RemoteFanout> {
    Some(match f {
        Fanout::Messages(list) => RemoteFanout {
            conv,
            kind: FANOUT_MESSAGES,
            messages: list.iter().map(|p| PushedMsg { seq: p.seq, frame: p.frame.clone(), origin: p.origin }).collect(),
            ..Default::default()
        },
        Fanout::Ephemeral { frame, datagram, skip_user } => RemoteFanout {
            conv,
            kind: FANOUT_EPHEMERAL,
            frame: frame.clone(),
            datagram: datagram.clone().unwrap_or_default(),
            skip_user: skip_user.as_deref().unwrap_or_default().to_string(),
            ..Default::default()
        },
        Fanout::Nudge { head } => RemoteFanout { conv, kind: FANOUT_NUDGE, head: *head, ..Default::default() },
        Fanout::Presence { .. } => return None,
    })
}

/// A fan-out another node published, checked: stored messages in strictly
/// increasing seq, a known kind.
pub(super) fn fanout(f: RemoteFanout) -> Result<Fanout, Malformed> {
    match f.kind {
        FANOUT_MESSAGES => {
            let list: Vec<Pushed> = {
                let committed = std::time::Instant::now();
                f.messages
                    .into_iter()
                    .map(|p| Pushed { seq: p.seq, frame: p.frame, origin: p.origin, committed })
                    .collect()
            };
            if list.is_empty() || list.windows(2).any(|w| w[0].seq >= w[1].seq) {
                return Err(Malformed::Messages);
            }
            Ok(Fanout::Messages(list.into()))
        }
        FANOUT_EPHEMERAL => Ok(Fanout::Ephemeral {
            frame: f.frame,
            datagram: (!f.datagram.is_empty()).then_some(f.datagram),
            skip_user: (!f.skip_user.is_empty()).then(|| Arc::from(f.skip_user.as_str())),
        }),
        FANOUT_NUDGE => Ok(Fanout::Nudge { head: f.head }),
        kind => Err(Malformed::FanoutKind(kind)),
    }
}

/// The wire form of a user event.
pub(super) fn remote_user_event(user: &str, ev: &UserEvent) -> RemoteUserEvent {
    match ev {
        UserEvent::Added(conv, since, frame) => RemoteUserEvent {
            user: user.into(),
            conv: *conv,
            added: true,
            since: *since,
            frame: frame.clone(),
            ..Default::default()
        },
        UserEvent::Removed(conv, frame) => RemoteUserEvent {
            user: user.into(),
            conv: *conv,
            added: false,
            since: 0,
            frame: frame.clone(),
            ..Default::default()
        },
        UserEvent::Close(code, reason) => RemoteUserEvent {
            user: user.into(),
            close_code: *code as u32,
            close_reason: reason.to_string(),
            ..Default::default()
        },
    }
}

/// A user event another node published, and whose it is.
pub(super) fn user_event(u: RemoteUserEvent) -> (Arc<str>, UserEvent) {
    let ev = if u.close_code != 0 {
        // A code this binary does not know still closes: as a revocation.
        let code = i32::try_from(u.close_code).ok().and_then(|c| ErrorCode::try_from(c).ok());
        UserEvent::Close(code.unwrap_or(ErrorCode::SessionRevoked), Arc::from(u.close_reason.as_str()))
    } else if u.added {
        UserEvent::Added(u.conv, u.since, u.frame)
    } else {
        UserEvent::Removed(u.conv, u.frame)
    };
    (Arc::from(u.user.as_str()), ev)
}

/// A request for the owner of `conv` (its `req_id` set by the bridge).
pub(super) fn forward(conv: ConvId, caller: &Caller, origin: u64, ask: Ask) -> Forward {
    let (created, erase) = (ask == Ask::Created, matches!(ask, Ask::Erase(_)));
    let body = match ask {
        Ask::Created => None,
        Ask::Command(body) => Some(body),
        Ask::Erase(d) => Some(command::Body::DeleteMessage(d)),
    };
    let command =
        body.map(|body| Bytes::from(v1::Command { id: 0, body: Some(body) }.encode_to_vec())).unwrap_or_default();
    let role = caller.role as i32;
    Forward { req_id: 0, conv, user: caller.user.to_string(), role, origin, command, created, erase }
}

/// A request `from` forwarded here, for the conversation's home shard. An
/// unknown role is taken as the least privileged one.
pub(super) fn forwarded(from: NodeId, f: Forward) -> Result<Forwarded, Malformed> {
    let ask = if f.created {
        Ask::Created
    } else {
        match (v1::Command::decode(f.command), f.erase) {
            (Ok(v1::Command { body: Some(command::Body::DeleteMessage(d)), .. }), true) => Ask::Erase(d),
            (Ok(v1::Command { body: Some(body), .. }), false) => Ask::Command(body),
            _ => return Err(Malformed::Command),
        }
    };
    let role = v1::Role::try_from(f.role).unwrap_or(v1::Role::Client);
    let caller = Caller { user: Arc::from(f.user.as_str()), role };
    Ok(Forwarded { from, req_id: f.req_id, conv: f.conv, caller, origin: f.origin, ask })
}

/// The answer to request `req_id`, from `from`.
pub(super) fn reply(from: &str, req_id: u64, result: reply::Result) -> Bytes {
    let r = v1::Reply { id: 0, result: Some(result) };
    encode(from, Body::Reply(ForwardReply { req_id, reply: Bytes::from(r.encode_to_vec()) }))
}

/// The result an owner answered.
pub(super) fn reply_result(r: ForwardReply) -> Result<reply::Result, Malformed> {
    match v1::Reply::decode(r.reply) {
        Ok(v1::Reply { result: Some(result), .. }) => Ok(result),
        _ => Err(Malformed::Reply),
    }
}

/// "`user` has `count` devices on `from`".
pub(super) fn presence(from: &str, user: &str, count: u32) -> Bytes {
    encode(from, Body::Presence(RemotePresence { user: user.to_string(), count }))
}

/// "Publish your presence counts again", from `node`.
pub(super) fn republish_request(node: &str) -> Bytes {
    encode(node, Body::Republish(RepublishPresence {}))
}

/// "`node` joined (or is leaving) the live set": read it now.
pub(super) fn membership_notice(node: &str, leaving: bool) -> Bytes {
    encode(node, Body::Membership(MembershipChanged { leaving }))
}

/// Whether `body` says its sender joined (`leaving` false) or is leaving.
pub(super) fn is_membership(body: Option<&Body>, leaving: bool) -> bool {
    matches!(body, Some(Body::Membership(m)) if m.leaving == leaving)
}

/// Tests only: a crafted `chat:fanout` envelope from `from` (a hostile or
/// broken node), a nudge to `head` or, with `seq`, one stored message at
/// `seq` carrying `frame`.
#[cfg(any(test, feature = "test-support"))]
pub fn forged_fanout(from: &str, conv: ConvId, head: u64, seq: Option<(u64, Bytes)>) -> Vec<u8> {
    forged_fanout_body(from, conv, head, seq)
}

/// [`forged_fanout`] sealed with `secret` (as a node with that cluster secret would send it).
#[cfg(any(test, feature = "test-support"))]
pub fn sealed_forged_fanout(secret: &str, from: &str, conv: ConvId, head: u64, seq: Option<(u64, Bytes)>) -> Vec<u8> {
    let envelope = forged_fanout_body(from, conv, head, seq);
    super::seal::Seal::new(secret.as_bytes()).seal(&envelope, super::seal::now_ms()).to_vec()
}

#[cfg(any(test, feature = "test-support"))]
fn forged_fanout_body(from: &str, conv: ConvId, head: u64, seq: Option<(u64, Bytes)>) -> Vec<u8> {
    let f = match seq {
        Some((seq, frame)) => RemoteFanout {
            conv,
            kind: FANOUT_MESSAGES,
            messages: vec![PushedMsg { seq, frame, origin: 0 }],
            ..Default::default()
        },
        None => RemoteFanout { conv, kind: FANOUT_NUDGE, head, ..Default::default() },
    };
    encode(from, Body::Fanout(f)).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::v1::Role;

    /// Envelopes as the hand-written prost structs that preceded
    /// `cluster.proto` encoded them (from node "node-a"): the schema must
    /// keep every byte, or nodes of two builds stop understanding each other.
    const GOLDEN: &[(&str, &str)] = &[
        ("forward", "0a066e6f64652d61121b08ac02102a1a05616c696365200228818080807032051203616263"),
        ("forward_created", "0a066e6f64652d61121210ffffffffffffffffff011a03626f623801"),
        ("reply", "0a066e6f64652d611a06080912020801"),
        ("fanout_messages", "0a066e6f64652d612218082a10011a09080112036f6e6518051a070802120374776f"),
        ("fanout_ephemeral", "0a066e6f64652d612217082a10022206747970696e672a0264673205616c696365"),
        ("fanout_nudge", "0a066e6f64652d612207082a100338e807"),
        ("user_added", "0a066e6f64652d612a140a056361726f6c102a180120112a056164646564"),
        ("user_removed", "0a066e6f64652d612a120a056361726f6c102a2a0772656d6f766564"),
        ("presence", "0a066e6f64652d6132080a04646176651003"),
        ("membership_join", "0a066e6f64652d613a00"),
        ("membership_leave", "0a066e6f64652d613a020801"),
        ("republish", "0a066e6f64652d614200"),
    ];

    fn golden(name: &str) -> Vec<u8> {
        let (_, h) = GOLDEN.iter().find(|(n, _)| *n == name).expect("a golden vector");
        hex::decode(h).unwrap()
    }

    fn body(name: &str) -> Body {
        let env = decode(&golden(name)).unwrap();
        assert_eq!(env.from, "node-a");
        env.body.expect("a body")
    }

    #[test]
    fn golden_envelopes_decode_to_what_the_old_code_sent() {
        // (Its command bytes are opaque here, and not a valid `v1::Command`.)
        let Body::Forward(f) = body("forward") else { panic!("not a forward") };
        assert_eq!((f.req_id, f.conv, f.user.as_str(), f.role, f.origin), (300, 42, "alice", 2, (7 << 32) | 1));
        assert_eq!((&f.command[..], f.created), (&b"\x12\x03abc"[..], false));
        assert_eq!(forwarded(Arc::from("node-a"), f).unwrap_err(), Malformed::Command);
        let Body::Forward(f) = body("forward_created") else { panic!("not a forward") };
        let req = forwarded(Arc::from("node-a"), f).unwrap();
        assert!(req.ask == Ask::Created && req.conv == u64::MAX && req.req_id == 0);

        let Body::Fanout(f) = body("fanout_messages") else { panic!("not a fan-out") };
        assert_eq!(f.conv, 42);
        match fanout(f).unwrap() {
            Fanout::Messages(list) => {
                let got: Vec<_> = list.iter().map(|p| (p.seq, &p.frame[..], p.origin)).collect();
                assert_eq!(got, [(1, &b"one"[..], 5), (2, &b"two"[..], 0)]);
            }
            other => panic!("{other:?}"),
        }
        let Body::Fanout(f) = body("fanout_ephemeral") else { panic!("not a fan-out") };
        match fanout(f).unwrap() {
            Fanout::Ephemeral { frame, datagram, skip_user } => {
                assert_eq!(
                    (&frame[..], datagram.as_deref(), skip_user.as_deref()),
                    (&b"typing"[..], Some(&b"dg"[..]), Some("alice"))
                );
            }
            other => panic!("{other:?}"),
        }
        let Body::Fanout(f) = body("fanout_nudge") else { panic!("not a fan-out") };
        assert!(matches!(fanout(f), Ok(Fanout::Nudge { head: 1000 })));

        let Body::User(u) = body("user_added") else { panic!("not a user event") };
        assert!(matches!(user_event(u), (u, UserEvent::Added(42, 17, f)) if &*u == "carol" && f == "added"));
        let Body::User(u) = body("user_removed") else { panic!("not a user event") };
        assert!(matches!(user_event(u), (u, UserEvent::Removed(42, f)) if &*u == "carol" && f == "removed"));
        assert!(matches!(body("presence"), Body::Presence(RemotePresence { user, count: 3 }) if user == "dave"));
        assert!(is_membership(Some(&body("membership_join")), false));
        assert!(is_membership(Some(&body("membership_leave")), true));
        assert!(matches!(body("republish"), Body::Republish(_)));
    }

    #[test]
    fn an_erasure_travels_as_a_delete_with_its_flag_and_nothing_else_carries_it() {
        let caller = Caller { user: Arc::from("bob"), role: Role::Client };
        let d = v1::DeleteMessage { conversation_id: 42, seq: 7, client_msg_id: "gdpr-erase-7".into() };
        let f = forward(42, &caller, 1, Ask::Erase(d.clone()));
        assert!(f.erase && !f.created);
        assert_eq!(forwarded(Arc::from("node-a"), f).unwrap().ask, Ask::Erase(d.clone()));
        let delete = Ask::Command(command::Body::DeleteMessage(d));
        let f = forward(42, &caller, 1, delete.clone());
        assert_eq!(forwarded(Arc::from("node-a"), f).unwrap().ask, delete, "a client's delete stays one");
        let read = v1::MarkRead { conversation_id: 42, seq: 7 };
        let mut f = forward(42, &caller, 1, Ask::Command(command::Body::MarkRead(read)));
        f.erase = true;
        assert_eq!(forwarded(Arc::from("node-a"), f).unwrap_err(), Malformed::Command, "only a delete erases");
    }

    #[test]
    fn todays_encoders_produce_the_golden_bytes() {
        let caller = Caller { user: Arc::from("alice"), role: Role::try_from(2).unwrap() };
        let mut fwd = forward(42, &caller, (7 << 32) | 1, Ask::Created);
        (fwd.req_id, fwd.created, fwd.command) = (300, false, Bytes::from_static(b"\x12\x03abc"));
        assert_eq!(encode("node-a", Body::Forward(fwd)), golden("forward"));
        let list = [(1, "one", 5), (2, "two", 0)].map(|(seq, f, origin)| Pushed {
            seq,
            frame: Bytes::from(f),
            origin,
            committed: std::time::Instant::now(),
        });
        let rf = remote_fanout(42, &Fanout::Messages(list.to_vec().into())).unwrap();
        assert_eq!(encode("node-a", Body::Fanout(rf)), golden("fanout_messages"));
        let eph = Fanout::Ephemeral {
            frame: Bytes::from("typing"),
            datagram: Some(Bytes::from("dg")),
            skip_user: Some(Arc::from("alice")),
        };
        assert_eq!(encode("node-a", Body::Fanout(remote_fanout(42, &eph).unwrap())), golden("fanout_ephemeral"));
        let nudge = remote_fanout(42, &Fanout::Nudge { head: 1000 }).unwrap();
        assert_eq!(encode("node-a", Body::Fanout(nudge)), golden("fanout_nudge"));
        let added = remote_user_event("carol", &UserEvent::Added(42, 17, Bytes::from("added")));
        assert_eq!(encode("node-a", Body::User(added)), golden("user_added"));
        let removed = remote_user_event("carol", &UserEvent::Removed(42, Bytes::from("removed")));
        assert_eq!(encode("node-a", Body::User(removed)), golden("user_removed"));
        assert_eq!(presence("node-a", "dave", 3), golden("presence"));
        assert_eq!(membership_notice("node-a", false), golden("membership_join"));
        assert_eq!(membership_notice("node-a", true), golden("membership_leave"));
        assert_eq!(republish_request("node-a"), golden("republish"));
        // Its reply bytes are opaque here too (a `v1::Reply` without a result).
        let Body::Reply(r) = body("reply") else { panic!("not a reply") };
        assert_eq!((r.req_id, &r.reply[..]), (9, &b"\x08\x01"[..]));
        assert_eq!(encode("node-a", Body::Reply(r.clone())), golden("reply"));
        assert_eq!(reply_result(r), Err(Malformed::Reply));
        let ok = reply::Result::Ok(v1::Empty {});
        let Ok(Envelope { body: Some(Body::Reply(r)), .. }) = decode(&reply("node-a", 9, ok.clone())) else {
            panic!("not a reply")
        };
        assert_eq!((r.req_id, reply_result(r)), (9, Ok(ok)));
    }

    #[test]
    fn forged_fanouts_are_what_the_old_code_forged() {
        let nudge = "0a046576696c220f0807100338ffffffffffffffffff01";
        assert_eq!(hex::encode(forged_fanout("evil", 7, u64::MAX, None)), nudge);
        let msg = "0a046576696c2210080710011a0a08c0843d120466616b65";
        assert_eq!(hex::encode(forged_fanout("evil", 7, 0, Some((1_000_000, Bytes::from_static(b"fake"))))), msg);
    }

    #[test]
    fn envelopes_round_trip_and_garbage_is_an_error() {
        let bytes = presence("a", "u", 2);
        let env = decode(&bytes).unwrap();
        assert_eq!(
            env,
            Envelope { from: "a".into(), body: Some(Body::Presence(RemotePresence { user: "u".into(), count: 2 })) }
        );
        assert!(matches!(decode(b"\xff\xff\xff"), Err(Malformed::Envelope(_))));
    }

    #[test]
    fn malformed_content_gets_a_precise_error() {
        let out_of_order = RemoteFanout {
            conv: 1,
            kind: FANOUT_MESSAGES,
            messages: vec![PushedMsg { seq: 2, ..Default::default() }, PushedMsg { seq: 2, ..Default::default() }],
            ..Default::default()
        };
        assert_eq!(fanout(out_of_order).unwrap_err(), Malformed::Messages);
        let empty = RemoteFanout { conv: 1, kind: FANOUT_MESSAGES, ..Default::default() };
        assert_eq!(fanout(empty).unwrap_err(), Malformed::Messages);
        assert_eq!(fanout(RemoteFanout { kind: 9, ..Default::default() }).unwrap_err(), Malformed::FanoutKind(9));
        let garbage = Forward { command: Bytes::from_static(b"\xff"), ..Default::default() };
        assert_eq!(forwarded(Arc::from("n"), garbage).unwrap_err(), Malformed::Command);
        let no_body =
            Forward { command: Bytes::from(v1::Command { id: 1, body: None }.encode_to_vec()), ..Default::default() };
        assert_eq!(forwarded(Arc::from("n"), no_body).unwrap_err(), Malformed::Command);
        let unknown_role = Forward { created: true, role: 99, ..Default::default() };
        assert_eq!(forwarded(Arc::from("n"), unknown_role).unwrap().caller.role, Role::Client);
        assert_eq!(reply_result(ForwardReply { req_id: 1, reply: Bytes::new() }), Err(Malformed::Reply));
        let unknown = Interest { kind: 7, convs: vec![1], ..Default::default() };
        assert_eq!(interest_msg(unknown).unwrap_err(), Malformed::InterestKind(7));
    }

    #[test]
    fn interest_messages_round_trip() {
        for m in [
            InterestMsg::Add { req_id: 5, convs: vec![1, 2] },
            InterestMsg::Remove(vec![3]),
            InterestMsg::List { live: 99, convs: vec![] },
        ] {
            let env = decode(&encode("node-a", interest(m.clone()))).unwrap();
            let Some(Body::Interest(i)) = env.body else { panic!("not an interest") };
            assert_eq!(interest_msg(i).unwrap(), m);
        }
    }
}
