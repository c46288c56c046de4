#!/usr/bin/env python3
"""KIP-848 consumer groups (group.protocol=consumer) with confluent-kafka (librdkafka) against a
running broker. Prints one PASS/FAIL line per capability like python_clients.py and exits
non-zero on any FAIL.

The group case: three members join and share six partitions; a fourth joins and only moved
partitions are revoked (read from the members' revoke callbacks); one leaves and the rest take
its partitions; commits survive every member closing, and a new member resumes from them. The
time from subscribe to the first assignment is reported.

The migration case converts a live group online: two classic members (cooperative-sticky) share
the partitions; a member of the new protocol joins, the group becomes a consumer group and the
three share them; it leaves, the group is classic again and the two take everything back;
commits survive both conversions.

Usage: kip848_clients.py BOOTSTRAP
"""
import sys
import time
import traceback
import uuid

BOOT = sys.argv[1]
PARTITIONS = 6
RECORDS = 60


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def expect(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


class Member:
    """One consumer with its rebalance history (assign/revoke callbacks)."""

    def __init__(self, mid, group, topic, log, protocol="consumer"):
        from confluent_kafka import Consumer
        self.mid, self.log = mid, log
        self.owned = set()
        self.revoked = []
        self.first_assignment = None
        conf = {"bootstrap.servers": BOOT, "group.id": group, "group.protocol": protocol,
                "auto.offset.reset": "earliest", "enable.auto.commit": False}
        if protocol == "classic":
            conf.update({"partition.assignment.strategy": "cooperative-sticky",
                         "heartbeat.interval.ms": 500})
        self.c = Consumer(conf)
        self.subscribed_at = time.time()
        self.c.subscribe([topic], on_assign=self.on_assign, on_revoke=self.on_revoke)

    def on_assign(self, _c, parts):
        if parts and self.first_assignment is None:
            self.first_assignment = time.time() - self.subscribed_at
        self.owned |= {p.partition for p in parts}
        self.log.append((self.mid, "assign", sorted(p.partition for p in parts)))

    def on_revoke(self, _c, parts):
        gone = {p.partition for p in parts}
        self.revoked.append(gone)
        self.owned -= gone
        self.log.append((self.mid, "revoke", sorted(gone)))

    def poll(self, seen):
        m = self.c.poll(0.1)
        if m is not None and not m.error():
            seen[(m.partition(), m.offset())] = self.mid
            try:
                self.c.commit(m, asynchronous=False)
            except Exception as e:  # noqa: BLE001 - a classic member mid-rebalance
                self.log.append((self.mid, "commit refused", str(e), time.strftime("%H:%M:%S")))
                from confluent_kafka import TopicPartition
                # read again, and committed then
                self.c.seek(TopicPartition(m.topic(), m.partition(), m.offset()))


def settle(members, seen, want_total, timeout, extra=lambda: True):
    """Polls every member until each holds a share and together they hold every partition."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for m in members:
            m.poll(seen)
        owned = [m.owned for m in members]
        union = set().union(*owned)
        disjoint = sum(len(o) for o in owned) == len(union)
        if all(owned) and disjoint and len(union) == want_total and extra():
            return
    raise AssertionError(f"the group did not settle: {[sorted(m.owned) for m in members]}")


def seeded(topic):
    """A new topic of PARTITIONS partitions holding RECORDS records: (admin, producer)."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": BOOT})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    p = Producer({"bootstrap.servers": BOOT})
    for i in range(RECORDS):
        p.produce(topic, value=f"v{i}".encode(), partition=i % PARTITIONS)
    p.flush(30)
    return admin, p


def drain_then_resume(members, seen, p, topic, group, protocol="consumer"):
    """Reads the rest of the records, closes the members, and checks that commits survive: a
    new member reads only what comes after them."""
    deadline = time.time() + 30
    while len(seen) < RECORDS and time.time() < deadline:
        for m in members:
            m.poll(seen)
    expect(len(seen), RECORDS, "records consumed by the group")
    for m in members:
        m.c.close()
    p.produce(topic, value=b"late", partition=0)
    p.flush(30)
    late = Member("late", group, topic, [], protocol)
    got, deadline = [], time.time() + 30
    while time.time() < deadline and not got:
        m = late.c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value())
    late.c.close()
    expect(got, [b"late"], "a new member resumes from the commits")


def group_case():
    topic, group = name("kip848"), name("g848")
    _, p = seeded(topic)
    log, seen = [], {}
    members = [Member(f"m{i}", group, topic, log) for i in range(3)]
    settle(members, seen, PARTITIONS, 60)
    first = max(m.first_assignment for m in members)
    before = {m.mid: set(m.owned) for m in members}
    for m in members:
        m.revoked.clear()
    # a fourth member: it gets partitions, the others give up only what moves to it
    fourth = Member("m3", group, topic, log)
    members.append(fourth)
    settle(members, seen, PARTITIONS, 60)
    fourth_first = fourth.first_assignment
    for m in members[:3]:
        gave = set().union(*m.revoked) if m.revoked else set()
        kept = before[m.mid] - gave
        if not gave <= before[m.mid]:
            raise AssertionError(f"{m.mid} revoked partitions it did not own: {gave}")
        if kept != before[m.mid] & m.owned:
            raise AssertionError(f"{m.mid} lost partitions it kept: {log}")
        moved = before[m.mid] - m.owned
        if gave != moved:
            raise AssertionError(f"{m.mid} revoked {gave} but only {moved} moved: {log}")
    if sum(len(set().union(*m.revoked)) if m.revoked else 0 for m in members[:3]) == 0:
        raise AssertionError(f"nothing moved to the fourth member: {log}")
    # one leaves; the other three take its partitions
    leaving = members.pop(0)
    leaving.c.close()
    settle(members, seen, PARTITIONS, 60)
    drain_then_resume(members, seen, p, topic, group)
    print(f"# kip848 confluent-kafka: first assignment {first:.2f} s after subscribe "
          f"(fourth member {fourth_first:.2f} s)", file=sys.stderr)


def group_type(admin, group):
    for g in admin.list_consumer_groups().result(30).valid:
        if g.group_id == group:
            return str(g.type).rsplit(".", 1)[-1]
    return None


def migration_case():
    topic, group = name("migrate"), name("gmig")
    admin, p = seeded(topic)
    log, seen = [], {}
    members = [Member(f"classic{i}", group, topic, log, "classic") for i in range(2)]
    settle(members, seen, PARTITIONS, 60)
    expect(group_type(admin, group), "CLASSIC", "group type before")
    # a member of the new protocol joins the live classic group: it converts
    modern = Member("modern", group, topic, log)
    members.append(modern)
    settle(members, seen, PARTITIONS, 60, lambda: group_type(admin, group) == "CONSUMER")
    # it leaves: the group is classic again and the two take everything back
    members.remove(modern)
    modern.c.close()
    settle(members, seen, PARTITIONS, 60, lambda: group_type(admin, group) == "CLASSIC")
    drain_then_resume(members, seen, p, topic, group, "classic")
    refused = [e for e in log if e[1] == "commit refused"]
    if refused:
        print(f"# kip848 migration: {len(refused)} commits refused mid-rebalance, e.g. {refused[0]}",
              file=sys.stderr)


def main():
    results = []
    for client, capability, fn in [
        ("confluent-kafka", "consumer group, KIP-848 protocol (4 members, incremental, leave, commits)",
         group_case),
        ("confluent-kafka", "consumer group, online conversion classic -> consumer -> classic (live members, commits)",
         migration_case),
    ]:
        try:
            fn()
            results.append(f"PASS {client:16} {capability}")
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            traceback.print_exc(file=sys.stderr)
            detail = f"{type(e).__name__}: {e}".replace("\n", " ")[:300]
            results.append(f"FAIL {client:16} {capability}  -- {detail}")
    for r in results:
        print(r)
    sys.exit(1 if any(r.startswith("FAIL") for r in results) else 0)


if __name__ == "__main__":
    main()
