"""A bin-packing ("most allocated") scheduling policy: a component of the
`tugboat:plugin/scheduler@0.1.0` world, built by componentize-py (see build.sh).

Pods whose `schedulerName` is the Plugin's (`bin-packing`) are packed onto as few nodes as
possible: among the nodes that pass Kubernetes' filters, the one that would be the most
allocated (CPU and memory, averaged) once the pod is on it wins; ties go to the node whose
name sorts first.

The module has two layers:

* `Policy`, the policy itself, in plain Python. It reads its inputs by attribute (the
  records of the WIT world as componentize-py generates them: `NodeInfo`, `PodInfo`, ...)
  and returns plain tuples, so it runs and is unit tested under ordinary CPython without
  the generated bindings (test_app.py).
* `SchedulerPlugin`, the thin adapter componentize-py looks for (the exported interface
  `scheduler-plugin` -> `SchedulerPlugin`). It exists only when the `wit_world` bindings
  are importable (inside the component, or in tests given generated bindings), turns WIT
  variants into `Policy` calls and back, and makes sure no exception escapes.

The state lives in a module global (`POLICY`), not on the adapter instance: the host keeps
one instance of the component and sends the cluster to it as deltas.
"""

from __future__ import annotations

import json

try:
    from componentize_py_types import Err
    from wit_world import exports as _exports
    from wit_world.exports import scheduler_plugin as _wit
except ModuleNotFoundError as _missing:  # plain CPython: the policy without the adapter
    if _missing.name not in ("componentize_py_types", "wit_world", "wit_world.exports"):
        raise
    _wit = None

# Kubernetes' filter messages (k8s.io/kubernetes/pkg/scheduler/framework/plugins/...).
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NODE_NAME = "node(s) didn't match the requested node name"
REASON_TAINT = "node(s) had untolerated taint {{{key}: {value}}}"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_TOO_MANY_PODS = "Too many pods"
INSUFFICIENT = "Insufficient {}"

# The taint a cordoned node implicitly has (what a pod must tolerate to land on it).
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

# Effect names as the generated enum spells them (`TaintEffect.NO_SCHEDULE.name`).
NO_SCHEDULE = "NO_SCHEDULE"
NO_EXECUTE = "NO_EXECUTE"

# The standard resources and the attribute of the `resources` record holding each.
STANDARD_RESOURCES = {
    "cpu": "milli_cpu",
    "memory": "memory",
    "ephemeral-storage": "ephemeral_storage",
}

# Kubernetes' default for the MostAllocated strategy: CPU and memory, weight 1 each.
DEFAULT_WEIGHTS = (("cpu", 1), ("memory", 1))

MAX_NODE_SCORE = 100


class ConfigError(ValueError):
    """The Plugin's `spec.config` is not one this policy accepts."""


class PodError(ValueError):
    """A pod this policy cannot judge (malformed affinity, unsupported hard constraint)."""


def parse_config(text: str) -> tuple[tuple[str, int], ...]:
    """Parses `spec.config`: `null`, or an object with an optional `resources` list.

    `{"resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 2}]}` sets
    the resources scored and their weights (Kubernetes' `scoringStrategy.resources`; names
    are `cpu`, `memory`, `ephemeral-storage` or an extended resource). Returns the weights.
    An empty string counts as `null` (no config).
    """
    if not text.strip():
        return DEFAULT_WEIGHTS
    try:
        config = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"config is not valid JSON: {e}") from None
    if config is None:
        return DEFAULT_WEIGHTS
    if not isinstance(config, dict):
        raise ConfigError(
            f"config must be a JSON object or null, not {type(config).__name__}"
        )
    unknown = sorted(set(config) - {"resources"})
    if unknown:
        raise ConfigError(f"unknown config field(s): {', '.join(unknown)} (known: resources)")
    resources = config.get("resources")
    if resources is None:
        return DEFAULT_WEIGHTS
    if not isinstance(resources, list) or not resources:
        raise ConfigError("config.resources must be a non-empty list of {name, weight}")
    weights: list[tuple[str, int]] = []
    for i, entry in enumerate(resources):
        if not isinstance(entry, dict) or set(entry) - {"name", "weight"}:
            raise ConfigError(f"config.resources[{i}] must be an object with name and weight")
        name = entry.get("name")
        weight = entry.get("weight", 1)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"config.resources[{i}].name must be a non-empty string")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
            raise ConfigError(f"config.resources[{i}].weight must be an integer in 1..100")
        if name == "pods" or any(name == n for n, _ in weights):
            raise ConfigError(f"config.resources[{i}]: {name!r} cannot be scored (or is listed twice)")
        weights.append((name, weight))
    return tuple(weights)


def effect_name(effect) -> str:
    """The name of a taint effect (`NO_SCHEDULE`, `PREFER_NO_SCHEDULE`, `NO_EXECUTE`)."""
    return effect.name


def tolerates(tolerations, key: str, value: str, effect: str) -> bool:
    """Whether a toleration tolerates the taint (Kubernetes' `ToleratesTaint`)."""
    for t in tolerations:
        if t.effect is not None and effect_name(t.effect) != effect:
            continue
        if t.key and t.key != key:
            continue
        if t.exists or t.value == value:
            return True
    return False


def amounts(resources) -> dict[str, int]:
    """A `resources` record as `{name: amount}` (standard and extended, without pods)."""
    out = {name: getattr(resources, attr) for name, attr in STANDARD_RESOURCES.items()}
    for name, amount in resources.scalar:
        out[name] = out.get(name, 0) + amount
    return out


def wanted_ports(host_ports) -> list[tuple[str, int, str]]:
    """A pod's host ports as `(protocol, port, ip)`, sanitised as Kubernetes does (no
    port 0; protocol defaults to TCP; an empty address is `0.0.0.0`)."""
    out = []
    for hp in host_ports:
        if hp.port <= 0:
            continue
        out.append((hp.protocol or "TCP", hp.port, hp.host_ip or "0.0.0.0"))
    return out


# ---------------------------------------------------------------------------------------
# Node affinity


def _int_or_none(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


class _Requirement:
    """One `matchExpressions`/`matchFields` entry."""

    __slots__ = ("key", "operator", "values", "number", "field")

    def __init__(self, entry, where: str, field: bool):
        if not isinstance(entry, dict):
            raise PodError(f"{where} must be an object")
        key = entry.get("key")
        operator = entry.get("operator")
        values = entry.get("values") or []
        if not isinstance(key, str) or not key:
            raise PodError(f"{where}.key must be a non-empty string")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise PodError(f"{where}.values must be a list of strings")
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"):
            raise PodError(f"{where}.operator {operator!r} is not supported")
        if field and (key != "metadata.name" or operator not in ("In", "NotIn")):
            raise PodError(f"{where}: matchFields supports only metadata.name with In/NotIn")
        self.number = None
        if operator in ("Gt", "Lt"):
            if len(values) != 1 or _int_or_none(values[0]) is None:
                raise PodError(f"{where}: {operator} needs exactly one integer value")
            self.number = int(values[0])
        self.key, self.operator, self.values, self.field = key, operator, frozenset(values), field

    def matches(self, name: str, labels: dict) -> bool:
        op = self.operator
        if self.field:
            present, value = True, name
        else:
            present = self.key in labels
            value = labels.get(self.key)
        if op == "In":
            return present and value in self.values
        if op == "NotIn":
            return not present or value not in self.values
        if op == "Exists":
            return present
        if op == "DoesNotExist":
            return not present
        number = _int_or_none(value) if present else None
        if number is None:
            return False
        return number > self.number if op == "Gt" else number < self.number


def parse_required_node_affinity(affinity_json):
    """Parses `spec.affinity` JSON into the required node selector terms: `None` when
    there are none, else a list of terms (ORed), each a list of requirements (ANDed).

    Raises `PodError` for malformed JSON and for required inter-pod (anti-)affinity,
    which this policy cannot honour (it keeps no pod labels per topology domain)."""
    if affinity_json is None:
        return None
    try:
        affinity = json.loads(affinity_json)
    except ValueError as e:
        raise PodError(f"malformed affinity: {e}") from None
    if affinity is None:
        return None
    if not isinstance(affinity, dict):
        raise PodError("malformed affinity: not a JSON object")
    for kind in ("podAffinity", "podAntiAffinity"):
        section = affinity.get(kind)
        if isinstance(section, dict) and section.get("requiredDuringSchedulingIgnoredDuringExecution"):
            raise PodError(f"the bin-packing policy does not support required {kind}")
    node_affinity = affinity.get("nodeAffinity")
    if node_affinity is None:
        return None
    if not isinstance(node_affinity, dict):
        raise PodError("malformed affinity: nodeAffinity is not an object")
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    if not isinstance(required, dict):
        raise PodError("malformed affinity: requiredDuringSchedulingIgnoredDuringExecution is not an object")
    terms_json = required.get("nodeSelectorTerms") or []
    if not isinstance(terms_json, list):
        raise PodError("malformed affinity: nodeSelectorTerms is not a list")
    terms = []
    for i, term in enumerate(terms_json):
        where = f"nodeSelectorTerms[{i}]"
        if not isinstance(term, dict):
            raise PodError(f"malformed affinity: {where} is not an object")
        requirements = []
        for part, field in (("matchExpressions", False), ("matchFields", True)):
            entries = term.get(part) or []
            if not isinstance(entries, list):
                raise PodError(f"malformed affinity: {where}.{part} is not a list")
            for j, entry in enumerate(entries):
                try:
                    requirements.append(_Requirement(entry, f"{where}.{part}[{j}]", field))
                except PodError as e:
                    raise PodError(f"malformed affinity: {e}") from None
        # Kubernetes: a term without requirements matches no node.
        if requirements:
            terms.append(requirements)
    return terms


def check_topology_spread(tsc_json) -> None:
    """Refuses hard topology spread constraints (`whenUnsatisfiable: DoNotSchedule`),
    which a bin-packing policy cannot honour; soft ones are ignored."""
    if tsc_json is None:
        return
    try:
        constraints = json.loads(tsc_json)
    except ValueError as e:
        raise PodError(f"malformed topologySpreadConstraints: {e}") from None
    if constraints is None:
        return
    if not isinstance(constraints, list):
        raise PodError("malformed topologySpreadConstraints: not a list")
    for c in constraints:
        if isinstance(c, dict) and c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule":
            raise PodError(
                "the bin-packing policy does not support topologySpreadConstraints "
                "with whenUnsatisfiable: DoNotSchedule"
            )


# ---------------------------------------------------------------------------------------
# State


class Node:
    """A node as the policy keeps it."""

    __slots__ = ("name", "labels", "allocatable", "max_pods", "taints", "unschedulable")

    def __init__(self, info):
        self.name: str = info.name
        self.labels: dict[str, str] = {label.key: label.value for label in info.labels}
        self.allocatable: dict[str, int] = amounts(info.allocatable)
        self.max_pods: int = info.allocatable.pods
        # Only the effects the filter looks at.
        self.taints = [
            (t.key, t.value, effect_name(t.effect))
            for t in info.taints
            if effect_name(t.effect) in (NO_SCHEDULE, NO_EXECUTE)
        ]
        self.unschedulable: bool = info.unschedulable


class Usage:
    """What the placed pods of one node take: sums of requests (for fitting) and of
    score requests (for scoring), the pod count and the host ports in use."""

    __slots__ = ("requested", "score_requested", "pods", "ports")

    def __init__(self):
        self.requested: dict[str, int] = {}
        self.score_requested: dict[str, int] = {}
        self.pods = 0
        # (protocol, port) -> {ip: how many pods use it}
        self.ports: dict[tuple[str, int], dict[str, int]] = {}

    def add(self, pod: "Placed", sign: int) -> None:
        for name, amount in pod.requests.items():
            self.requested[name] = self.requested.get(name, 0) + sign * amount
        for name, amount in pod.score_requests.items():
            self.score_requested[name] = self.score_requested.get(name, 0) + sign * amount
        self.pods += sign
        for protocol, port, ip in pod.ports:
            ips = self.ports.setdefault((protocol, port), {})
            count = ips.get(ip, 0) + sign
            if count > 0:
                ips[ip] = count
            else:
                ips.pop(ip, None)
                if not ips:
                    del self.ports[(protocol, port)]

    def empty(self) -> bool:
        return self.pods <= 0 and not self.ports

    def port_conflict(self, protocol: str, port: int, ip: str) -> bool:
        """Kubernetes' `HostPortInfo.CheckConflict`: `0.0.0.0` conflicts with every
        address of the same protocol and port, any address with itself and `0.0.0.0`."""
        ips = self.ports.get((protocol, port))
        if not ips:
            return False
        return ip == "0.0.0.0" or ip in ips or "0.0.0.0" in ips


class Placed:
    """A pod placed (bound or assumed) on a node."""

    __slots__ = ("node", "requests", "score_requests", "ports")

    def __init__(self, node: str, requests: dict, score_requests: dict, ports: list):
        self.node = node
        self.requests = requests
        self.score_requests = score_requests
        self.ports = ports


# ---------------------------------------------------------------------------------------
# The policy


class Policy:
    """The bin-packing policy: the cluster state and the scheduling decisions.

    Inputs are read by attribute with the field names of the WIT records (`NodeInfo`,
    `PodInfo`, ...). Decisions are tuples: `("node", name)`,
    `("unschedulable", [(reason, nodes), ...])` (sorted by reason) or `("error", message)`.
    """

    def __init__(self):
        self.weights = DEFAULT_WEIGHTS
        self.reset()

    def reset(self) -> None:
        """Forgets every node and pod."""
        self.nodes: dict[str, Node] = {}
        self.pods: dict[str, Placed] = {}
        # By node name; kept for pods on a node not (or no longer) known, so a node that
        # comes back (or arrives after its pods) sees them.
        self.usage: dict[str, Usage] = {}

    def init(self, config: str) -> None:
        """Applies the Plugin's config (raises `ConfigError`) and starts from an empty
        state: the host sends the whole cluster after `init`."""
        self.weights = parse_config(config)
        self.reset()

    # -- updates -------------------------------------------------------------------------

    def set_node(self, info) -> None:
        """Adds or replaces a node; the pods placed on it stay."""
        self.nodes[info.name] = Node(info)

    def remove_node(self, name: str) -> None:
        """Forgets a node. Pods recorded on it stay until removed (they still hold its
        resources should it come back)."""
        self.nodes.pop(name, None)

    def set_pod(self, info) -> None:
        """Records a placed pod (idempotent: replaces an earlier record of the same uid).
        A pod without a node name is not placed: any earlier record is dropped."""
        if not info.node_name:
            self.remove_pod(info.uid)
            return
        self._place(
            info.uid,
            Placed(
                info.node_name,
                amounts(info.requests),
                amounts(info.score_requests),
                wanted_ports(info.host_ports),
            ),
        )

    def remove_pod(self, uid: str) -> None:
        """Forgets a placed pod and gives its node back what it took."""
        old = self.pods.pop(uid, None)
        if old is None:
            return
        usage = self.usage.get(old.node)
        if usage is not None:
            usage.add(old, -1)
            if usage.empty():
                del self.usage[old.node]

    def _place(self, uid: str, placed: Placed) -> None:
        self.remove_pod(uid)
        self.pods[uid] = placed
        usage = self.usage.get(placed.node)
        if usage is None:
            usage = self.usage[placed.node] = Usage()
        usage.add(placed, 1)

    # -- scheduling ----------------------------------------------------------------------

    def schedule(self, pods) -> list[tuple]:
        """Decides each pod in order, assuming each chosen placement before the next."""
        decisions = []
        for pod in pods:
            try:
                decisions.append(self.schedule_one(pod))
            except PodError as e:
                decisions.append(("error", str(e)))
            except Exception as e:  # noqa: BLE001 - one pod's failure must not stop the batch
                decisions.append(("error", f"internal error: {type(e).__name__}: {e}"))
        return decisions

    def schedule_one(self, pod) -> tuple:
        """Decides one pod; on success the pod is assumed on the chosen node."""
        terms = parse_required_node_affinity(pod.affinity)
        check_topology_spread(pod.topology_spread_constraints)
        selector = [(s.key, s.value) for s in pod.node_selector]
        tolerations = pod.tolerations
        tolerates_cordon = tolerates(tolerations, TAINT_UNSCHEDULABLE, "", NO_SCHEDULE)
        wanted_node = pod.node_name or None
        ports = wanted_ports(pod.host_ports)
        requests = amounts(pod.requests)
        score_requests = amounts(pod.score_requests)
        requests_anything = any(requests.values())
        scored, weight_sum = self._scored(score_requests)
        empty = Usage()

        reasons: dict[str, int] = {}
        best_name = None
        best_score = -1.0
        for name, node in self.nodes.items():
            usage = self.usage.get(name, empty)
            failed = self._filter(
                node, usage, wanted_node, tolerates_cordon, tolerations, selector, terms,
                ports, requests, requests_anything,
            )
            if failed:
                for reason in failed:
                    reasons[reason] = reasons.get(reason, 0) + 1
                continue
            score = self._score(node, usage, scored, weight_sum)
            if score > best_score or (score == best_score and name < best_name):
                best_name, best_score = name, score

        if best_name is None:
            return ("unschedulable", sorted(reasons.items()))
        self._place(pod.uid, Placed(best_name, requests, score_requests, ports))
        return ("node", best_name)

    @staticmethod
    def _filter(node, usage, wanted_node, tolerates_cordon, tolerations, selector, terms,
                ports, requests, requests_anything) -> list[str]:
        """The reasons a node does not fit, in Kubernetes' filter order, stopping at the
        first filter that fails (as Kubernetes does); empty when it fits."""
        if node.unschedulable and not tolerates_cordon:
            return [REASON_UNSCHEDULABLE]
        if wanted_node is not None and wanted_node != node.name:
            return [REASON_NODE_NAME]
        for key, value, effect in node.taints:
            if not tolerates(tolerations, key, value, effect):
                return [REASON_TAINT.format(key=key, value=value)]
        labels = node.labels
        for key, value in selector:
            if labels.get(key) != value:
                return [REASON_AFFINITY]
        if terms is not None and not any(
            all(r.matches(node.name, labels) for r in term) for term in terms
        ):
            return [REASON_AFFINITY]
        for protocol, port, ip in ports:
            if usage.port_conflict(protocol, port, ip):
                return [REASON_PORTS]
        # NodeResourcesFit: every insufficient resource is reported.
        failed = []
        if usage.pods + 1 > node.max_pods:
            failed.append(REASON_TOO_MANY_PODS)
        if requests_anything:
            allocatable, requested = node.allocatable, usage.requested
            for name, amount in requests.items():
                if amount > 0 and amount > allocatable.get(name, 0) - requested.get(name, 0):
                    failed.append(INSUFFICIENT.format(name))
        return failed

    def _scored(self, score_requests: dict) -> tuple[list, int]:
        """What `_score` weighs for one pod: `[(resource, weight, pod's request)]` and the
        sum of the weights. Like Kubernetes, extended resources the pod does not request
        are left out."""
        scored = []
        weight_sum = 0
        for name, weight in self.weights:
            wanted = score_requests.get(name, 0)
            if wanted == 0 and name not in STANDARD_RESOURCES:
                continue
            scored.append((name, weight, wanted))
            weight_sum += weight
        return scored, weight_sum

    @staticmethod
    def _score(node, usage, scored, weight_sum) -> float:
        """Most allocated: per scored resource, the share of the allocatable the node's
        pods and this one would request (capped at 100 %; 0 for a node without any),
        averaged by weight, in 0..100. Unlike Kubernetes (integers) the score is not
        rounded, so a slightly fuller node still beats an empty one."""
        if not weight_sum:
            return 0.0
        allocatable, requested = node.allocatable, usage.score_requested
        total = 0.0
        for name, weight, wanted in scored:
            capacity = allocatable.get(name, 0)
            if capacity <= 0:
                continue
            amount = requested.get(name, 0) + wanted
            if amount > capacity:
                amount = capacity
            elif amount < 0:
                amount = 0
            total += weight * amount / capacity
        return total * MAX_NODE_SCORE / weight_sum


POLICY = Policy()


# ---------------------------------------------------------------------------------------
# The WIT adapter (only with the generated bindings)

if _wit is not None:

    def _decision(decision: tuple):
        kind, value = decision
        if kind == "node":
            return _wit.Decision_Node(value)
        if kind == "unschedulable":
            return _wit.Decision_Unschedulable(
                [_wit.ReasonCount(reason=r, nodes=n) for r, n in value]
            )
        return _wit.Decision_Error(str(value))

    class SchedulerPlugin(_exports.SchedulerPlugin):
        """The exported `scheduler-plugin` interface, over the module's `POLICY`."""

        def init(self, config: str) -> None:
            try:
                POLICY.init(config)
            except ConfigError as e:
                raise Err(str(e)) from None
            except Exception as e:  # noqa: BLE001 - nothing may escape into the host
                raise Err(f"bin-packing init failed: {type(e).__name__}: {e}") from None

        def update(self, changes) -> None:
            # `update` cannot report an error: a change that fails is skipped, the others
            # still apply (the typed records leave little room for failure).
            for change in changes:
                try:
                    if isinstance(change, _wit.ClusterChange_NodeSet):
                        POLICY.set_node(change.value)
                    elif isinstance(change, _wit.ClusterChange_NodeRemoved):
                        POLICY.remove_node(change.value)
                    elif isinstance(change, _wit.ClusterChange_PodSet):
                        POLICY.set_pod(change.value)
                    elif isinstance(change, _wit.ClusterChange_PodRemoved):
                        POLICY.remove_pod(change.value)
                except Exception:  # noqa: BLE001
                    continue

        def schedule(self, pods):
            out = []
            try:
                decisions = POLICY.schedule(pods)
            except Exception as e:  # noqa: BLE001
                decisions = [("error", f"internal error: {type(e).__name__}: {e}")] * len(pods)
            for decision in decisions:
                try:
                    out.append(_decision(decision))
                except Exception as e:  # noqa: BLE001
                    out.append(_wit.Decision_Error(f"internal error: {type(e).__name__}: {e}"))
            return out
