//! Which leases this worker should create, take or steal: a pure function of what the lease table
//! says, which shards lineage allows, and who is alive. The async shell gathers the inputs and
//! applies the actions with conditional writes (a lost race is simply re-planned next cycle).
//!
//! Balance: every worker aims at `target = ceil(leases / workers)`. A worker below target first
//! creates leases for ready shards that have none and takes free or expired leases; if nothing is
//! free, it asks the most loaded worker for one lease (a steal, at most one per cycle), and only
//! when that worker holds more than `target`, so two workers never trade a lease back and forth.
//! Once stable, no worker holds more than `target + 1`.
//!
//! `--max-leases` caps a worker: its target is at most the cap, and it never acquires beyond it.
//! The leases a capped worker leaves, and the ready shards it leaves without a lease, are taken
//! or created by the others even above their target once they have stayed unclaimed for the
//! failover time (no worker below target wanted them), so a cap never leaves a shard unread while
//! another worker has room.

use crate::types::ShardId;
use std::collections::BTreeMap;

/// One lease as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    pub shard: ShardId,
    /// `None`: released or never owned.
    pub owner: Option<String>,
    /// The owner has not renewed it for the failover time.
    pub expired: bool,
    /// Lineage allows reading it now (parents finished or gone); not-ready leases are left alone.
    pub ready: bool,
    /// A steal is already asked for it.
    pub steal_pending: bool,
    /// Nobody has held it for the failover time (as seen by this worker): the workers below
    /// their target did not take it.
    pub unclaimed: bool,
}

/// The inputs of one planning cycle.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub me: &'a str,
    /// Leases of unfinished shards (SHARD_END leases are left out by the caller).
    pub leases: &'a [LeaseState],
    /// Shards lineage allows reading that have no lease item yet.
    pub ready_without_lease: &'a [ShardId],
    /// Those of `ready_without_lease` that have had no lease item for the failover time (as seen
    /// by this worker): the workers below their target did not create one.
    pub unclaimed_without_lease: &'a [ShardId],
    /// `--max-leases`: the most leases this worker holds.
    pub max_leases: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the lease item, owned by this worker.
    Create(ShardId),
    /// Take a free or expired lease.
    Take(ShardId),
    /// Ask `from` to hand this lease over (it flushes, checkpoints and passes it on).
    Steal { shard: ShardId, from: String },
}

/// Finished leases that may be deleted: read to their end, no longer listed by the stream (so
/// lineage no longer needs them: a child of an unlisted parent is ready anyway), and every listed
/// child already has a lease (it has started). Never earlier: while a parent is listed, its
/// `SHARD_END` lease is what tells every worker that its children may be read.
pub fn cleanable(
    finished: &[ShardId],
    listed: &[crate::lineage::ShardNode],
    leased: &std::collections::HashSet<ShardId>,
) -> Vec<ShardId> {
    finished
        .iter()
        .filter(|f| !listed.iter().any(|n| &n.id == *f))
        .filter(|f| {
            listed
                .iter()
                .filter(|n| n.parent.as_ref() == Some(*f))
                .all(|child| leased.contains(&child.id))
        })
        .cloned()
        .collect()
}

/// The owner of a lease that is not expired.
fn live_owner(l: &LeaseState) -> Option<&str> {
    if l.expired {
        None
    } else {
        l.owner.as_deref()
    }
}

/// Leases nobody took, and ready shards nobody created a lease for, for the failover time:
/// taken or created by a worker at its target while it has room under its cap (the workers below
/// target would have taken them: some worker is capped). Without the second, a capped worker
/// and an uncapped one at its target left new shards without a lease for ever: 5 shards, one
/// worker capped at 1, the other's target 3.
fn unclaimed(input: &PlanInput<'_>, mine: usize, cap: usize) -> Vec<Action> {
    let mut free: Vec<&LeaseState> = input
        .leases
        .iter()
        .filter(|l| l.ready && l.unclaimed && live_owner(l).is_none())
        .collect();
    free.sort_by(|a, b| a.shard.cmp(&b.shard));
    let takes = free.into_iter().map(|l| Action::Take(l.shard.clone()));
    let creates = input
        .unclaimed_without_lease
        .iter()
        .map(|s| Action::Create(s.clone()));
    takes
        .chain(creates)
        .take(cap.saturating_sub(mine))
        .collect()
}

/// Plans one cycle for `input.me`.
pub fn plan(input: &PlanInput<'_>) -> Vec<Action> {
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    load.insert(input.me, 0);
    for l in input.leases {
        if let Some(o) = live_owner(l) {
            *load.entry(o).or_default() += 1;
        }
    }
    let total = input.leases.len() + input.ready_without_lease.len();
    let workers = load.len();
    let cap = input.max_leases.unwrap_or(usize::MAX);
    let target = total.div_ceil(workers).min(cap);
    let mine = load[input.me];
    if mine >= target {
        return unclaimed(input, mine, cap);
    }
    let mut want = target - mine;
    let mut actions = Vec::new();
    for shard in input.ready_without_lease {
        if want == 0 {
            return actions;
        }
        actions.push(Action::Create(shard.clone()));
        want -= 1;
    }
    let mut takeable: Vec<&LeaseState> = input
        .leases
        .iter()
        .filter(|l| l.ready && live_owner(l).is_none())
        .collect();
    takeable.sort_by(|a, b| a.shard.cmp(&b.shard));
    for l in takeable {
        if want == 0 {
            return actions;
        }
        actions.push(Action::Take(l.shard.clone()));
        want -= 1;
    }
    if want == 0 || !actions.is_empty() {
        return actions;
    }
    // Nothing free: one steal from the most loaded worker, if it is above target.
    let Some((victim, victim_load)) = load
        .iter()
        .filter(|(w, _)| **w != input.me)
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
    else {
        return actions;
    };
    if *victim_load <= target
        || input
            .leases
            .iter()
            .any(|l| l.steal_pending && live_owner(l) == Some(*victim))
    {
        return actions;
    }
    if let Some(l) = input
        .leases
        .iter()
        .filter(|l| l.ready && !l.steal_pending && live_owner(l) == Some(*victim))
        .max_by(|a, b| a.shard.cmp(&b.shard))
    {
        actions.push(Action::Steal {
            shard: l.shard.clone(),
            from: (*victim).to_owned(),
        });
    }
    actions
}

/// Shards lineage allows reading that no live worker has held (or created a lease for) for the
/// failover time, and that this cycle's `actions` do not acquire. Shorter gaps are normal (a
/// lease released, children of a finished parent waiting for the next lease cycle) and are left
/// out, so that many shards rolling over cannot add up to a lasting signal; a lease of a worker
/// gone for the failover time counts. Lasting, it means every worker is at its `--max-leases`,
/// a shard task keeps failing, or a lease cannot be taken, and the shard's records age towards
/// the stream's 24-hour trim unread. Not-ready shards are left out: they wait for a parent,
/// which is counted itself if nobody reads it.
pub fn unread(input: &PlanInput<'_>, actions: &[Action]) -> Vec<ShardId> {
    let acquired = |s: &ShardId| {
        actions
            .iter()
            .any(|a| matches!(a, Action::Create(x) | Action::Take(x) if x == s))
    };
    let leased = input
        .leases
        .iter()
        .filter(|l| l.ready && (l.expired || l.unclaimed) && live_owner(l).is_none())
        .map(|l| &l.shard);
    input
        .unclaimed_without_lease
        .iter()
        .chain(leased)
        .filter(|s| !acquired(s))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(shard: &str, owner: Option<&str>) -> LeaseState {
        LeaseState {
            shard: ShardId::new(shard),
            owner: owner.map(str::to_owned),
            expired: false,
            ready: true,
            steal_pending: false,
            unclaimed: false,
        }
    }

    fn unclaimed(mut l: LeaseState) -> LeaseState {
        l.unclaimed = true;
        l
    }

    fn expired(mut l: LeaseState) -> LeaseState {
        l.expired = true;
        l
    }

    fn not_ready(mut l: LeaseState) -> LeaseState {
        l.ready = false;
        l
    }

    fn ids(v: &[&str]) -> Vec<ShardId> {
        v.iter().map(|s| ShardId::new(*s)).collect()
    }

    struct Case {
        name: &'static str,
        me: &'static str,
        leases: Vec<LeaseState>,
        ready_without_lease: Vec<ShardId>,
        max: Option<usize>,
        want: Vec<Action>,
    }

    fn take(s: &str) -> Action {
        Action::Take(ShardId::new(s))
    }
    fn create(s: &str) -> Action {
        Action::Create(ShardId::new(s))
    }
    fn steal(s: &str, from: &str) -> Action {
        Action::Steal {
            shard: ShardId::new(s),
            from: from.into(),
        }
    }

    #[test]
    fn planning_scenarios() {
        let cases = vec![
            Case {
                name: "fresh start: one worker creates every ready lease",
                me: "w1",
                leases: vec![],
                ready_without_lease: ids(&["a", "b", "c"]),
                max: None,
                want: vec![create("a"), create("b"), create("c")],
            },
            Case {
                name: "a worker joins: nothing free, it steals one from the loaded worker",
                me: "w2",
                leases: vec![
                    lease("a", Some("w1")),
                    lease("b", Some("w1")),
                    lease("c", Some("w1")),
                    lease("d", Some("w1")),
                ],
                ready_without_lease: vec![],
                max: None,
                want: vec![steal("d", "w1")],
            },
            Case {
                name: "a worker dies: its expired leases are taken up to target",
                me: "w2",
                leases: vec![
                    expired(lease("a", Some("w1"))),
                    expired(lease("b", Some("w1"))),
                    lease("c", Some("w2")),
                    lease("d", Some("w3")),
                ],
                ready_without_lease: vec![],
                // live workers w2, w3: target 2; w2 has 1 -> takes one
                max: None,
                want: vec![take("a")],
            },
            Case {
                name: "a split: two ready children without leases are created",
                me: "w1",
                leases: vec![],
                ready_without_lease: ids(&["child1", "child2"]),
                max: None,
                want: vec![create("child1"), create("child2")],
            },
            Case {
                name: "a chain of rollovers: a not-ready child lease is never taken",
                me: "w1",
                leases: vec![not_ready(lease("grandchild", None)), lease("child", None)],
                ready_without_lease: vec![],
                max: None,
                want: vec![take("child")],
            },
            Case {
                name: "a trimmed or gone parent: its child is ready and created",
                me: "w1",
                leases: vec![],
                ready_without_lease: ids(&["orphan"]),
                max: None,
                want: vec![create("orphan")],
            },
            Case {
                name: "uneven spread within target+1: no steal (no ping-pong)",
                me: "w2",
                leases: vec![
                    lease("a", Some("w1")),
                    lease("b", Some("w1")),
                    lease("c", Some("w2")),
                ],
                ready_without_lease: vec![],
                // target = ceil(3/2) = 2; w1 holds 2 = target: leave it
                max: None,
                want: vec![],
            },
            Case {
                name: "uneven spread over target: one steal per cycle, from the most loaded",
                me: "w3",
                leases: vec![
                    lease("a", Some("w1")),
                    lease("b", Some("w1")),
                    lease("c", Some("w1")),
                    lease("d", Some("w1")),
                    lease("e", Some("w2")),
                    lease("f", Some("w2")),
                ],
                ready_without_lease: vec![],
                max: None,
                want: vec![steal("d", "w1")],
            },
            Case {
                name: "a stolen lease already pending: no second steal from that worker",
                me: "w2",
                leases: vec![
                    LeaseState {
                        steal_pending: true,
                        ..lease("d", Some("w1"))
                    },
                    lease("a", Some("w1")),
                    lease("b", Some("w1")),
                    lease("c", Some("w1")),
                ],
                ready_without_lease: vec![],
                max: None,
                want: vec![],
            },
            Case {
                name: "released leases (graceful handoff) are taken at once, by the workers left",
                me: "w2",
                leases: vec![lease("a", None), lease("b", None), lease("c", Some("w2"))],
                ready_without_lease: vec![],
                max: None,
                want: vec![take("a"), take("b")],
            },
            Case {
                name: "at target: nothing to do",
                me: "w1",
                leases: vec![lease("a", Some("w1")), lease("b", Some("w2"))],
                ready_without_lease: vec![],
                max: None,
                want: vec![],
            },
            Case {
                name: "a capped worker acquires up to its cap, not its target",
                me: "w1",
                leases: vec![lease("a", None), lease("b", None), lease("c", None)],
                ready_without_lease: ids(&["d"]),
                max: Some(2),
                want: vec![create("d"), take("a")],
            },
            Case {
                name: "a capped worker at its cap neither takes nor steals",
                me: "w1",
                leases: vec![
                    lease("a", Some("w1")),
                    lease("b", Some("w1")),
                    unclaimed(lease("c", None)),
                    lease("d", Some("w2")),
                    lease("e", Some("w2")),
                    lease("f", Some("w2")),
                    lease("g", Some("w2")),
                ],
                ready_without_lease: vec![],
                max: Some(2),
                want: vec![],
            },
            Case {
                name: "what a capped worker leaves is taken above target once unclaimed",
                me: "w2",
                leases: vec![
                    lease("a", Some("w1")),
                    lease("b", Some("w2")),
                    lease("c", Some("w2")),
                    unclaimed(lease("d", None)),
                    lease("e", None),
                ],
                ready_without_lease: vec![],
                max: None,
                want: vec![take("d")],
            },
        ];
        for c in cases {
            let got = plan(&PlanInput {
                me: c.me,
                leases: &c.leases,
                ready_without_lease: &c.ready_without_lease,
                unclaimed_without_lease: &[],
                max_leases: c.max,
            });
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn a_worker_at_target_creates_leases_nobody_created_for_the_failover_time() {
        // 5 new shards; "capped" holds its 1, "me" its target of ceil(5/2) = 3.
        let leases = vec![
            lease("a", Some("capped")),
            lease("b", Some("me")),
            lease("c", Some("me")),
            lease("d", Some("me")),
        ];
        let ready = ids(&["e"]);
        let input = |unclaimed: &'static [&'static str], max_leases| (ids(unclaimed), max_leases);
        for (name, (unclaimed, max_leases), want, unread_after) in [
            (
                "just seen without a lease: left to workers below target, not unread yet",
                input(&[], None),
                vec![],
                vec![],
            ),
            (
                "without a lease for the failover time: created above target",
                input(&["e"], None),
                vec![create("e")],
                vec![],
            ),
            (
                "but never beyond this worker's own cap",
                input(&["e"], Some(3)),
                vec![],
                vec!["e"],
            ),
        ] {
            let plan_input = PlanInput {
                me: "me",
                leases: &leases,
                ready_without_lease: &ready,
                unclaimed_without_lease: &unclaimed,
                max_leases,
            };
            let actions = plan(&plan_input);
            assert_eq!(actions, want, "{name}");
            assert_eq!(unread(&plan_input, &actions), ids(&unread_after), "{name}");
        }
    }

    #[test]
    fn unread_shards_are_ready_unowned_and_not_acquired_now() {
        // (name, leases, ready without a lease, max leases of "me", unread after the plan)
        type Case = (
            &'static str,
            Vec<LeaseState>,
            Vec<ShardId>,
            Option<usize>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "everything owned: nothing unread",
                vec![lease("a", Some("me")), lease("b", Some("w2"))],
                vec![],
                None,
                vec![],
            ),
            (
                "new shards this worker creates now are not unread",
                vec![],
                ids(&["a", "b"]),
                None,
                vec![],
            ),
            (
                "capped at one: the shard it cannot take is unread",
                vec![lease("a", Some("me"))],
                ids(&["b"]),
                Some(1),
                vec!["b"],
            ),
            (
                "capped: an expired lease of a dead worker is unread, a live one is not",
                vec![
                    lease("a", Some("me")),
                    expired(lease("b", Some("dead"))),
                    lease("c", Some("w2")),
                ],
                vec![],
                Some(1),
                vec!["b"],
            ),
            (
                "a lease released for the failover time is unread; one just released, or one \
                 waiting for its parent, is not",
                vec![
                    lease("a", Some("me")),
                    unclaimed(lease("b", None)),
                    not_ready(unclaimed(lease("c", None))),
                    lease("d", None),
                ],
                vec![],
                Some(1),
                vec!["b"],
            ),
            (
                "a free lease this worker takes now is not unread",
                vec![expired(lease("a", Some("dead")))],
                vec![],
                None,
                vec![],
            ),
        ];
        for (name, leases, ready_without_lease, max_leases, want) in cases {
            let input = PlanInput {
                me: "me",
                leases: &leases,
                ready_without_lease: &ready_without_lease,
                // Seen without a lease for the failover time (a fresh one: the test below).
                unclaimed_without_lease: &ready_without_lease,
                max_leases,
            };
            let actions = plan(&input);
            assert_eq!(unread(&input, &actions), ids(&want), "{name}");
        }
    }

    #[test]
    fn finished_leases_are_cleaned_only_when_unlisted_and_children_started() {
        use crate::lineage::ShardNode;
        let node = |id: &str, parent: Option<&str>| ShardNode {
            id: ShardId::new(id),
            parent: parent.map(ShardId::new),
        };
        let leased = |v: &[&str]| v.iter().map(|s| ShardId::new(*s)).collect();
        type Case = (
            &'static str,
            Vec<ShardNode>,
            std::collections::HashSet<ShardId>,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "parent still listed: kept (lineage needs it)",
                vec![node("p", None), node("c", Some("p"))],
                leased(&["p", "c"]),
                vec![],
            ),
            (
                "parent gone, child started: cleaned",
                vec![node("c", Some("p"))],
                leased(&["p", "c"]),
                vec!["p"],
            ),
            (
                "parent gone, one child of a split not started: kept",
                vec![node("c1", Some("p")), node("c2", Some("p"))],
                leased(&["p", "c1"]),
                vec![],
            ),
            (
                "parent gone, no children listed: cleaned",
                vec![],
                leased(&["p"]),
                vec!["p"],
            ),
        ];
        for (name, listed, leased, want) in cases {
            assert_eq!(
                cleanable(&ids(&["p"]), &listed, &leased),
                ids(&want),
                "{name}"
            );
        }
    }

    #[test]
    fn stable_spread_stays_within_bound() {
        // Simulate workers planning in turn (steals granted at once) until nothing changes.
        for (shards, workers) in [(10usize, 3usize), (7, 2), (64, 5), (3, 4), (1, 3)] {
            let names: Vec<String> = (0..workers).map(|w| format!("w{w}")).collect();
            let mut owner: Vec<Option<String>> = vec![None; shards];
            for _round in 0..200 {
                let mut changed = false;
                for me in &names {
                    let leases: Vec<LeaseState> = (0..shards)
                        .map(|i| LeaseState {
                            shard: ShardId::new(format!("s{i:03}")),
                            owner: owner[i].clone(),
                            expired: false,
                            ready: true,
                            steal_pending: false,
                            unclaimed: false,
                        })
                        .collect();
                    for a in plan(&PlanInput {
                        me,
                        leases: &leases,
                        ready_without_lease: &[],
                        unclaimed_without_lease: &[],
                        max_leases: None,
                    }) {
                        let s = match a {
                            Action::Take(s)
                            | Action::Create(s)
                            | Action::Steal { shard: s, .. } => s,
                        };
                        let i: usize = s.as_str()[1..].parse().unwrap();
                        owner[i] = Some(me.clone());
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
            assert!(owner.iter().all(Option::is_some), "every shard owned");
            let bound = shards.div_ceil(workers) + 1;
            for w in &names {
                let n = owner
                    .iter()
                    .filter(|o| o.as_deref() == Some(w.as_str()))
                    .count();
                assert!(
                    n <= bound,
                    "{w} holds {n} of {shards} with {workers} workers (bound {bound})"
                );
            }
        }
    }
}
