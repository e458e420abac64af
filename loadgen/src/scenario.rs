//! The scenarios of WORKLOADS.md as data: who talks in which conversation, how
//! fast, for how long, and which server limits that needs.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;

/// The named scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Name {
    /// 1,000 users, 300 private + 100 groups of 8, 10,000 msg/s.
    Spec,
    /// 10,000 users in private pairs and groups of 4-10, about 1 msg/s each.
    Crowd,
    /// `spec`'s layout; the highest rate that holds, to within 10% (doubling or halving from 10,000 msg/s, then bisecting).
    Ceiling,
    /// One room of 2,000 members at 50 msg/s plus background private chat.
    Fanout,
    /// Connections that only keep alive; reports server memory per connection.
    Idle,
    /// `spec`'s layout at 5,000 msg/s while 10% of clients reconnect every few seconds.
    Reconnect,
    /// `spec` spread over the nodes of a cluster (`--server A,B,C`): users in
    /// turn on each node, so most conversations cross nodes; per-node figures.
    Cluster,
    /// 200 users in pairs and small groups at 1,000 msg/s; in the second half
    /// one user's connections pipeline the largest answers and never read.
    Hoard,
    /// `spec`'s layout at 2,000 msg/s; at 40% of the run the loadgen kills its
    /// chatd with SIGKILL and starts it again on the same data after 1 s.
    Crash,
    /// `spec`'s layout at 2,000 msg/s; at 40% of the run every client drops
    /// its connection at once and resumes (a reconnect storm, no server crash).
    Storm,
    /// `spec`'s layout at 2,000 msg/s while 20 of its users upload 10 MiB
    /// files in a loop, each on a connection of its own.
    Attachments,
}

/// Private (two members) or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Exactly two members.
    Private,
    /// Created by its first member (an advocate).
    Group,
}

/// One conversation of the plan.
#[derive(Debug, Clone)]
pub struct ConvPlan {
    /// Private or group.
    pub kind: Kind,
    /// User indexes; the first creates it. Senders take turns in this order.
    pub members: Vec<usize>,
    /// Offered messages per second into this conversation.
    pub rate: f64,
}

/// Clients that drop and resume during the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Churn {
    /// Share of clients dropped each round.
    pub fraction: f64,
    /// Time between rounds.
    #[serde(serialize_with = "secs")]
    pub every: Duration,
}

/// What happens to the run at one moment (`crash`, `storm`, `cluster --disrupt`).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Disruption {
    /// SIGKILL the server, wait `down`, start it again on the same data and ports.
    Kill {
        /// Between the kill and the restart.
        #[serde(serialize_with = "secs")]
        down: Duration,
    },
    /// Every client closes its connection at once and connects again, resuming.
    Storm,
    /// `cluster --disrupt node-loss`: one in-process node is killed (no
    /// goodbye, no restart); its clients move to the other nodes, and the
    /// conversations it owned move once the live set drops it.
    NodeLoss {
        /// Which node (by index).
        node: usize,
    },
    /// `cluster --disrupt redis-restart`: Redis is killed and started again
    /// empty on the same port after `down`; the nodes announce themselves
    /// again and resume fan-out, and members fill the gap from the store.
    RedisRestart {
        /// Between the kill and the restart.
        #[serde(serialize_with = "secs")]
        down: Duration,
    },
}

impl Disruption {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Disruption::Kill { .. } => "crash",
            Disruption::Storm => "storm",
            Disruption::NodeLoss { .. } => "node loss",
            Disruption::RedisRestart { .. } => "redis restart",
        }
    }

    /// Whether the run is judged on the 3 s catch-up bar: the single
    /// server's faults (crash, storm). A cluster's faults are measured, not
    /// judged: moving a lost node's conversations takes `node_ttl_ms` by design.
    pub fn judged_on_catch_up(self) -> bool {
        matches!(self, Disruption::Kill { .. } | Disruption::Storm)
    }

    /// Whether it closes clients on purpose (a send failing with its client
    /// closed is then expected; otherwise every send is owed an ack).
    pub fn closes_clients(self) -> bool {
        matches!(self, Disruption::Storm)
    }
}

/// When the disruption comes, as a share of the sending phase.
pub const DISRUPT_AT: f64 = 0.4;

/// How `ceiling` searches its rate (see [`crate::ceiling`]).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Steps {
    /// First rate, msg/s.
    pub start: f64,
    /// Most steps (bounds the run).
    pub max_steps: usize,
    /// The search stops when the lowest failing rate is within this fraction above the highest holding one.
    pub precision: f64,
}

/// Users who upload files in a loop besides chatting (`attachments`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Uploads {
    /// How many users upload (the first of the population, each a member of conversations).
    pub uploaders: usize,
    /// Size of every file, bytes.
    pub file_bytes: u64,
}

/// Files of `attachments`: 10 MiB each.
pub const UPLOAD_FILE_BYTES: u64 = 10 << 20;

/// Server limits a scenario raises (None: the default stays).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    /// `limits.messages_per_minute`.
    pub messages_per_minute: Option<u32>,
    /// `limits.connections_per_minute_per_ip` (always raised: all clients share 127.0.0.1).
    pub connections_per_minute_per_ip: u32,
    /// `blobs.uploads_per_hour` (the default 10 would refuse uploads in a loop).
    pub uploads_per_hour: Option<u32>,
}

/// `limits.conversations_per_hour` the load generator always sets: a user
/// of a generated population may be the first member (the creator) of many
/// conversations at set-up.
pub const RAISED_CONVERSATIONS_PER_HOUR: u32 = 1_000_000;

/// Everything one run does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Which scenario.
    pub name: Name,
    /// Users, one connection each.
    pub users: usize,
    /// Conversations and their rates.
    pub convs: Vec<ConvPlan>,
    /// Offered total rate, msg/s (sum of the conversations' rates).
    pub rate: f64,
    /// How long messages are sent.
    pub duration: Duration,
    /// Sends before this are checked but not in the histograms.
    pub warmup: Duration,
    /// Server limits needed.
    pub limits: Limits,
    /// Reconnecting clients, if any.
    pub churn: Option<Churn>,
    /// Application pings per client, if any (idle).
    pub ping_every: Option<Duration>,
    /// Report server memory per connection (idle).
    pub measure_memory: bool,
    /// Rate steps (ceiling).
    pub steps: Option<Steps>,
    /// The crash or the storm, if any (at [`DISRUPT_AT`] of the duration).
    pub disruption: Option<Disruption>,
    /// Uploaders besides the chat (`attachments`).
    pub uploads: Option<Uploads>,
    /// What the layout is, for the report.
    pub layout: String,
}

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--users`.
    pub users: Option<usize>,
    /// `--conversations` (spec-like layouts only).
    pub conversations: Option<usize>,
    /// `--rate`, msg/s (ceiling: the first step).
    pub rate: Option<f64>,
    /// `--duration` (ceiling: per step).
    pub duration: Option<Duration>,
    /// `--uploaders` (attachments only).
    pub uploaders: Option<usize>,
    /// RNG seed for the layout.
    pub seed: u64,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Raised message limit: far above anything a scenario sends.
const RAISED_MESSAGES_PER_MINUTE: u32 = 1_000_000;
/// Raised upload limit: far above what 10 MiB uploads in a loop reach in an hour.
const RAISED_UPLOADS_PER_HOUR: u32 = 1_000_000;
/// Raised connection limits: every client comes from 127.0.0.1, and
/// clients reconnect in a loop (per address and per user).
pub const RAISED_CONNECTIONS_PER_MINUTE: u32 = 10_000_000;
/// Members of a group in the spec layout.
const SPEC_GROUP: usize = 8;

impl Plan {
    /// The plan of `name` with the command line's overrides applied.
    pub fn build(name: Name, o: &Overrides) -> anyhow::Result<Self> {
        let mut rng = StdRng::seed_from_u64(o.seed);
        let raised = Limits {
            messages_per_minute: Some(RAISED_MESSAGES_PER_MINUTE),
            connections_per_minute_per_ip: RAISED_CONNECTIONS_PER_MINUTE,
            uploads_per_hour: None,
        };
        let default_limit = Limits { messages_per_minute: None, ..raised };
        let minute = Duration::from_secs(60);
        let not_for = |what: &str| anyhow::bail!("--{what} does not apply to `{}`", format!("{name:?}").to_lowercase());
        if o.uploaders.is_some() && name != Name::Attachments {
            return not_for("uploaders");
        }
        let (users, convs, rate, duration, limits, layout) = match name {
            Name::Spec
            | Name::Ceiling
            | Name::Reconnect
            | Name::Cluster
            | Name::Crash
            | Name::Storm
            | Name::Attachments => {
                let users = o.users.unwrap_or(1_000);
                // 300 private + 100 groups of 8 by default: three privates per group.
                let total = o.conversations.unwrap_or(400);
                let groups = total / 4;
                let privates = total - groups;
                let rate = o.rate.unwrap_or(match name {
                    Name::Reconnect => 5_000.0,
                    Name::Crash | Name::Storm | Name::Attachments => 2_000.0,
                    _ => 10_000.0,
                });
                let dur = o.duration.unwrap_or(if name == Name::Ceiling { Duration::from_secs(10) } else { minute });
                let convs = mixed(users, privates, groups, SPEC_GROUP, &mut rng)?;
                let mut layout = format!("{privates} private + {groups} groups of {SPEC_GROUP}, rate per member slot");
                let mut limits = raised;
                if name == Name::Attachments {
                    let n = o.uploaders.unwrap_or(20).min(users);
                    anyhow::ensure!(n > 0, "attachments needs at least one uploader");
                    layout += &format!("; {n} of the users upload {} MiB files in a loop", UPLOAD_FILE_BYTES >> 20);
                    limits.uploads_per_hour = Some(RAISED_UPLOADS_PER_HOUR);
                }
                (users, with_rate_per_slot(convs, rate), rate, dur, limits, layout)
            }
            Name::Crowd => {
                if o.conversations.is_some() {
                    return not_for("conversations");
                }
                let users = o.users.unwrap_or(10_000);
                let rate = o.rate.unwrap_or(users as f64);
                let convs = partition(users, &mut rng)?;
                let layout =
                    format!("{} conversations: users split into private pairs and groups of 4-10", convs.len());
                // About 1 msg/s per user stays within the default 100/min.
                let limits = if rate / users as f64 <= 1.5 { default_limit } else { raised };
                (users, with_rate_per_slot(convs, rate), rate, o.duration.unwrap_or(minute), limits, layout)
            }
            Name::Fanout => {
                if o.conversations.is_some() {
                    return not_for("conversations");
                }
                let users = o.users.unwrap_or(2_000);
                anyhow::ensure!(users >= 4, "fanout needs at least 4 users");
                let room_rate = o.rate.unwrap_or(50.0);
                // Background: every user in one private pair, 0.5 msg/s each.
                let background = users as f64 * 0.5;
                let mut convs = vec![ConvPlan { kind: Kind::Group, members: (0..users).collect(), rate: room_rate }];
                let mut order: Vec<usize> = (0..users).collect();
                order.shuffle(&mut rng);
                let pairs: Vec<ConvPlan> = order
                    .chunks_exact(2)
                    .map(|p| ConvPlan { kind: Kind::Private, members: p.to_vec(), rate: 0.0 })
                    .collect();
                convs.extend(with_rate_per_slot(pairs, background));
                let layout = format!(
                    "one room of {users} at {room_rate} msg/s + {} private pairs at {background} msg/s in all",
                    users / 2
                );
                (users, convs, room_rate + background, o.duration.unwrap_or(minute), raised, layout)
            }
            Name::Hoard => {
                if o.conversations.is_some() {
                    return not_for("conversations");
                }
                let users = o.users.unwrap_or(200);
                let rate = o.rate.unwrap_or(1_000.0);
                let convs = partition(users, &mut rng)?;
                let layout = format!(
                    "{} conversations: users split into private pairs and groups of 4-10; \
                     a hoarding user in the second half",
                    convs.len()
                );
                // Phase A then phase B (the hoarders), of equal length, B
                // longer than chatd's 30 s write timeout: the server closes the
                // first hoarders and they come back within it. The message
                // limit is raised: the hoarder's 200 seed messages go at once.
                let dur = o.duration.unwrap_or(Duration::from_secs(80));
                (users, with_rate_per_slot(convs, rate), rate, dur, raised, layout)
            }
            Name::Idle => {
                if o.conversations.is_some() {
                    return not_for("conversations");
                }
                if o.rate.is_some() {
                    return not_for("rate");
                }
                let users = o.users.unwrap_or(10_000);
                anyhow::ensure!(users >= 2, "idle needs at least 2 users");
                let convs: Vec<ConvPlan> = (0..users / 2)
                    .map(|i| ConvPlan { kind: Kind::Private, members: vec![2 * i, 2 * i + 1], rate: 0.0 })
                    .collect();
                let layout = format!("{} private pairs, pings only", convs.len());
                (users, convs, 0.0, o.duration.unwrap_or(minute), default_limit, layout)
            }
        };
        Ok(Plan {
            name,
            users,
            convs,
            rate,
            duration,
            warmup: Duration::from_secs(1).min(duration / 2),
            limits,
            churn: (name == Name::Reconnect).then_some(Churn { fraction: 0.1, every: Duration::from_secs(3) }),
            ping_every: (name == Name::Idle).then_some(Duration::from_secs(20)),
            measure_memory: name == Name::Idle,
            steps: (name == Name::Ceiling).then_some(Steps { start: rate, max_steps: 9, precision: 0.1 }),
            disruption: match name {
                Name::Crash => Some(Disruption::Kill { down: Duration::from_secs(1) }),
                Name::Storm => Some(Disruption::Storm),
                _ => None,
            },
            uploads: (name == Name::Attachments)
                .then(|| Uploads { uploaders: o.uploaders.unwrap_or(20).min(users), file_bytes: UPLOAD_FILE_BYTES }),
            layout,
        })
    }

    /// The same plan at another total rate (ceiling steps), rates scaled in proportion.
    pub fn at_rate(&self, rate: f64) -> Plan {
        let factor = if self.rate > 0.0 { rate / self.rate } else { 0.0 };
        let mut p = self.clone();
        for c in &mut p.convs {
            c.rate *= factor;
        }
        p.rate = rate;
        p
    }

    /// The conversation indexes each user is in.
    pub fn memberships(&self) -> Vec<Vec<usize>> {
        let mut m = vec![Vec::new(); self.users];
        for (i, c) in self.convs.iter().enumerate() {
            for &u in &c.members {
                m[u].push(i);
            }
        }
        m
    }
}

/// Gives each conversation `total * members / all member slots`: every member
/// sends at the same rate in each of its conversations.
fn with_rate_per_slot(mut convs: Vec<ConvPlan>, total: f64) -> Vec<ConvPlan> {
    let slots: usize = convs.iter().map(|c| c.members.len()).sum();
    for c in &mut convs {
        c.rate = if slots == 0 { 0.0 } else { total * c.members.len() as f64 / slots as f64 };
    }
    convs
}

/// `privates` pairs and `groups` groups of `size`, members taken in turn from a
/// shuffled list of users so that every user is in one when there are enough
/// places (a user may be in several); no pair twice.
fn mixed(users: usize, privates: usize, groups: usize, size: usize, rng: &mut StdRng) -> anyhow::Result<Vec<ConvPlan>> {
    anyhow::ensure!(users >= size, "this layout needs at least {size} users");
    anyhow::ensure!(privates + groups > 0, "at least one conversation is needed");
    anyhow::ensure!(privates <= users * (users - 1) / 2, "more private conversations than pairs of users");
    let mut order: Vec<usize> = (0..users).collect();
    order.shuffle(rng);
    let mut next = 0usize;
    let mut take = |n: usize, rng: &mut StdRng| -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if next == order.len() {
                order.shuffle(rng);
                next = 0;
            }
            let u = order[next];
            next += 1;
            if !out.contains(&u) {
                out.push(u);
            }
        }
        out
    };
    let mut pairs = HashSet::new();
    let mut convs = Vec::with_capacity(privates + groups);
    while convs.len() < privates {
        let m = take(2, rng);
        if pairs.insert((m[0].min(m[1]), m[0].max(m[1]))) {
            convs.push(ConvPlan { kind: Kind::Private, members: m, rate: 0.0 });
        }
    }
    for _ in 0..groups {
        convs.push(ConvPlan { kind: Kind::Group, members: take(size, rng), rate: 0.0 });
    }
    Ok(convs)
}

/// Every user in exactly one conversation: about half in private pairs, the
/// rest in groups of 4-10.
fn partition(users: usize, rng: &mut StdRng) -> anyhow::Result<Vec<ConvPlan>> {
    use rand::Rng;
    anyhow::ensure!(users >= 2, "at least 2 users are needed");
    let mut order: Vec<usize> = (0..users).collect();
    order.shuffle(rng);
    let mut convs = Vec::new();
    let mut rest = &order[..];
    let paired = (users / 2) & !1;
    while rest.len() > users - paired && rest.len() >= 2 {
        convs.push(ConvPlan { kind: Kind::Private, members: rest[..2].to_vec(), rate: 0.0 });
        rest = &rest[2..];
    }
    while !rest.is_empty() {
        // Groups of 4-10; what is left at the end joins the last one (never a group under 4).
        let n = if rest.len() <= 10 {
            rest.len()
        } else {
            let n = rng.random_range(4..=10);
            if rest.len() - n < 4 { rest.len() - 4 } else { n }
        };
        let kind = if n == 2 { Kind::Private } else { Kind::Group };
        convs.push(ConvPlan { kind, members: rest[..n].to_vec(), rate: 0.0 });
        rest = &rest[n..];
    }
    Ok(convs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_layout_matches_workloads() {
        let p = Plan::build(Name::Spec, &Overrides::default()).unwrap();
        assert_eq!(p.users, 1_000);
        assert_eq!(p.convs.iter().filter(|c| c.kind == Kind::Private).count(), 300);
        assert_eq!(p.convs.iter().filter(|c| c.kind == Kind::Group && c.members.len() == 8).count(), 100);
        let total: f64 = p.convs.iter().map(|c| c.rate).sum();
        assert!((total - 10_000.0).abs() < 1e-6);
        assert!(p.memberships().iter().all(|m| !m.is_empty()), "every user is in a conversation");
    }

    #[test]
    fn hoard_has_a_modest_background_in_two_halves() {
        let p = Plan::build(Name::Hoard, &Overrides::default()).unwrap();
        assert_eq!(p.users, 200);
        assert!(p.memberships().iter().all(|m| m.len() == 1));
        let total: f64 = p.convs.iter().map(|c| c.rate).sum();
        assert!((total - 1_000.0).abs() < 1e-6);
        assert_eq!(p.duration, Duration::from_secs(80));
    }

    #[test]
    fn crash_and_storm_have_spec_layout_at_a_modest_rate() {
        for name in [Name::Crash, Name::Storm] {
            let p = Plan::build(name, &Overrides::default()).unwrap();
            assert_eq!((p.users, p.convs.len()), (1_000, 400));
            let total: f64 = p.convs.iter().map(|c| c.rate).sum();
            assert!((total - 2_000.0).abs() < 1e-6);
            assert!(p.disruption.is_some() && p.churn.is_none());
            assert!(p.limits.messages_per_minute.is_some(), "2 msg/s per user is over the default limit");
        }
        assert!(Plan::build(Name::Spec, &Overrides::default()).unwrap().disruption.is_none());
    }

    #[test]
    fn attachments_is_spec_at_2000_with_20_uploaders_and_the_upload_limit_raised() {
        let p = Plan::build(Name::Attachments, &Overrides::default()).unwrap();
        assert_eq!((p.users, p.convs.len()), (1_000, 400));
        let total: f64 = p.convs.iter().map(|c| c.rate).sum();
        assert!((total - 2_000.0).abs() < 1e-6);
        let u = p.uploads.expect("uploaders");
        assert_eq!((u.uploaders, u.file_bytes), (20, 10 << 20));
        assert!(p.limits.uploads_per_hour.is_some_and(|n| n > 10), "the default 10/hour would refuse a loop");
        assert!(p.memberships()[..20].iter().all(|m| !m.is_empty()), "every uploader is a member somewhere");
        let small = Overrides { users: Some(50), uploaders: Some(3), ..Default::default() };
        assert_eq!(Plan::build(Name::Attachments, &small).unwrap().uploads.map(|u| u.uploaders), Some(3));
        let spec = Plan::build(Name::Spec, &Overrides::default()).unwrap();
        assert!(spec.uploads.is_none() && spec.limits.uploads_per_hour.is_none());
        assert!(Plan::build(Name::Spec, &Overrides { uploaders: Some(2), ..Default::default() }).is_err());
    }

    #[test]
    fn crowd_puts_everyone_in_one_conversation_within_the_limit() {
        let p = Plan::build(Name::Crowd, &Overrides { users: Some(1_000), ..Default::default() }).unwrap();
        assert!(p.memberships().iter().all(|m| m.len() == 1));
        assert!(p.convs.iter().all(|c| c.members.len() == 2 || (4..=10).contains(&c.members.len())));
        assert!(p.limits.messages_per_minute.is_none());
    }
}
