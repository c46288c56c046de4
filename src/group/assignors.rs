//! Server-side partition assignors of consumer groups (KIP-848): `uniform` spreads every
//! subscribed partition evenly over the members that may take it and moves as few as it can
//! from the previous target; `range` gives each member a contiguous range of every topic it
//! subscribes to, members in id order, as the client-side range assignor always did.
//!
//! Pure functions over the group's members, their subscribed topics and the previous target.

pub use crate::config::Assignor;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// A member's partitions: topic id → partition numbers.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What the assignor sees of one member.
pub struct MemberSpec<'a> {
    pub id: &'a str,
    /// Topic ids the member subscribes to (only topics that exist).
    pub topics: BTreeSet<Uuid>,
    /// The member's previous target assignment.
    pub previous: Option<&'a Assignment>,
}

/// The target assignment of every member, keyed by member id. `partitions` gives each
/// subscribed topic's partition count.
pub fn assign(
    assignor: Assignor,
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        Assignor::Uniform => uniform(members, partitions),
        Assignor::Range => range(members, partitions),
    }
}

fn range(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.id.to_string(), Assignment::new()))
        .collect();
    for (&topic, &count) in partitions {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(&topic))
            .map(|m| m.id)
            .collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        subscribers.sort_unstable();
        let n = subscribers.len() as i32;
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, id) in subscribers.iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            if take == 0 {
                continue;
            }
            let set = (next..next + take).collect();
            next += take;
            if let Some(a) = out.get_mut(*id) {
                a.insert(topic, set);
            }
        }
    }
    out
}

/// Sticky and balanced: members keep what they had while the counts allow, new partitions go
/// to the least loaded member that may take them, and partitions move from the most to the
/// least loaded member until no move narrows the gap.
fn uniform(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let n = members.len();
    let mut owned: Vec<BTreeSet<(Uuid, i32)>> = vec![BTreeSet::new(); n];
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    let exists = |t: &Uuid, p: i32| partitions.get(t).is_some_and(|&c| p >= 0 && p < c);
    // what each member keeps of its previous target
    for (i, m) in members.iter().enumerate() {
        for (t, ps) in m.previous.into_iter().flatten() {
            if !m.topics.contains(t) {
                continue;
            }
            for &p in ps {
                if exists(t, p) && taken.insert((*t, p)) {
                    owned[i].insert((*t, p));
                }
            }
        }
    }
    // members that may take each topic, in a stable order
    let eligible =
        |t: &Uuid| -> Vec<usize> { (0..n).filter(|&i| members[i].topics.contains(t)).collect() };
    // the balanced share: members over the ceiling of their topics' total give the excess back
    // (only when everyone subscribes to the same topics is the ceiling exact; the moves below
    // settle the rest)
    let total: usize = partitions
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.topics.contains(t)))
        .map(|(_, &c)| c.max(0) as usize)
        .sum();
    let homogeneous = members.windows(2).all(|w| w[0].topics == w[1].topics);
    if homogeneous && n > 0 {
        let floor = total / n;
        let mut ceilings_left = total % n;
        // members with the most keep a ceiling share first, so fewer partitions move
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(owned[i].len()));
        for i in order {
            let quota = if ceilings_left > 0 && owned[i].len() > floor {
                ceilings_left -= 1;
                floor + 1
            } else {
                floor
            };
            while owned[i].len() > quota {
                if let Some(tp) = owned[i].pop_last() {
                    taken.remove(&tp);
                }
            }
        }
    }
    // everything unowned to the least loaded eligible member
    for (&t, &count) in partitions {
        let candidates = eligible(&t);
        if candidates.is_empty() {
            continue;
        }
        for p in 0..count.max(0) {
            if taken.contains(&(t, p)) {
                continue;
            }
            if let Some(&i) = candidates.iter().min_by_key(|&&i| (owned[i].len(), i)) {
                owned[i].insert((t, p));
                taken.insert((t, p));
            }
        }
    }
    // moves from the most to the least loaded member while that narrows the gap
    let mut budget = total.saturating_mul(n.max(1));
    'moves: while budget > 0 {
        budget -= 1;
        let mut by_load: Vec<usize> = (0..n).collect();
        by_load.sort_by_key(|&i| std::cmp::Reverse(owned[i].len()));
        for &from in &by_load {
            let movable: Vec<(Uuid, i32)> = owned[from].iter().rev().copied().collect();
            for tp in movable {
                let to = (0..n)
                    .filter(|&j| members[j].topics.contains(&tp.0))
                    .filter(|&j| owned[j].len() + 1 < owned[from].len())
                    .min_by_key(|&j| (owned[j].len(), j));
                if let Some(to) = to {
                    owned[from].remove(&tp);
                    owned[to].insert(tp);
                    continue 'moves;
                }
            }
        }
        break;
    }
    members
        .iter()
        .zip(owned)
        .map(|(m, set)| {
            let mut a = Assignment::new();
            for (t, p) in set {
                a.entry(t).or_default().insert(p);
            }
            (m.id.to_string(), a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(id: &'a str, topics: &[Uuid], previous: Option<&'a Assignment>) -> MemberSpec<'a> {
        MemberSpec {
            id,
            topics: topics.iter().copied().collect(),
            previous,
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(|s| s.len()).sum()
    }

    #[test]
    fn uniform_spreads_evenly_and_covers_every_partition() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let parts = BTreeMap::from([(t1, 7), (t2, 3)]);
        let members = [
            spec("a", &[t1, t2], None),
            spec("b", &[t1, t2], None),
            spec("c", &[t1, t2], None),
        ];
        let out = assign(Assignor::Uniform, &members, &parts);
        let counts: Vec<usize> = out.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 10);
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "{counts:?}"
        );
        let mut all = BTreeSet::new();
        for a in out.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(all.insert((*t, *p)), "assigned twice");
                }
            }
        }
    }

    #[test]
    fn uniform_moves_only_what_a_new_member_takes() {
        let t = Uuid::from_u128(1);
        let parts = BTreeMap::from([(t, 6)]);
        let first = assign(
            Assignor::Uniform,
            &[spec("a", &[t], None), spec("b", &[t], None)],
            &parts,
        );
        let (pa, pb) = (&first["a"], &first["b"]);
        let second = assign(
            Assignor::Uniform,
            &[
                spec("a", &[t], Some(pa)),
                spec("b", &[t], Some(pb)),
                spec("c", &[t], None),
            ],
            &parts,
        );
        // a and b each give up exactly one partition and keep the rest
        assert_eq!(count(&second["c"]), 2);
        for id in ["a", "b"] {
            let kept = second[id][&t].intersection(&first[id][&t]).count();
            assert_eq!(kept, 2, "{id} kept {kept}: {second:?}");
        }
    }

    #[test]
    fn uniform_gives_a_topic_only_to_its_subscribers() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let parts = BTreeMap::from([(t1, 4), (t2, 4)]);
        let out = assign(
            Assignor::Uniform,
            &[spec("a", &[t1], None), spec("b", &[t1, t2], None)],
            &parts,
        );
        assert!(!out["a"].contains_key(&t2));
        assert_eq!(count(&out["a"]) + count(&out["b"]), 8);
        assert_eq!(out["b"][&t2].len(), 4);
    }

    #[test]
    fn range_gives_contiguous_ranges_in_member_order() {
        let t = Uuid::from_u128(1);
        let parts = BTreeMap::from([(t, 5)]);
        let out = assign(
            Assignor::Range,
            &[spec("b", &[t], None), spec("a", &[t], None)],
            &parts,
        );
        assert_eq!(out["a"][&t], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["b"][&t], BTreeSet::from([3, 4]));
    }
}
