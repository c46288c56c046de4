//! The controller: one node, elected by creating `/controller` under its lease, that keeps every
//! partition led by a live node and the leaderships spread evenly.
//!
//! Every change is one etcd transaction with guards, so a controller acting on a stale view (or
//! two controllers for a moment) can never undo a newer decision:
//! - a partition that never had a leader gets one at epoch 0 (guard: its key does not exist);
//! - a partition whose leader's node key is gone moves to the least loaded live node at the
//!   next epoch (guards: the leadership key is unchanged and the old node is still gone);
//!   "least loaded" is first by the partition's own topic, then by all leaderships, so every
//!   topic is spread evenly as well as the nodes' totals;
//! - when a topic's leaderships, or the nodes' totals, are uneven by more than one, the
//!   controller marks a partition to move from the most loaded node to the least loaded one
//!   (`/moves/`); the owner hands it over once it has stopped serving it
//!   ([`super::Cluster::hand_over`]);
//! - a node started with `--decommission` (draining) gets no partitions, and each one it leads
//!   is marked to move to the least loaded other node, unless no other node is live;
//! - a partition an operator assigned to a node (`/assign/`, AlterPartitionReassignments) is
//!   given to that node whenever it is live: as a leader when the partition has none, by a move
//!   otherwise; balancing moves only partitions without a live assignment;
//! - leadership keys of deleted topics and partitions are removed.

use super::{to_json, Cluster, Leadership, View};
use crate::catalog::Catalog;
use crate::etcd::{Compare, Op};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often the controller looks again without a change in the view.
const RECHECK: Duration = Duration::from_secs(1);
/// Leadership transactions in flight at once.
const CONCURRENCY: usize = 32;

pub(super) async fn run(c: Arc<Cluster>, catalog: Arc<Catalog>, cancel: CancellationToken) {
    let mut views = c.subscribe();
    loop {
        tokio::select! {
            _ = views.changed() => {}
            _ = tokio::time::sleep(RECHECK) => {}
            _ = cancel.cancelled() => return,
        }
        if !c.lease_valid() {
            continue;
        }
        let v = c.view();
        crate::metrics::cluster_controller(v.controller == Some(c.me.id));
        match v.controller {
            None => claim(&c).await,
            Some(id) if id == c.me.id => reconcile(&c, &catalog, &v).await,
            Some(_) => {}
        }
    }
}

/// Tries to become the controller.
async fn claim(c: &Cluster) {
    let key = c.key("controller");
    let lease = c.lease.lock().id;
    let r = c
        .etcd
        .txn(
            &[Compare::CreateRevision(key.clone(), 0)],
            &[Op::Put {
                key,
                value: c.me.id.to_string().into_bytes(),
                lease,
            }],
            &[],
        )
        .await;
    match r {
        Ok(r) if r.succeeded => tracing::info!(node = c.me.id, "this node is the controller"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "claiming the controller failed"),
    }
}

/// One leadership change: the key to write (or delete) and its guards.
struct Move {
    guards: Vec<Compare>,
    op: Op,
    what: String,
    /// Whether it changes a leader epoch.
    bumps: bool,
}

/// Decides what the view needs, then applies it.
async fn reconcile(c: &Cluster, catalog: &Catalog, v: &View) {
    let moves = plan(c, catalog, v);
    if moves.is_empty() {
        return;
    }
    futures::stream::iter(moves)
        .map(|m| async move {
            match c.etcd.txn(&m.guards, &[m.op], &[]).await {
                Ok(r) if r.succeeded => {
                    tracing::info!("{}", m.what);
                    if m.bumps {
                        crate::metrics::cluster_epoch_change();
                    }
                }
                Ok(_) => {} // the view was stale: decided again on the next one
                Err(e) => {
                    crate::metrics::cluster_etcd_error("txn");
                    tracing::warn!(error = %e, "a leadership change failed");
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

fn plan(c: &Cluster, catalog: &Catalog, v: &View) -> Vec<Move> {
    let mut moves = Vec::new();
    // the nodes that may be given partitions: the live ones not draining (all of them if every
    // live node drains: a partition is better led by a draining node than by none)
    let mut live: Vec<i32> = v.nodes.keys().copied().filter(|n| v.eligible(*n)).collect();
    if live.is_empty() {
        live = v.nodes.keys().copied().collect();
    }
    if live.is_empty() {
        return moves;
    }
    let wanted: HashSet<(Uuid, i32)> = catalog
        .topics()
        .iter()
        .flat_map(|t| (0..t.partitions).map(move |p| (t.id, p)))
        .collect();
    // leaderships per live node (and per topic and node), counting a partition on its way to a
    // node as that node's
    let mut load: HashMap<i32, usize> = live.iter().map(|n| (*n, 0)).collect();
    let mut topic_load: HashMap<(Uuid, i32), usize> = HashMap::new();
    let moving = !v.moves.is_empty();
    for (tp, (l, _)) in &v.leaders {
        if !wanted.contains(tp) {
            continue;
        }
        let owner = v
            .moves
            .get(tp)
            .map(|(to, _)| *to)
            .filter(|t| v.nodes.contains_key(t))
            .unwrap_or(l.node);
        if let Some(n) = load.get_mut(&owner) {
            *n += 1;
            *topic_load.entry((tp.0, owner)).or_default() += 1;
        }
    }
    // moves whose target left, or whose partition went or changed hands meanwhile
    for ((t, p), (to, rev)) in &v.moves {
        let owner_alive = v
            .leaders
            .get(&(*t, *p))
            .is_some_and(|(l, _)| v.nodes.contains_key(&l.node));
        if !v.nodes.contains_key(to) || !wanted.contains(&(*t, *p)) || !owner_alive {
            let key = c.move_key(*t, *p);
            moves.push(Move {
                guards: vec![Compare::ModRevision(key.clone(), *rev)],
                op: Op::Delete(key),
                what: format!("partition {t}/{p}: move to {to} cancelled"),
                bumps: false,
            });
        }
    }
    let least = |load: &HashMap<i32, usize>, topic_load: &HashMap<(Uuid, i32), usize>, t: Uuid| {
        load.iter()
            .min_by_key(|(n, c)| (topic_load.get(&(t, **n)).copied().unwrap_or(0), **c, **n))
            .map_or(live[0], |(n, _)| *n)
    };
    let guard_alive =
        |n: i32| Compare::CreateRevision(c.node_key(n), v.node_revs.get(&n).copied().unwrap_or(0));
    // assignments of deleted topics and partitions
    for ((t, p), (_, rev)) in &v.assigned {
        if !wanted.contains(&(*t, *p)) {
            let key = c.assign_key(*t, *p);
            moves.push(Move {
                guards: vec![Compare::ModRevision(key.clone(), *rev)],
                op: Op::Delete(key),
                what: format!("assignment of deleted partition {t}/{p} removed"),
                bumps: false,
            });
        }
    }
    // deleted topics and partitions
    for ((t, p), (_, rev)) in &v.leaders {
        if !wanted.contains(&(*t, *p)) {
            let key = c.leader_key(*t, *p);
            moves.push(Move {
                guards: vec![Compare::ModRevision(key.clone(), *rev)],
                op: Op::Delete(key),
                what: format!("leadership of deleted partition {t}/{p} removed"),
                bumps: false,
            });
        }
    }
    let mut wanted: Vec<(Uuid, i32)> = wanted.into_iter().collect();
    wanted.sort_unstable();
    for (t, p) in wanted {
        let key = c.leader_key(t, p);
        match v.leaders.get(&(t, p)) {
            None => {
                let to = v
                    .assigned_live(t, p)
                    .unwrap_or_else(|| least(&load, &topic_load, t));
                *load.entry(to).or_default() += 1;
                *topic_load.entry((t, to)).or_default() += 1;
                let l = Leadership {
                    node: to,
                    epoch: 0,
                    previous: -1,
                };
                moves.push(Move {
                    guards: vec![Compare::CreateRevision(key.clone(), 0), guard_alive(to)],
                    op: Op::Put {
                        key,
                        value: to_json(&l),
                        lease: 0,
                    },
                    what: format!("partition {t}/{p}: leader {to} at epoch 0"),
                    bumps: true,
                });
            }
            Some((l, rev)) if !v.nodes.contains_key(&l.node) => {
                let to = v
                    .assigned_live(t, p)
                    .unwrap_or_else(|| least(&load, &topic_load, t));
                *load.entry(to).or_default() += 1;
                *topic_load.entry((t, to)).or_default() += 1;
                let next = Leadership {
                    node: to,
                    epoch: l.epoch + 1,
                    previous: l.node,
                };
                moves.push(Move {
                    guards: vec![
                        Compare::ModRevision(key.clone(), *rev),
                        Compare::CreateRevision(c.node_key(l.node), 0),
                        guard_alive(to),
                    ],
                    op: Op::Put {
                        key,
                        value: to_json(&next),
                        lease: 0,
                    },
                    what: format!(
                        "partition {t}/{p}: leader {} is gone, leader {to} at epoch {}",
                        l.node, next.epoch
                    ),
                    bumps: true,
                });
            }
            Some(_) => {}
        }
    }
    if moves.is_empty() && !moving {
        moves.extend(to_assigned(c, v));
    }
    if moves.is_empty() && !moving {
        moves.extend(drain(c, v, &load));
    }
    if moves.is_empty() && !moving {
        moves.extend(balance(c, v, &load));
    }
    moves
}

/// Moves every partition a draining node leads to the least loaded node that may lead.
fn drain(c: &Cluster, v: &View, load: &HashMap<i32, usize>) -> Vec<Move> {
    let mut load = load.clone();
    let mut out = Vec::new();
    let mut draining: Vec<_> = v
        .leaders
        .iter()
        .filter(|(_, (l, _))| v.nodes.get(&l.node).is_some_and(|n| n.draining))
        .collect();
    draining.sort_unstable_by_key(|(tp, _)| **tp);
    for (&(t, p), (l, rev)) in draining {
        let Some(to) = load
            .iter()
            .filter(|(n, _)| v.eligible(**n))
            .min_by_key(|(n, c)| (**c, **n))
            .map(|(n, _)| *n)
        else {
            break; // nowhere to go
        };
        *load.entry(to).or_default() += 1;
        let what = format!(
            "partition {t}/{p}: moving from {} to {to}: it drains",
            l.node
        );
        out.push(move_to(c, (t, p), *rev, to, what));
    }
    out
}

/// Moves every partition whose assigned node is live but does not lead it to that node.
fn to_assigned(c: &Cluster, v: &View) -> Vec<Move> {
    let mut out = Vec::new();
    for (&(t, p), (l, rev)) in &v.leaders {
        let Some(to) = v.assigned_live(t, p) else {
            continue;
        };
        if l.node == to || !v.nodes.contains_key(&l.node) {
            continue; // there already, or leaderless (given to it directly)
        }
        let what = format!(
            "partition {t}/{p}: moving from {} to {to}, as assigned",
            l.node
        );
        out.push(move_to(c, (t, p), *rev, to, what));
    }
    out
}

/// Marks partitions to move until every topic's leaderships, and the nodes' totals, differ by
/// at most one between live nodes. A topic spread unevenly gives a partition from its most to
/// its least loaded node; when every topic is even but the totals are not, a topic the most
/// loaded node leads more of than the least loaded one gives one (which keeps that topic even).
fn balance(c: &Cluster, v: &View, load: &HashMap<i32, usize>) -> Vec<Move> {
    let mut load = load.clone();
    let mut moves = Vec::new();
    // topic → live node → partitions it leads
    let mut owned: BTreeMap<Uuid, BTreeMap<i32, Vec<i32>>> = BTreeMap::new();
    for ((t, p), (l, _)) in &v.leaders {
        // a partition assigned to a live node stays where the operator put it
        if load.contains_key(&l.node) && v.assigned_live(*t, *p).is_none() {
            let by_node = owned.entry(*t).or_default();
            for n in load.keys() {
                by_node.entry(*n).or_default();
            }
            by_node.entry(l.node).or_default().push(*p);
        }
    }
    for by_node in owned.values_mut() {
        for list in by_node.values_mut() {
            list.sort_unstable();
        }
    }
    // each move lowers the spread of one topic, or of the totals with every topic unchanged in
    // shape; the bound only guards against a mistake here
    for _ in 0..100_000 {
        let uneven_topic = owned.iter().find_map(|(t, by_node)| {
            let count = |n: &i32| by_node.get(n).map_or(0, Vec::len);
            let load_of = |n: &i32| load.get(n).copied().unwrap_or(0);
            let from = load.keys().max_by_key(|n| (count(n), load_of(n), -**n))?;
            let to = load.keys().min_by_key(|n| (count(n), load_of(n), **n))?;
            (count(from) > count(to) + 1).then_some((*t, *from, *to))
        });
        let chosen = uneven_topic.or_else(|| {
            let from = *load.iter().max_by_key(|(n, c)| (**c, -**n))?.0;
            let to = *load.iter().min_by_key(|(n, c)| (**c, **n))?.0;
            if load[&from] <= load[&to] + 1 {
                return None;
            }
            owned.iter().find_map(|(t, by_node)| {
                let count = |n: i32| by_node.get(&n).map_or(0, Vec::len);
                (count(from) > count(to)).then_some((*t, from, to))
            })
        });
        let Some((t, from, to)) = chosen else {
            break;
        };
        let Some(p) = owned
            .get_mut(&t)
            .and_then(|b| b.get_mut(&from))
            .and_then(Vec::pop)
        else {
            break;
        };
        owned.entry(t).or_default().entry(to).or_default().push(p);
        let Some((_, rev)) = v.leaders.get(&(t, p)) else {
            break;
        };
        let what = format!("partition {t}/{p}: moving from {from} to {to} to even out leaderships");
        moves.push(move_to(c, (t, p), *rev, to, what));
        *load.entry(from).or_default() -= 1;
        *load.entry(to).or_default() += 1;
    }
    moves
}

/// A move of partition `t`/`p` to node `to`, guarded by its leadership being unchanged since
/// `rev` and no move being pending.
fn move_to(c: &Cluster, (t, p): (Uuid, i32), rev: i64, to: i32, what: String) -> Move {
    let key = c.move_key(t, p);
    Move {
        guards: vec![
            Compare::ModRevision(c.leader_key(t, p), rev),
            Compare::CreateRevision(key.clone(), 0),
        ],
        op: Op::Put {
            key,
            value: to.to_string().into_bytes(),
            lease: 0,
        },
        what,
        bumps: false,
    }
}
