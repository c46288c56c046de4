#!/usr/bin/env python3
"""Runs librdkafka's test suite for integration/librdkafka.sh (which sets the LRK_* environment
and starts the brokers): see that script for the rules a result follows."""
import os, re, subprocess, sys, time, platform, datetime

MODE = os.environ["LRK_MODE"]
SRC = os.environ["LRK_SRC"]
WORK = os.environ["LRK_WORK"]
ROOT = os.environ["LRK_ROOT"]
TESTS_DIR = os.path.join(SRC, "tests")
TIMEOUT = int(os.environ.get("LRK_TEST_TIMEOUT", "900"))  # seconds per test
# LRK_SECURITY=sasl_ssl: the brokers' only listener is SASL_SSL (SCRAM-SHA-512)
SECURITY = os.environ.get("LRK_SECURITY", "")
GROUP_PROTOCOL = os.environ.get("LRK_GROUP_PROTOCOL", "")
RESULTS = "librdkafka-results%s%s.txt" % ("-" + SECURITY if SECURITY else "",
                                         "-" + GROUP_PROTOCOL if GROUP_PROTOCOL else "")
SECURITY_NOTE = ("clients over SASL_SSL with SCRAM-SHA-512" if SECURITY == "sasl_ssl"
                 else "clients over PLAINTEXT") + (
                     "; consumers with group.protocol=%s" % GROUP_PROTOCOL if GROUP_PROTOCOL else "")
KAFKA_VERSION = "4.0.0"
# -L: only tests that need a broker; -K: not the tests librdkafka flags TEST_F_KNOWN_ISSUE
# (reported as SKIP with the runner's reason); -p1: one test at a time. No -Q, no -E: the socket
# emulation (sockem) tests run, against the broker.
FLAGS = ["-p1", "-L", "-K"]

# Tests that cannot apply to this broker, and why (reported, not run).
EXCLUDED = {
    "0052_msg_timestamps": "creates its topics with Kafka's kafka-topics.sh (needs a Kafka installation)",
    "0077_compaction": "creates its topics with Kafka's kafka-topics.sh (needs a Kafka installation)",
    "0045_subscribe_update_topic_remove": "deletes its topics with Kafka's kafka-topics.sh (needs a Kafka installation)",
    "0045_subscribe_update_non_exist_and_partchange": "adds partitions with Kafka's kafka-topics.sh (needs a Kafka installation)",
    "0115_producer_auth": "denies a topic with Kafka's kafka-acls.sh (needs an authorizer; ACL APIs are not served)",
    "0119_consumer_auth": "denies topics and groups with Kafka's kafka-acls.sh (needs an authorizer; ACL APIs are not served)",
    "0098_consumer_txn": "every case creates its topic with replication factor 3 (a three-broker cluster; a one-broker Kafka refuses it too): runs against the three-node cluster",
    "0101_fetch_from_follower": "creates its topic with replication factor 3 and reads from a follower (a three-broker cluster with racks): runs against the three-node cluster",
    "0107_topic_recreate": "creates its topic with replication factor 3 (a three-broker cluster; a one-broker Kafka refuses it too): runs against the three-node cluster",
    "0111_delay_create_topics": "creates its topic with replication factor 3 (a three-broker cluster; a one-broker Kafka refuses it too): runs against the three-node cluster",
}
# Not broker tests although not flagged TEST_F_LOCAL: they only talk to librdkafka's mock cluster.
MOCK_ONLY = {
    "0068_produce_timeout": "runs against librdkafka's mock cluster only",
    "0139_offset_validation_mock": "runs against librdkafka's mock cluster only",
    "0150_telemetry_mock": "runs against librdkafka's mock cluster only",
}
RF3 = "creates its topics with replication factor 3 (a three-broker cluster; a one-broker Kafka refuses them too): run against the three-node cluster"
# Tests run sub-test by sub-test: the runner's SUBTESTS is one substring matched against
# "<function>:<line>: <description>", so each sub-test function of the source that is not left
# out runs in its own runner process with SUBTESTS="<function>:".
SUBTEST_RUNS = {
    "0081_admin": ("0081-admin.c", {
    }),
    "0103_transactions": ("0103-transactions.c", {
        "do_test_basic_producer_txn": RF3, "do_test_consumer_producer_txn": RF3,
        "do_test_fatal_idempo_error_without_kip360": RF3, "do_test_empty_txn": RF3,
        "do_test_wmark_isolation_level": RF3, "do_test_txn_abort_control_message_leader_epoch": RF3,
        "do_test_txn_local": "belongs to 0103_transactions_local, which needs no broker",
    }),
}
# Tests run again against a three-node cluster (etcd, a shared bucket; librdkafka.sh starts one
# per scenario when etcd is installed): those that need several brokers or replication factor 3, and
# metadata, produce and idempotence tests with partitions led by different nodes. A value names
# the sub-test functions left out, as in SUBTEST_RUNS.
CLUSTER = {
    "0098_consumer_txn": None,
    "0101_fetch_from_follower": None,
    "0103_transactions": ("0103-transactions.c", {
        "do_test_txn_local": "belongs to 0103_transactions_local, which needs no broker"}),
    "0107_topic_recreate": None,
    "0111_delay_create_topics": None,
    "0001_multiobj": None,
    "0002_unkpart": None,
    "0044_partition_cnt": None,
    "0063_clusterid": None,
    "0090_idempotence": None,
}
# Tests whose checks only print their failure (0101's test_assert says the message and goes on):
# any of these lines in the output makes the test FAIL whatever the runner concluded.
SAID_FAILURES = {
    "0101_fetch_from_follower": [
        "expecting three replicas", "Failed to acquire metadata", "message consumed out of order",
        "expecting message value size", "rxbytes was not highest",
        "expecting rxbytes of client.rack broker", "Expected success, not",
    ],
}
# Tests run with a different environment, and why.
ENV_RUNS = {
    # 0109 has no SUB_TEST()s: it runs its four unauthorized-topic variants only when the broker
    # version is >= 2.1 (where it expects kafka-acls.sh). Telling it 2.0.0 leaves exactly those out;
    # nothing else in the test or its helpers changes between 2.0.0 and 4.0.0.
    "0109_auto_create_topics": ({"TEST_KAFKA_VERSION": "2.0.0"},
        "the 4 test_unauthorized_topic=true variants left out (they deny a topic with kafka-acls.sh: "
        "need an authorizer); the 4 auto-create variants ran (TEST_KAFKA_VERSION=2.0.0 for this test only)"),
}
# CI set: whole test numbers (the runner selects tests by number), each run in full; about
# three minutes on two cores.
QUICK = """0001_multiobj 0002_unkpart 0003_msgmaxsize 0005_order 0007_autotopic 0008_reqacks
0011_produce_batch 0012_produce_consume 0013_null_msgs 0014_reconsume_191 0015_offsets_seek
0017_compression 0019_list_groups 0021_rkt_destroy 0029_assign_offset 0030_offset_commit
0031_get_offsets 0034_offset_reset 0035_api_version 0036_partial_fetch 0041_fetch_max_bytes 0044_partition_cnt 0048_partitioner
0054_offset_time 0057_invalid_topic 0060_op_prio 0063_clusterid 0067_empty_topic 0070_null_empty
0073_headers 0085_headers 0090_idempotence 0099_commit_metadata 0129_fetch_aborted_msgs
0130_store_offsets""".split()

# LRK_ONLY="0081_admin ...": quick mode runs these tests instead of the QUICK set, and no cluster.
ONLY = os.environ.get("LRK_ONLY", "").split()
if ONLY:
    QUICK = ONLY

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def table():
    """The runner's tests[] table: [(name, flags text)] in order. Each _TEST(...) entry is read
    to its balanced closing parenthesis: entries span lines and nest calls (TEST_BRKVER(...))."""
    t = open(os.path.join(TESTS_DIR, "test.c")).read()
    t = t[t.index("struct test tests[]"):]
    out = []
    for m in re.finditer(r"\b_TEST\(\s*([0-9a-z_]+)\s*,", t):
        depth, i = 1, m.end()
        while depth and i < len(t):
            depth += {"(": 1, ")": -1}.get(t[i], 0)
            i += 1
        out.append((m.group(1), " ".join(t[m.end():i - 1].split())))
    return out


def subtest_functions(path):
    """Names of the functions of a test source that start a sub-test (SUB_TEST*())."""
    s = open(os.path.join(TESTS_DIR, path)).read()
    defs = [(m.start(), m.group(1)) for m in re.finditer(
        r"^(?:static\s+)?(?:void|int|rd_bool_t)\s*\n?\s*([A-Za-z_]\w*)\s*\([^;{]*\)\s*\{", s, re.M)]
    out = []
    for i, (pos, name) in enumerate(defs):
        end = defs[i + 1][0] if i + 1 < len(defs) else len(s)
        if re.search(r"\bSUB_TEST(0|_QUICK)?\s*\(", s[pos:end]):
            out.append(name)
    return out


def run(label, number, names, conf, scenario, env_extra=None, subtests=None):
    """One runner process for test number `number`; returns {name: (state, detail, secs, subs)}."""
    env = dict(os.environ, LD_LIBRARY_PATH="../src:../src-cpp", RDKAFKA_TEST_CONF=conf,
               TEST_KAFKA_VERSION=KAFKA_VERSION)
    env.pop("SUBTESTS", None); env.pop("TESTS", None)
    if subtests:
        env["SUBTESTS"] = subtests
    env.update(env_extra or {})
    cmd = ["./test-runner", *FLAGS, "-s", scenario, number]
    log = os.path.join(WORK, label.replace(":", "_") + ".log")
    limit = TIMEOUT * len(names)
    t0 = time.time()
    with open(log, "wb") as f:
        p = subprocess.Popen(cmd, cwd=TESTS_DIR, env=env, stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            rc = p.wait(timeout=limit); timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9); p.wait(); rc = -9; timed_out = True
    wall = time.time() - t0
    text = ANSI.sub("", open(log, "rb").read().decode("utf-8", "replace"))
    res = {}
    failed_here = False
    for n in names:
        e = re.escape(n)
        passed = re.search(r"=+ Test %s PASSED =+" % e, text)
        skipped = re.search(r"=+ Test %s SKIPPED =+" % e, text)
        started = re.search(r"=+ Running test %s =+" % e, text)
        failed = (re.search(r"=+ Test %s FAILED =+" % e, text)
                  or re.search(r'### Test "%s[ "]' % e, text)
                  or re.search(r"^\|\s*%s\s*\|\s*FAILED\s*\|" % e, text, re.M))
        row = re.search(r"^\|\s*%s\s*\|\s*(\w+)\s*\|\s*([0-9.]+)s\s*\|\s*(.*)$" % e, text, re.M)
        skip_why = re.findall(r"\[%s */ *[0-9.]+s\] WARN: SKIPPING TEST: (.*)" % e, text)
        subs_pass = re.findall(r"\[%s */ *[0-9.]+s\] \[ (.*): PASS \([0-9.]+s\) \]" % e, text)
        subs_skip = re.findall(r"\[%s */ *[0-9.]+s\] \[ (.*): SKIP: (.*) \]" % e, text)
        secs = float(row.group(2)) if row else None
        subs = (subs_pass, subs_skip)
        if failed:
            why = (row.group(3).strip() if row and row.group(3).strip() else "")
            m = re.search(r'### Test "%s[^\n]*###\n([^\n]*)' % e, text)
            if not why and m:
                why = m.group(1).strip()
            res[n] = ("FAIL", why or "FAILED", secs, subs); failed_here = True
        elif timed_out and not passed and not skipped and not (skip_why and not started):
            res[n] = ("FAIL", "no result after %ds: killed (hang)" % limit if started
                      else "not started within %ds: killed" % limit, secs, subs); failed_here = True
        elif passed and any(m in text for m in SAID_FAILURES.get(n, [])):
            said = next(m for m in SAID_FAILURES[n] if m in text)
            res[n] = ("FAIL", "PASSED, but it printed a failed check: %s" % said, secs, subs); failed_here = True
        elif passed:
            res[n] = ("PASS", "", secs, subs)
        elif skip_why or skipped:
            res[n] = ("SKIP", skip_why[0].strip() if skip_why else "skipped by the runner", secs, subs)
        elif started:
            res[n] = ("FAIL", "started but no result line (runner exit %d)" % rc, secs, subs); failed_here = True
        else:
            res[n] = ("SKIP", "not run by the runner, no reason printed", secs, subs)
    if rc != 0 and not failed_here:
        # a non-zero exit that no test claims: no test of this process may pass
        for n, (st, why, secs, subs) in res.items():
            if st == "PASS":
                res[n] = ("FAIL", "Test %s PASSED but the runner exited %d" % (n, rc), secs, subs)
    return res, wall, log


def run_subtests(special, number, group, conf, scenario, path, left_out, label_prefix=""):
    """Runs each sub-test function of `special` not in `left_out` in its own runner process;
    returns (result line, PASS/FAIL)."""
    funcs = subtest_functions(path)
    stale = [f for f in left_out if f not in funcs]
    if stale:
        sys.exit("%s: left-out sub-tests not in %s: %s" % (special, path, stale))
    ran, bad, secs, n_pass, own_skips = [], [], 0.0, 0, []
    for f in funcs:
        if f in left_out:
            continue
        res, wall, log = run("%s%s:%s" % (label_prefix, special, f), number, group, conf, scenario, subtests=f + ":")
        st, why, s, (sp, ss) = res[special]
        secs += s if s is not None else wall
        n_pass += len(sp); own_skips += ["%s: %s" % (a.split(":")[0], b) for a, b in ss]
        if st == "PASS" and not sp and not ss:
            st, why = "FAIL", "SUBTESTS=%s: matched no sub-test" % f
        if st != "PASS":
            bad.append("%s %s: %s" % (st, f, why))
            print("  %s %s [%s] %s (log %s)" % (st, special, f, why, log), flush=True)
        ran.append(f)
    by_reason = {}
    for f, why in left_out.items():
        by_reason.setdefault(why, []).append(f)
    out = "; ".join("%s: %s" % (", ".join(fs), why) for why, fs in by_reason.items())
    detail = "(%.0fs; %d sub-test runs passed in %d functions: %s; left out: %s%s)" % (
        secs, n_pass, len(ran), ", ".join(ran), out or "none",
        "; skipped by the test itself: " + "; ".join(sorted(set(own_skips))) if own_skips else "")
    if bad:
        return "FAIL %s %s %s" % (special, " | ".join(bad), detail), "FAIL"
    return "PASS %s %s" % (special, detail), "PASS"


def main():
    entries = table()
    names = [n for n, _ in entries]
    quick = set(QUICK)
    missing = quick - set(names)
    if missing:
        sys.exit("QUICK names not in this librdkafka: %s" % " ".join(sorted(missing)))
    lines = {}        # name -> result line
    counted = {}      # name -> PASS/FAIL/SKIP/EXCLUDED, or None (not a broker test)
    partial = set()
    plan = []         # (number, [names], scenario)
    by_number = {}
    for name, fl in entries:
        if (MODE == "quick" and name not in quick) or MODE == "cluster":
            continue
        if "TEST_F_LOCAL" in fl:
            lines[name] = "SKIP %s (local: TEST_F_LOCAL, no broker)" % name; counted[name] = None; continue
        if "TEST_F_MANUAL" in fl:
            lines[name] = "SKIP %s (manual test)" % name; counted[name] = None; continue
        if name in MOCK_ONLY:
            lines[name] = "SKIP %s (mock: %s)" % (name, MOCK_ONLY[name]); counted[name] = None; continue
        if name in EXCLUDED:
            lines[name] = "EXCLUDED %s: %s" % (name, EXCLUDED[name]); counted[name] = "EXCLUDED"; continue
        m = re.search(r'\.scenario\s*=\s*"([^"]+)"', fl)
        # a test may name several scenarios ("default,ak23"): run it in the default one if listed
        scenarios = m.group(1).split(",") if m else ["default"]
        scenario = "default" if "default" in scenarios else scenarios[0]
        key = (name.split("_")[0], scenario, name if (name in SUBTEST_RUNS or name in ENV_RUNS) else "")
        if key not in by_number:
            by_number[key] = []; plan.append(key)
        by_number[key].append(name)

    confs = {"default": os.path.join(WORK, "default.conf"),
             "noautocreate": os.path.join(WORK, "noautocreate.conf")}
    t_all = time.time()
    for key in plan:
        number, scenario, special = key
        group = by_number[key]
        conf = confs.get(scenario)
        if conf is None:
            for n in group:
                lines[n] = "SKIP %s (needs test scenario %s, not set up here)" % (n, scenario); counted[n] = "SKIP"
            continue
        if special in SUBTEST_RUNS:
            path, left_out = SUBTEST_RUNS[special]
            lines[special], counted[special] = run_subtests(special, number, group, conf, scenario, path, left_out)
            partial.add(special)
            print(lines[special], flush=True)
            continue
        env_extra, note = ENV_RUNS.get(special, ({}, ""))
        label = number + (("_" + special) if special else "") + (
            "" if scenario == "default" else "_" + scenario)
        res, wall, log = run(label, number, group, conf, scenario, env_extra=env_extra)
        for n in group:
            st, why, s, (sp, ss) = res[n]
            extra = []
            if s is not None:
                extra.append("%.1fs" % s)
            if sp or ss:
                extra.append("%d sub-tests passed" % len(sp))
            if ss:
                extra.append("%d skipped by the test itself: %s" % (
                    len(ss), "; ".join(sorted(set("%s: %s" % (a.split(":")[0], b) for a, b in ss)))))
            if note:
                extra.append(note); partial.add(n)
            if scenario != "default":
                extra.append("scenario %s, broker with auto-create off" % scenario)
            ex = " (%s)" % "; ".join(extra) if extra else ""
            if st == "PASS":
                lines[n] = "PASS %s%s" % (n, ex)
            elif st == "SKIP":
                why2 = why
                if why.startswith("Filtered due to negative test flags"):
                    why2 = why + " (-K: librdkafka flags it TEST_F_KNOWN_ISSUE)"
                lines[n] = "SKIP %s: %s" % (n, why2)
            else:
                lines[n] = "FAIL %s: %s%s (log: %s)" % (n, why, ex, log)
            counted[n] = st
            print(lines[n], flush=True)
    cluster_conf = os.path.join(WORK, "cluster.conf")
    cluster_names = []
    if os.path.exists(cluster_conf) and not ONLY:
        missing = set(CLUSTER) - set(names)
        if missing:
            sys.exit("CLUSTER names not in this librdkafka: %s" % " ".join(sorted(missing)))
        for name, sub in CLUSTER.items():
            number = name.split("_")[0]
            key = "cluster:" + name
            fl = dict(entries)[name]
            m = re.search(r'\.scenario\s*=\s*"([^"]+)"', fl)
            scenario = "noautocreate" if m and "noautocreate" in m.group(1) else "default"
            conf = cluster_conf if scenario == "default" else os.path.join(WORK, "cluster-noautocreate.conf")
            if sub:
                line, st = run_subtests(name, number, [name], conf, scenario, sub[0], sub[1],
                                        label_prefix="cluster_")
            else:
                res, wall, log = run("cluster_" + name, number, [name], conf, scenario)
                st, why, secs, (sp, ss) = res[name]
                extra = ("%.1fs" % secs if secs is not None else "") + (
                    ", %d sub-tests passed" % len(sp) if sp else "")
                line = {"PASS": "PASS %s (%s)" % (name, extra),
                        "SKIP": "SKIP %s: %s" % (name, why)}.get(st, "FAIL %s: %s (log: %s)" % (name, why, log))
            lines[key] = line.replace(name, name + " [3-node cluster]", 1)
            counted[key] = st
            cluster_names.append(key)
            print(lines[key], flush=True)
    else:
        why = ("over SASL_SSL the cluster is left out: its nodes reach each other over PLAINTEXT"
               if SECURITY else "LRK_ONLY names the tests" if ONLY else "etcd or java is not installed")
        print("no three-node cluster (%s): the CLUSTER tests did not run" % why, flush=True)
    dur = time.time() - t_all

    c = {k: sum(1 for v in counted.values() if v == k) for k in ("PASS", "FAIL", "SKIP", "EXCLUDED")}
    nb = sum(1 for v in counted.values() if v is None)
    ppart = sum(1 for n in partial if counted.get(n) == "PASS")
    ran = c["PASS"] + c["FAIL"]
    summary = ("librdkafka %s: %d pass (%d of them with sub-tests left out), %d fail, %d skipped by the "
               "runner, %d excluded; %s of the tests that ran pass; %d local/mock/manual tests not "
               "counted; %dm%02ds" % (MODE, c["PASS"], ppart, c["FAIL"], c["SKIP"], c["EXCLUDED"],
               ("%d/%d" % (c["PASS"], ran)) if ran else "n/a", nb, dur // 60, dur % 60))
    if MODE == "full":
        ver = open(os.path.join(SRC, "src", "rdkafka.h")).read()
        v = int(re.search(r"#define RD_KAFKA_VERSION\s+0x([0-9a-fA-F]+)", ver).group(1), 16)
        head = [
            "# integration/librdkafka.sh full: librdkafka's own test suite against Tiercel",
            "# commit %s, %s" % (os.environ["LRK_COMMIT"], datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
            "# librdkafka %d.%d.%d test suite (rdkafka-sys %s); TEST_KAFKA_VERSION=%s; one broker, num_partitions=4; %s"
            % (v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, os.environ["LRK_RDKAFKA_SYS"], KAFKA_VERSION,
               SECURITY_NOTE),
            "# runner flags: %s (no -Q: every test runs all its sub-tests); per-test timeout %ds"
            % (" ".join(FLAGS), TIMEOUT),
            "# machine: nproc %d, Linux %s" % (os.cpu_count(), platform.release()),
            "# " + summary,
            "# PASS: the runner printed \"Test <name> PASSED\" and exited 0. SKIP: the runner's reason",
            "# (\"SKIPPING TEST: ...\"), or a test that needs no broker (local, mock cluster, manual; not",
            "# counted). EXCLUDED: not run, for the reason given. Sub-test lists: see the PASS/FAIL lines.",
        ]
        with open(os.path.join(ROOT, "integration", RESULTS), "w") as f:
            f.write("\n".join(head + [lines[n] for n in names if n in lines]
                              + [lines[n] for n in cluster_names]) + "\n")
    print(summary)
    sys.exit(1 if c["FAIL"] else 0)


main()
