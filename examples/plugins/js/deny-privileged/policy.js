// Denies pods that run a privileged container: the JavaScript twin of
// examples/plugins/rust/deny-privileged, built into a component of the
// `tugboat:plugin/admission@0.1.0` world by componentize-js (see build.sh).
//
// The exported interface `admission-plugin` is the object `admissionPlugin`; WIT names
// become camelCase (`old-object` → `oldObject`), `option<T>` is a value or `undefined`,
// and a `result<_, string>` is a normal return (ok) or a thrown error (err).

const ALLOW = { allowed: true, warnings: [] };

function deny(message, code, reason) {
  return { allowed: false, code, reason, message, warnings: [] };
}

export const admissionPlugin = {
  // Called once per instance with the manifest's `config` (JSON text); this policy has
  // no configuration, but it rejects one that is not JSON, like the Rust SDK does.
  init(config) {
    if (config.trim() !== "") {
      try {
        JSON.parse(config);
      } catch (e) {
        throw `config is not valid JSON: ${e.message}`;
      }
    }
  },

  admit(request) {
    let pod;
    // Like the Rust SDK: an object that is not JSON is denied with 400 BadRequest.
    if (request.object !== undefined) {
      try {
        pod = JSON.parse(request.object);
      } catch (e) {
        return deny(`the host sent an unreadable object: ${e.message}`, 400, "BadRequest");
      }
    }
    if (pod === undefined || request.kind.group !== "" || request.kind.kind !== "Pod") {
      return ALLOW;
    }
    const spec = (pod !== null && typeof pod === "object" && pod.spec) || {};
    for (const list of ["initContainers", "containers", "ephemeralContainers"]) {
      const containers = Array.isArray(spec[list]) ? spec[list] : [];
      for (const c of containers) {
        if (c !== null && typeof c === "object" && c.securityContext?.privileged === true) {
          const name = typeof c.name === "string" ? c.name : "<unnamed>";
          return deny(`privileged containers are not allowed: container ${name}`);
        }
      }
    }
    return ALLOW;
  },
};
