"""Unit tests of the bin-packing policy, under plain CPython:

    python3 -m unittest            # from this directory

The policy (`app.Policy`) reads the WIT records by attribute, so the tests build them with
the generated `wit_world` bindings when those are importable and otherwise with mirror
dataclasses of the same shape. The adapter (`app.SchedulerPlugin`) is tested only with the
bindings; build.sh generates them and runs these tests both ways before building.
"""

from __future__ import annotations

import enum
import json
import unittest
from dataclasses import dataclass
from typing import List, Optional, Tuple

import app

try:
    from componentize_py_types import Err
    from wit_world.exports import scheduler_plugin as wit

    HAVE_BINDINGS = True
except ModuleNotFoundError:
    HAVE_BINDINGS = False

    class wit:  # noqa: N801 - mirrors the generated module's names
        """Mirror of the records of `wit_world.exports.scheduler_plugin`."""

        @dataclass
        class Label:
            key: str
            value: str

        @dataclass
        class Resources:
            milli_cpu: int
            memory: int
            ephemeral_storage: int
            pods: int
            scalar: List[Tuple[str, int]]

        class TaintEffect(enum.Enum):
            NO_SCHEDULE = 0
            PREFER_NO_SCHEDULE = 1
            NO_EXECUTE = 2

        @dataclass
        class Taint:
            key: str
            value: str
            effect: "wit.TaintEffect"

        @dataclass
        class Toleration:
            key: str
            exists: bool
            value: str
            effect: Optional["wit.TaintEffect"]

        @dataclass
        class HostPort:
            port: int
            protocol: str
            host_ip: str

        @dataclass
        class NodeInfo:
            name: str
            labels: list
            allocatable: "wit.Resources"
            taints: list
            unschedulable: bool

        @dataclass
        class PodInfo:
            uid: str
            namespace: str
            name: str
            labels: list
            requests: "wit.Resources"
            score_requests: "wit.Resources"
            host_ports: list
            owner_uid: Optional[str]
            node_name: Optional[str]
            node_selector: list
            tolerations: list
            affinity: Optional[str]
            topology_spread_constraints: Optional[str]
            priority: int


Effect = wit.TaintEffect
MI = 1024 * 1024
GI = 1024 * MI


def node(name, cpu=1000, memory=1 * GI, storage=10 * GI, pods=110, labels=None, taints=(),
         unschedulable=False, scalar=()):
    return wit.NodeInfo(
        name=name,
        labels=[wit.Label(k, v) for k, v in (labels or {}).items()],
        allocatable=wit.Resources(cpu, memory, storage, pods, list(scalar)),
        taints=[wit.Taint(k, v, e) for k, v, e in taints],
        unschedulable=unschedulable,
    )


def pod(uid, cpu=0, memory=0, storage=0, node_name=None, selector=None, tolerations=(),
        ports=(), affinity=None, tsc=None, scalar=(), score_cpu=None, score_memory=None):
    requests = wit.Resources(cpu, memory, storage, 1, list(scalar))
    score = wit.Resources(
        cpu if score_cpu is None else score_cpu,
        memory if score_memory is None else score_memory,
        storage, 1, list(scalar),
    )
    return wit.PodInfo(
        uid=uid, namespace="default", name=uid, labels=[], requests=requests,
        score_requests=score,
        host_ports=[wit.HostPort(p, proto, ip) for p, proto, ip in ports],
        owner_uid=None, node_name=node_name,
        node_selector=[wit.Label(k, v) for k, v in (selector or {}).items()],
        tolerations=list(tolerations),
        affinity=None if affinity is None else json.dumps(affinity),
        topology_spread_constraints=None if tsc is None else json.dumps(tsc),
        priority=0,
    )


def tol(key="", exists=False, value="", effect=None):
    return wit.Toleration(key=key, exists=exists, value=value, effect=effect)


def required_affinity(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": list(t)} for t in terms]}}}


def expr(key, operator, *values):
    return {"key": key, "operator": operator, "values": list(values)}


class PolicyTest(unittest.TestCase):
    def setUp(self):
        self.p = app.Policy()
        self.p.init("null")

    def nodes(self, *infos):
        for info in infos:
            self.p.set_node(info)

    def placed(self, uid, node_name, **kw):
        self.p.set_pod(pod(uid, node_name=node_name, **kw))

    def one(self, p):
        return self.p.schedule([p])[0]

    def assert_unschedulable(self, decision, *reasons):
        self.assertEqual(decision, ("unschedulable", sorted(reasons)))

    # -- packing -------------------------------------------------------------------------

    def test_packs_onto_one_node_until_full_then_the_next(self):
        self.nodes(node("n1"), node("n2"), node("n3"))
        batch = [pod(f"p{i}", cpu=300, memory=100 * MI) for i in range(5)]
        decisions = self.p.schedule(batch)
        self.assertEqual(
            decisions,
            [("node", "n1"), ("node", "n1"), ("node", "n1"), ("node", "n2"), ("node", "n2")],
        )
        # The assumed pods count: n1 has 100m left, so a 200m pod goes to n2.
        self.assertEqual(self.one(pod("p5", cpu=200)), ("node", "n2"))
        self.assertEqual(self.one(pod("p6", cpu=100)), ("node", "n1"))

    def test_prefers_the_fullest_node_over_name_order(self):
        self.nodes(node("a"), node("b"), node("c"))
        self.placed("x", "c", cpu=500, memory=512 * MI)
        self.placed("y", "b", cpu=100, memory=100 * MI)
        self.assertEqual(self.one(pod("new", cpu=100, memory=100 * MI)), ("node", "c"))

    def test_score_averages_cpu_and_memory_relative_to_allocatable(self):
        self.nodes(node("big", cpu=2000, memory=10 * GI), node("small", cpu=10000, memory=1000 * MI))
        self.placed("b", "big", cpu=900)
        self.placed("s", "small", cpu=900, memory=400 * MI)

        def score(name, p):
            scored, weight_sum = self.p._scored(app.amounts(p.score_requests))
            return self.p._score(self.p.nodes[name], self.p.usage[name], scored, weight_sum)

        # With a 100m pod: big is 50% cpu, 0% memory; small 10% cpu, 40% memory: both 25.
        cpu_only = pod("new", cpu=100)
        self.assertEqual(score("big", cpu_only), 25.0)
        self.assertEqual(score("small", cpu_only), 25.0)
        # A tie goes to the name that sorts first ...
        self.assertEqual(self.one(cpu_only), ("node", "big"))
        self.p.remove_pod("new")
        # ... and 10 MiB more memory weighs more on small (41%) than on big (0.1%).
        with_memory = pod("new", cpu=100, memory=10 * MI)
        self.assertAlmostEqual(score("small", with_memory), 25.5)
        self.assertEqual(self.one(with_memory), ("node", "small"))

    def test_ties_go_to_the_first_name(self):
        self.nodes(node("c"), node("b"), node("a"))
        self.assertEqual(self.one(pod("p", cpu=10)), ("node", "a"))

    def test_scoring_uses_score_requests(self):
        # Pods requesting nothing count with the scoring defaults, so packing still works.
        self.nodes(node("a"), node("b"))
        self.placed("x", "b", cpu=0, score_cpu=100, score_memory=200 * MI)
        self.assertEqual(self.one(pod("p", score_cpu=100, score_memory=200 * MI)), ("node", "b"))

    def test_config_weights_change_the_score(self):
        # cpu-heavy node "a" vs memory-heavy node "b"; weighting memory picks "b".
        self.nodes(node("a"), node("b"))
        self.placed("x", "a", cpu=800)
        self.placed("y", "b", memory=700 * MI)
        self.assertEqual(self.one(pod("p1", cpu=10)), ("node", "a"))
        self.p.init(json.dumps({"resources": [{"name": "memory", "weight": 1}]}))
        self.nodes(node("a"), node("b"))
        self.placed("x", "a", cpu=800)
        self.placed("y", "b", memory=700 * MI)
        self.assertEqual(self.one(pod("p2", cpu=10)), ("node", "b"))

    # -- filters -------------------------------------------------------------------------

    def test_unschedulable_node_unless_tolerated(self):
        self.nodes(node("cordoned", unschedulable=True))
        self.assert_unschedulable(self.one(pod("p")), ("node(s) were unschedulable", 1))
        tolerating = pod("q", tolerations=[tol("node.kubernetes.io/unschedulable", exists=True,
                                               effect=Effect.NO_SCHEDULE)])
        self.assertEqual(self.one(tolerating), ("node", "cordoned"))

    def test_node_name(self):
        self.nodes(node("a"), node("b"), node("c"))
        self.assertEqual(self.one(pod("p", node_name="b")), ("node", "b"))
        self.assert_unschedulable(
            self.one(pod("q", node_name="zzz")),
            ("node(s) didn't match the requested node name", 3),
        )

    def test_taints_and_tolerations(self):
        self.nodes(
            node("gpu", taints=[("dedicated", "gpu", Effect.NO_SCHEDULE)]),
            node("evict", taints=[("maint", "", Effect.NO_EXECUTE)]),
            node("soft", taints=[("soft", "x", Effect.PREFER_NO_SCHEDULE)]),
        )
        # PreferNoSchedule does not filter.
        self.assertEqual(self.one(pod("p1", node_name="soft")), ("node", "soft"))
        self.assert_unschedulable(
            self.one(pod("p2", node_name=None, selector={"none": "none"})),
            ("node(s) didn't match Pod's node affinity/selector", 1),
            ("node(s) had untolerated taint {dedicated: gpu}", 1),
            ("node(s) had untolerated taint {maint: }", 1),
        )
        cases = [
            (tol("dedicated", value="gpu", effect=Effect.NO_SCHEDULE), True),
            (tol("dedicated", value="cpu", effect=Effect.NO_SCHEDULE), False),  # Equal: value
            (tol("dedicated", exists=True), True),  # no effect: every effect
            (tol("dedicated", exists=True, effect=Effect.NO_EXECUTE), False),  # wrong effect
            (tol("", exists=True), True),  # empty key with Exists: everything
            (tol("other", exists=True), False),
        ]
        for i, (toleration, fits) in enumerate(cases):
            with self.subTest(toleration=toleration):
                d = self.one(pod(f"t{i}", node_name="gpu", tolerations=[toleration]))
                if fits:
                    self.assertEqual(d, ("node", "gpu"))
                    self.p.remove_pod(f"t{i}")
                else:
                    self.assert_unschedulable(
                        d, ("node(s) didn't match the requested node name", 2),
                        ("node(s) had untolerated taint {dedicated: gpu}", 1))

    def test_node_selector(self):
        self.nodes(node("a", labels={"disk": "ssd"}), node("b", labels={"disk": "hdd"}), node("c"))
        self.assertEqual(self.one(pod("p", selector={"disk": "hdd"})), ("node", "b"))
        self.assert_unschedulable(
            self.one(pod("q", selector={"disk": "nvme"})),
            ("node(s) didn't match Pod's node affinity/selector", 3),
        )

    def test_required_node_affinity(self):
        self.nodes(
            node("a", labels={"zone": "z1", "disk": "ssd"}),
            node("b", labels={"zone": "z2"}),
            node("c", labels={"zone": "z3", "gen": "5"}),
        )

        def candidates(*terms):
            out = set()
            for name in ("a", "b", "c"):
                d = self.one(pod("probe", node_name=name, affinity=required_affinity(*terms)))
                if d == ("node", name):
                    out.add(name)
                    self.p.remove_pod("probe")
            return out

        self.assertEqual(candidates([expr("zone", "In", "z1", "z2")]), {"a", "b"})
        self.assertEqual(candidates([expr("zone", "NotIn", "z1")]), {"b", "c"})
        self.assertEqual(candidates([expr("missing", "NotIn", "x")]), {"a", "b", "c"})
        self.assertEqual(candidates([expr("disk", "Exists")]), {"a"})
        self.assertEqual(candidates([expr("disk", "DoesNotExist")]), {"b", "c"})
        self.assertEqual(candidates([expr("gen", "Gt", "4")]), {"c"})
        # Expressions of a term are ANDed, terms ORed.
        self.assertEqual(candidates([expr("zone", "In", "z1", "z2"), expr("disk", "Exists")]), {"a"})
        self.assertEqual(candidates([expr("disk", "Exists")], [expr("zone", "In", "z3")]), {"a", "c"})
        self.assert_unschedulable(
            self.one(pod("none", affinity=required_affinity([expr("zone", "In", "z9")]))),
            ("node(s) didn't match Pod's node affinity/selector", 3),
        )
        # Preferred terms and an affinity of `null` do not filter.
        preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [expr("zone", "In", "z9")]}}]}}
        self.assertEqual(self.one(pod("pref", affinity=preferred))[0], "node")

    def test_match_fields_metadata_name(self):
        self.nodes(node("a"), node("b"))
        affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [expr("metadata.name", "In", "b")]}]}}}
        self.assertEqual(self.one(pod("p", affinity=affinity)), ("node", "b"))

    def test_malformed_affinity_is_an_error_for_that_pod_only(self):
        self.nodes(node("a"))
        bad = pod("bad")
        bad.affinity = "{not json"
        bad_op = pod("bad-op", affinity=required_affinity([expr("zone", "Like", "z")]))
        decisions = self.p.schedule([bad, pod("ok"), bad_op])
        self.assertEqual(decisions[0][0], "error")
        self.assertIn("malformed affinity", decisions[0][1])
        self.assertEqual(decisions[1], ("node", "a"))
        self.assertEqual(decisions[2][0], "error")
        self.assertIn("'Like'", decisions[2][1])

    def test_unsupported_hard_constraints_are_errors(self):
        self.nodes(node("a"))
        anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {}, "topologyKey": "kubernetes.io/hostname"}]}}
        d = self.one(pod("anti", affinity=anti))
        self.assertEqual(d[0], "error")
        self.assertIn("podAntiAffinity", d[1])
        hard = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]
        self.assertEqual(self.one(pod("tsc", tsc=hard))[0], "error")
        soft = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}]
        self.assertEqual(self.one(pod("soft", tsc=soft)), ("node", "a"))

    def test_host_ports(self):
        self.nodes(node("a"), node("b"))
        self.placed("web", "a", ports=[(80, "TCP", "")])
        self.placed("dns", "b", ports=[(53, "UDP", "10.0.0.1")])
        # Port 80/TCP is taken on a (every address) and free on b.
        self.assertEqual(self.one(pod("p1", ports=[(80, "TCP", "10.0.0.2")])), ("node", "b"))
        # An empty protocol is TCP: a conflicts, b is taken by p1 now.
        self.assertEqual(self.one(pod("p2", ports=[(80, "", "")]))[0], "unschedulable")
        self.assert_unschedulable(
            self.one(pod("p3", ports=[(80, "TCP", "")])),
            ("node(s) didn't have free ports for the requested pod ports", 2),  # p1 took b
        )
        # Another protocol or another specific address does not conflict.
        self.assertEqual(self.one(pod("p4", ports=[(80, "UDP", ""), (53, "UDP", "10.0.0.2")],
                                     node_name="b")), ("node", "b"))
        # The wildcard address conflicts with a specific one.
        self.assert_unschedulable(
            self.one(pod("p5", ports=[(53, "UDP", "0.0.0.0")], node_name="b")),
            ("node(s) didn't have free ports for the requested pod ports", 1),
            ("node(s) didn't match the requested node name", 1),
        )
        # Removing the pod frees its port; port 0 is no host port.
        self.p.remove_pod("web")
        self.assertEqual(self.one(pod("p6", ports=[(80, "TCP", ""), (0, "TCP", "")])),
                         ("node", "a"))

    def test_insufficient_resources_counted_per_reason(self):
        self.nodes(
            node("a", cpu=1000, memory=GI),
            node("b", cpu=4000, memory=256 * MI),
            node("c", cpu=500, memory=128 * MI, storage=GI),
        )
        self.assert_unschedulable(
            self.one(pod("p", cpu=2000, memory=512 * MI, storage=2 * GI)),
            ("Insufficient cpu", 2),
            ("Insufficient ephemeral-storage", 1),
            ("Insufficient memory", 2),
        )

    def test_insufficient_counts_what_is_placed(self):
        self.nodes(node("a", cpu=1000))
        self.placed("x", "a", cpu=800)
        self.assert_unschedulable(self.one(pod("p", cpu=300)), ("Insufficient cpu", 1))
        self.assertEqual(self.one(pod("q", cpu=200)), ("node", "a"))

    def test_extended_resources(self):
        self.nodes(node("gpu", scalar=[("nvidia.com/gpu", 2)]), node("plain"))
        self.assertEqual(self.one(pod("p", scalar=[("nvidia.com/gpu", 2)])), ("node", "gpu"))
        self.assert_unschedulable(
            self.one(pod("q", scalar=[("nvidia.com/gpu", 1)])),
            ("Insufficient nvidia.com/gpu", 2),
        )

    def test_too_many_pods(self):
        self.nodes(node("a", pods=2), node("b", pods=1))
        self.placed("x", "a")
        self.placed("y", "b")
        self.assertEqual(self.one(pod("p")), ("node", "a"))
        self.assert_unschedulable(self.one(pod("q", cpu=5000)),
                                  ("Insufficient cpu", 2), ("Too many pods", 2))

    def test_first_failing_filter_wins_per_node(self):
        # A cordoned, tainted, too-small node gives only the first reason.
        self.nodes(node("a", cpu=1, unschedulable=True, taints=[("k", "v", Effect.NO_SCHEDULE)]))
        self.assert_unschedulable(self.one(pod("p", cpu=100)), ("node(s) were unschedulable", 1))

    def test_no_nodes(self):
        self.assertEqual(self.one(pod("p")), ("unschedulable", []))

    # -- state ---------------------------------------------------------------------------

    def test_pod_removed_frees_resources(self):
        self.nodes(node("a", cpu=1000))
        self.assertEqual(self.one(pod("p1", cpu=700)), ("node", "a"))
        self.assert_unschedulable(self.one(pod("p2", cpu=700)), ("Insufficient cpu", 1))
        self.p.remove_pod("p1")  # e.g. the binding failed: the host takes the assumption back
        self.assertEqual(self.one(pod("p2", cpu=700)), ("node", "a"))
        self.p.remove_pod("p2")
        self.p.remove_pod("never-seen")
        self.assertEqual(self.p.usage, {})
        self.assertEqual(self.p.pods, {})

    def test_pod_set_is_idempotent(self):
        self.nodes(node("a", cpu=1000), node("b", cpu=1000))
        for _ in range(3):
            self.placed("x", "a", cpu=600, ports=[(80, "TCP", "")])
        self.assertEqual(self.p.usage["a"].requested["cpu"], 600)
        self.assertEqual(self.p.usage["a"].pods, 1)
        # Confirming an assumed pod with pod-set does not count it twice.
        self.assertEqual(self.one(pod("y", cpu=300)), ("node", "a"))
        self.placed("y", "a", cpu=300)
        self.assertEqual(self.p.usage["a"].requested["cpu"], 900)
        self.assertEqual(self.p.usage["a"].pods, 2)
        # A pod-set with another node moves it; its old node gets everything back.
        self.placed("x", "b", cpu=600, ports=[(80, "TCP", "")])
        self.assertEqual(self.p.usage["a"].requested["cpu"], 300)
        self.assertEqual(self.p.usage["a"].ports, {})
        self.assertEqual(self.p.usage["b"].requested["cpu"], 600)
        # A pod-set without a node name drops the record.
        self.p.set_pod(pod("y", cpu=300))
        self.assertNotIn("a", self.p.usage)

    def test_node_set_keeps_pods_and_node_removed_forgets_the_node(self):
        self.nodes(node("a", cpu=1000))
        self.placed("x", "a", cpu=800)
        self.nodes(node("a", cpu=1000, labels={"new": "label"}))  # a change of the node
        self.assert_unschedulable(self.one(pod("p", cpu=300)), ("Insufficient cpu", 1))
        self.p.remove_node("a")
        self.assertEqual(self.one(pod("p", cpu=300)), ("unschedulable", []))
        # Its pods are still recorded: if it comes back, they still take their share.
        self.nodes(node("a", cpu=1000))
        self.assert_unschedulable(self.one(pod("p", cpu=300)), ("Insufficient cpu", 1))

    def test_pods_may_arrive_before_their_node(self):
        self.placed("x", "late", cpu=900)
        self.nodes(node("late", cpu=1000), node("other", cpu=1000))
        self.assertEqual(self.one(pod("p", cpu=200)), ("node", "other"))

    def test_init_resets_the_state(self):
        self.nodes(node("a"))
        self.placed("x", "a", cpu=10)
        self.p.init("{}")
        self.assertEqual((self.p.nodes, self.p.pods, self.p.usage), ({}, {}, {}))

    def test_unexpected_exception_gives_an_error_for_that_pod(self):
        self.nodes(node("a"))
        broken = pod("broken")
        broken.requests = None  # not a resources record
        decisions = self.p.schedule([broken, pod("ok")])
        self.assertEqual(decisions[0][0], "error")
        self.assertIn("internal error", decisions[0][1])
        self.assertEqual(decisions[1], ("node", "a"))


class ConfigTest(unittest.TestCase):
    def test_accepted(self):
        self.assertEqual(app.parse_config("null"), app.DEFAULT_WEIGHTS)
        self.assertEqual(app.parse_config("{}"), app.DEFAULT_WEIGHTS)
        self.assertEqual(app.parse_config(" "), app.DEFAULT_WEIGHTS)
        self.assertEqual(
            app.parse_config('{"resources": [{"name": "cpu", "weight": 2}, {"name": "nvidia.com/gpu"}]}'),
            (("cpu", 2), ("nvidia.com/gpu", 1)),
        )

    def test_rejected(self):
        for config, message in [
            ("[]", "JSON object or null"),
            ("3", "JSON object or null"),
            ('"x"', "JSON object or null"),
            ("{", "not valid JSON"),
            ('{"strategy": "x"}', "unknown config field"),
            ('{"resources": []}', "non-empty list"),
            ('{"resources": [{"name": "cpu", "weight": 0}]}', "weight"),
            ('{"resources": [{"name": "pods"}]}', "cannot be scored"),
        ]:
            with self.subTest(config=config):
                with self.assertRaises(app.ConfigError) as e:
                    app.parse_config(config)
                self.assertIn(message, str(e.exception))


@unittest.skipUnless(HAVE_BINDINGS, "needs the generated wit_world bindings (build.sh)")
class AdapterTest(unittest.TestCase):
    def setUp(self):
        self.plugin = app.SchedulerPlugin()
        self.plugin.init("null")

    def test_init_rejects_bad_config_with_err(self):
        with self.assertRaises(Err) as e:
            self.plugin.init("[1]")
        self.assertIn("JSON object or null", e.exception.value)
        self.plugin.init("{}")

    def test_update_and_schedule(self):
        self.plugin.update([
            wit.ClusterChange_NodeSet(node("a", cpu=1000)),
            wit.ClusterChange_NodeSet(node("b", cpu=1000)),
            wit.ClusterChange_PodSet(pod("x", cpu=500, node_name="b")),
            wit.ClusterChange_NodeRemoved("gone"),
            wit.ClusterChange_PodRemoved("unknown"),
        ])
        bad = pod("bad")
        bad.affinity = "nope"
        decisions = self.plugin.schedule([pod("p", cpu=400), pod("q", cpu=400), bad])
        self.assertEqual(decisions[0], wit.Decision_Node("b"))
        self.assertEqual(decisions[1], wit.Decision_Node("a"))
        self.assertIsInstance(decisions[2], wit.Decision_Error)
        self.plugin.update([wit.ClusterChange_NodeRemoved("a")])
        d = self.plugin.schedule([pod("r", cpu=400)])
        self.assertEqual(d, [wit.Decision_Unschedulable([wit.ReasonCount("Insufficient cpu", 1)])])
        self.plugin.update([wit.ClusterChange_PodRemoved("p")])
        self.assertEqual(self.plugin.schedule([pod("r", cpu=400)]), [wit.Decision_Node("b")])

    def test_a_failing_change_is_skipped(self):
        broken = node("broken")
        broken.allocatable = None
        self.plugin.update([wit.ClusterChange_NodeSet(broken),
                            wit.ClusterChange_NodeSet(node("ok"))])
        self.assertEqual(self.plugin.schedule([pod("p")]), [wit.Decision_Node("ok")])


if __name__ == "__main__":
    unittest.main()
