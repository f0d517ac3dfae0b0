"""Denies pods that run a privileged container: the Python twin of
examples/plugins/rust/deny-privileged, built into a component of the
`tugboat:plugin/admission@0.1.0` world by componentize-py (see build.sh).

componentize-py looks for a class named after the exported interface (`admission-plugin`
-> `AdmissionPlugin`) in this module. WIT names become snake_case (`old-object` ->
`old_object`), `option<T>` is a value or `None`, and a `result<_, string>` is a normal
return (ok) or a raised `componentize_py_types.Err(message)`.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.admission_plugin import AdmissionRequest, AdmissionResponse


def allow() -> AdmissionResponse:
    return AdmissionResponse(
        allowed=True, code=None, reason=None, message=None, patch=None, warnings=[]
    )


def deny(message: str, code: int | None = None, reason: str | None = None) -> AdmissionResponse:
    return AdmissionResponse(
        allowed=False, code=code, reason=reason, message=message, patch=None, warnings=[]
    )


class AdmissionPlugin(exports.AdmissionPlugin):
    def init(self, config: str) -> None:
        # This policy has no configuration, but like the Rust SDK it rejects one that is
        # not JSON.
        if config.strip():
            try:
                json.loads(config)
            except ValueError as e:
                raise Err(f"config is not valid JSON: {e}")

    def admit(self, request: AdmissionRequest) -> AdmissionResponse:
        pod = None
        # Like the Rust SDK: an object that is not JSON is denied with 400 BadRequest.
        if request.object is not None:
            try:
                pod = json.loads(request.object)
            except ValueError as e:
                return deny(f"the host sent an unreadable object: {e}", 400, "BadRequest")
        if request.object is None or request.kind.group != "" or request.kind.kind != "Pod":
            return allow()
        spec = pod.get("spec") if isinstance(pod, dict) else None
        if not isinstance(spec, dict):
            spec = {}
        for field in ("initContainers", "containers", "ephemeralContainers"):
            containers = spec.get(field)
            for c in containers if isinstance(containers, list) else []:
                if not isinstance(c, dict):
                    continue
                security = c.get("securityContext")
                if isinstance(security, dict) and security.get("privileged") is True:
                    name = c.get("name")
                    if not isinstance(name, str):
                        name = "<unnamed>"
                    return deny(f"privileged containers are not allowed: container {name}")
        return allow()
