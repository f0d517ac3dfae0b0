#!/usr/bin/env python3
"""Generate host/src/api/protobuf_schema.rs, the table that drives the generic
Kubernetes-protobuf -> JSON decoder in host/src/api/protobuf.rs.

Inputs (all local, nothing is downloaded):

* the k8s-pb crate sources (prost-generated structs): message names, field
  tags, wire types, nested message types, `impl crate::Resource` (apiVersion,
  kind);
* the k8s-openapi crate sources (v1_33 first, then the newer version folders
  as fallbacks): the exact JSON name of every field (serde `visit_str` arms),
  the Go/OpenAPI spelling of type names and more `impl crate::Resource`;
* host/tools/protobuf_go_hints.tsv: facts only the Go structs know, extracted
  from a Kubernetes Go binary (kubectl) with `--extract-go-hints`: whether a
  field is a non-pointer scalar with `omitempty` (Go omits its zero value from
  JSON although gogo-protobuf always writes it on the wire) and whether a
  field is `json:",inline"` (its message is flattened into the parent object).

Usage (from anywhere):

    python3 host/tools/gen_protobuf_schema.py            # regenerate the table
    python3 host/tools/gen_protobuf_schema.py --check    # fail if out of date
    python3 host/tools/gen_protobuf_schema.py --extract-go-hints "$(command -v kubectl)"

The crate folders are found in $CARGO_HOME/registry/src/*/ (default
~/.cargo) at the versions pinned in the workspace Cargo.lock; override with
--k8s-pb DIR / --k8s-openapi DIR. The output is passed through rustfmt
(edition 2024) when rustfmt is on PATH.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import struct
import subprocess
import sys
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = os.path.dirname(HERE)
WORKSPACE = os.path.dirname(HOST)
OUT_RS = os.path.join(HOST, "src", "api", "protobuf_schema.rs")
HINTS_TSV = os.path.join(HERE, "protobuf_go_hints.tsv")
OPENAPI_VERSIONS = ["v1_33", "v1_34", "v1_35", "v1_36", "v1_37"]

# Proto messages that Kubernetes (de)serializes specially. Maps the proto full
# name to (Special variant, {tag: expected json name}) - the expected field
# names are asserted so that protobuf.rs can rely on them.
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
APIEXT = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions."
TIME_FIELDS = {1: "seconds", 2: "nanos"}
SPECIALS: dict[str, tuple[str, dict[int, str]]] = {
    "k8s.io.apimachinery.pkg.api.resource.Quantity": ("Quantity", {1: "string"}),
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": ("Quantity", {1: "string"}),
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": (
        "IntOrString",
        {1: "type", 2: "intVal", 3: "strVal"},
    ),
    META + "Time": ("Time", TIME_FIELDS),
    META + "MicroTime": ("MicroTime", TIME_FIELDS),
    META + "Duration": ("Duration", {1: "duration"}),
    META + "FieldsV1": ("RawJson", {1: "raw"}),
    META + "Verbs": ("StringList", {1: "items"}),
    "k8s.io.apimachinery.pkg.runtime.RawExtension": ("RawExtension", {1: "raw"}),
}
for _v in ("v1", "v1beta1"):
    SPECIALS[APIEXT + _v + ".JSON"] = ("RawJson", {1: "raw"})
    SPECIALS[APIEXT + _v + ".JSONSchemaPropsOrArray"] = (
        "SchemaOrArray",
        {1: "schema", 2: "jSONSchemas"},
    )
    SPECIALS[APIEXT + _v + ".JSONSchemaPropsOrBool"] = (
        "SchemaOrBool",
        {1: "allows", 2: "schema"},
    )
    SPECIALS[APIEXT + _v + ".JSONSchemaPropsOrStringArray"] = (
        "SchemaOrStringArray",
        {1: "schema", 2: "property"},
    )
# Go `type ExtraValue []string` is a message with `repeated string items = 1`
# on the wire and a plain JSON array.
STRING_LIST_NAMES = {"ExtraValue"}

# API groups of k8s-pb modules that have no `impl Resource` anywhere.
GROUP_FALLBACK = {
    "core": "",
    "apps": "apps",
    "batch": "batch",
    "autoscaling": "autoscaling",
    "policy": "policy",
    "extensions": "extensions",
    "rbac": "rbac.authorization.k8s.io",
    "flowcontrol": "flowcontrol.apiserver.k8s.io",
    "apiserverinternal": "internal.apiserver.k8s.io",
}

SCALAR_KINDS = {
    "string": "String",
    "bytes": "Bytes",
    "bool": "Bool",
    "int32": "Int32",
    "int64": "Int64",
    "double": "Double",
}
GO_SCALAR_KINDS = {
    "bool",
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "string",
}


def die(msg: str) -> None:
    print(f"gen_protobuf_schema: error: {msg}", file=sys.stderr)
    sys.exit(1)


def warn(msg: str) -> None:
    print(f"gen_protobuf_schema: warning: {msg}", file=sys.stderr)


def squash(name: str) -> str:
    """Spelling-insensitive key: `r#type`, `type_`, `$ref`, `x-kubernetes-x`, `podIPs`."""
    name = name.removeprefix("r#")
    return re.sub(r"[^0-9a-z]", "", name.lower())


# --------------------------------------------------------------------------
# Locating the crates
# --------------------------------------------------------------------------


def locked_version(crate: str) -> str | None:
    lock = os.path.join(WORKSPACE, "Cargo.lock")
    if not os.path.exists(lock):
        return None
    text = open(lock, encoding="utf-8").read()
    m = re.search(r'name = "%s"\nversion = "([^"]+)"' % re.escape(crate), text)
    return m.group(1) if m else None


def find_crate(crate: str) -> str:
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    version = locked_version(crate)
    pattern = f"{crate}-{version}" if version else f"{crate}-*"
    hits = sorted(glob.glob(os.path.join(cargo_home, "registry", "src", "*", pattern)))
    if not hits:
        die(f"cannot find {pattern} under {cargo_home}/registry/src (run `cargo fetch`)")
    return hits[-1]


# --------------------------------------------------------------------------
# k8s-pb
# --------------------------------------------------------------------------


@dataclass
class PbField:
    rust: str
    tag: int
    kind: str  # string bytes bool int32 int64 double message map
    repeated: bool
    msg: str | None = None  # resolved key of the message type (value type for maps)
    map_value: str | None = None  # string bytes message


@dataclass
class PbMessage:
    module: tuple[str, ...]
    rust: str
    fields: list[PbField] = field(default_factory=list)

    @property
    def key(self) -> str:
        return ".".join(self.module + (self.rust,)).lower()


def split_attr(attr: str) -> list[str]:
    out, cur, quoted = [], "", False
    for ch in attr:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def resolve_type(module: tuple[str, ...], path: str) -> tuple[str, ...]:
    segs = [s for s in path.split("::") if s]
    cur = list(module)
    if segs and segs[0] == "crate":
        cur = []
        segs = segs[1:]
    while segs and segs[0] == "super":
        cur.pop()
        segs = segs[1:]
    return tuple(cur + segs)


def innermost_type(ty: str) -> str:
    """The message path inside Option<..>, Vec<..>, Box<..> or the map value."""
    ty = re.sub(r"\s+", "", ty).replace(",>", ">")
    m = re.search(r"BTreeMap<(.*)>$", ty) or re.search(r"HashMap<(.*)>$", ty)
    if m:
        ty = m.group(1).split(",", 1)[1]
    while True:
        m = re.fullmatch(
            r"(?:::core::option::Option|::prost::alloc::vec::Vec|"
            r"::prost::alloc::boxed::Box|Option|Vec|Box)<(.*)>",
            ty,
        )
        if not m:
            return ty
        ty = m.group(1)


STRUCT_RE = re.compile(r"^pub struct (\w+) \{(?:\}|\n(.*?)^\})", re.M | re.S)
ATTR_RE = re.compile(r"#\[prost\((.*)\)\]\s*$")
RESOURCE_RE = re.compile(r"impl crate::Resource for (\w+) \{(.*?)\n\}", re.S)


def parse_resource_impls(text: str) -> list[tuple[str, str, str]]:
    out = []
    for m in RESOURCE_RE.finditer(text):
        body = m.group(2)
        av = re.search(r'const API_VERSION: &\'static str = "([^"]*)";', body)
        kind = re.search(r'const KIND: &\'static str = "([^"]*)";', body)
        if av and kind:
            out.append((m.group(1), av.group(1), kind.group(1)))
    return out


def parse_k8s_pb(root: str):
    src = os.path.join(root, "src")
    messages: dict[str, PbMessage] = {}
    resources: list[tuple[tuple[str, ...], str, str, str]] = []
    for dirpath, _, files in sorted(os.walk(src)):
        for fn in sorted(files):
            if not fn.endswith(".rs"):
                continue
            rel = os.path.relpath(dirpath, src)
            module = tuple() if rel == "." else tuple(rel.split(os.sep))
            if fn not in ("mod.rs", "lib.rs"):
                module = module + (fn[:-3],)
            text = open(os.path.join(dirpath, fn), encoding="utf-8").read()
            for sm in STRUCT_RE.finditer(text):
                msg = PbMessage(module, sm.group(1))
                lines = (sm.group(2) or "").split("\n")
                i = 0
                while i < len(lines):
                    am = ATTR_RE.search(lines[i].strip())
                    i += 1
                    if not am:
                        continue
                    buf = ""
                    while i < len(lines):
                        line = lines[i].strip()
                        i += 1
                        if line.startswith("///") or line.startswith("#["):
                            continue
                        buf += line
                        if buf.startswith("pub ") and balanced_decl(buf):
                            break
                    dm = re.match(r"pub (r#\w+|\w+):\s*(.*),$", buf)
                    if not dm:
                        die(f"{msg.rust}: cannot parse field declaration {buf!r}")
                    msg.fields.append(parse_field(module, dm.group(1), dm.group(2), am.group(1)))
                if msg.key in messages:
                    die(f"duplicate message {msg.key}")
                messages[msg.key] = msg
            for rust, av, kind in parse_resource_impls(text):
                resources.append((module, rust, av, kind))
    return messages, resources


def balanced_decl(buf: str) -> bool:
    if not buf.endswith(","):
        return False
    return buf.count("<") == buf.count(">")


def parse_field(module, rust: str, ty: str, attr: str) -> PbField:
    parts = split_attr(attr)
    tag_m = [p for p in parts if p.startswith("tag")]
    if not tag_m:
        die(f"no tag in #[prost({attr})]")
    tag = int(re.search(r'"(\d+)"', tag_m[0]).group(1))
    head = parts[0]
    repeated = "repeated" in parts
    if head.startswith(("btree_map", "hash_map", "map")):
        kv = re.search(r'"([^"]*)"', head).group(1)
        key, value = [s.strip() for s in kv.split(",")]
        if key != "string":
            die(f"map key {key} is not supported ({rust})")
        f = PbField(rust, tag, "map", False, map_value=value)
        if value == "message":
            f.msg = ".".join(resolve_type(module, innermost_type(ty))).lower()
        elif value not in ("string", "bytes"):
            die(f"map value {value} is not supported ({rust})")
        return f
    if head.startswith("bytes"):
        return PbField(rust, tag, "bytes", repeated)
    if head.startswith("enumeration"):
        warn(f"enumeration field {rust} decoded as int32")
        return PbField(rust, tag, "int32", repeated)
    if head == "message":
        path = resolve_type(module, innermost_type(ty))
        return PbField(rust, tag, "message", repeated, msg=".".join(path).lower())
    if head in SCALAR_KINDS:
        return PbField(rust, tag, head, repeated)
    die(f"unsupported prost type {head!r} ({rust})")
    raise AssertionError


# --------------------------------------------------------------------------
# k8s-openapi
# --------------------------------------------------------------------------


@dataclass
class OaType:
    name: str  # Go/OpenAPI spelling, e.g. AWSElasticBlockStoreVolumeSource
    json_by_rust: dict[str, str]
    json_names: list[str]
    optional: set[str]  # JSON names of the fields that are `Option<_>` (not required)


def parse_k8s_openapi(root: str):
    """Returns ({lower key: OaType}, [(module, name, apiVersion, kind)])."""
    types: dict[str, OaType] = {}
    resources = []
    for version in OPENAPI_VERSIONS:
        vroot = os.path.join(root, "src", version)
        if not os.path.isdir(vroot):
            continue
        for dirpath, _, files in sorted(os.walk(vroot)):
            for fn in sorted(files):
                if not fn.endswith(".rs") or fn == "mod.rs":
                    continue
                text = open(os.path.join(dirpath, fn), encoding="utf-8").read()
                m = re.match(r"// Generated from definition (\S+)", text)
                if not m:
                    continue
                definition = m.group(1)
                if not definition.startswith("io.k8s.") or definition.count(".") < 3:
                    continue
                qual = definition[len("io.k8s.") :].replace("-", "_")
                key = qual.lower()
                name = qual.rsplit(".", 1)[1]
                arms = re.findall(r'^\s*"([^"]+)" => Field::Key_(\w+),', text, re.M)
                rel = os.path.relpath(dirpath, vroot)
                module = tuple(rel.split(os.sep))
                for rust, av, kind in parse_resource_impls(text):
                    resources.append((module, rust, av, kind))
                if key in types:
                    continue  # an older version folder already gave it
                json_by_rust = {}
                for json, rust in arms:
                    if rust in ("api_version", "kind") and json in ("apiVersion", "kind"):
                        continue
                    json_by_rust[rust] = json
                body = re.search(r"^pub struct %s \{\n(.*?)^\}" % re.escape(name), text, re.M | re.S)
                optional = set()
                if body:
                    for rust, ty in re.findall(r"^    pub (\w+): (.*),$", body.group(1), re.M):
                        if ty.startswith("Option<") and rust in json_by_rust:
                            optional.add(json_by_rust[rust])
                types[key] = OaType(name, json_by_rust, list(json_by_rust.values()), optional)
    return types, resources


# --------------------------------------------------------------------------
# Go hints: extraction from a Go binary and the TSV they are kept in
# --------------------------------------------------------------------------


@dataclass
class GoField:
    message: str
    tag: int
    proto_name: str
    json: str
    omitempty: bool
    inline: bool
    pointer: bool
    kind: str  # reflect kind of the field type with one pointer level removed
    go_type: str


GO_KINDS = [
    "invalid",
    "bool",
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "uintptr",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "array",
    "chan",
    "func",
    "interface",
    "map",
    "ptr",
    "slice",
    "string",
    "struct",
    "unsafe.Pointer",
]


class GoBinary:
    """Just enough of Go's runtime type metadata (abi.Type, go1.2x, amd64/arm64
    little-endian ELF) to list struct fields with their tags and types."""

    def __init__(self, path: str):
        self.data = open(path, "rb").read()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            die(f"{path}: not a 64-bit little-endian ELF file")
        shoff = struct.unpack_from("<Q", d, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
        raw = []
        for i in range(shnum):
            name, _typ, _flags, addr, off, size = struct.unpack_from("<IIQQQQ", d, shoff + i * shentsize)
            raw.append((name, addr, off, size))
        stroff = raw[shstrndx][2]
        self.sections = {}
        for name, addr, off, size in raw:
            end = d.index(b"\0", stroff + name)
            self.sections[d[stroff + name : end].decode()] = (addr, off, size)
        for need in (".rodata", ".typelink"):
            if need not in self.sections:
                die(f"{path}: no {need} section (not a Go binary?)")
        self.types = self.sections[".rodata"][0]

    def off(self, addr: int) -> int:
        for name, (base, off, size) in self.sections.items():
            if base and base <= addr < base + size and not name.endswith("bss"):
                return off + addr - base
        raise ValueError(f"address {addr:#x} is not in the file")

    def u8(self, a):
        return self.data[self.off(a)]

    def i32(self, a):
        return struct.unpack_from("<i", self.data, self.off(a))[0]

    def u64(self, a):
        return struct.unpack_from("<Q", self.data, self.off(a))[0]

    def varint(self, a):
        result = shift = 0
        while True:
            b = self.u8(a)
            a += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result, a

    def name(self, a):
        flags = self.u8(a)
        n, p = self.varint(a + 1)
        o = self.off(p)
        text = self.data[o : o + n].decode()
        tag = ""
        if flags & 2:
            tn, p2 = self.varint(p + n)
            o2 = self.off(p2)
            tag = self.data[o2 : o2 + tn].decode()
        return text, tag

    def kind(self, t):
        return self.u8(t + 23) & 0x1F

    def tstr(self, t):
        s, _ = self.name(self.types + self.i32(t + 40))
        return s[1:] if self.u8(t + 20) & 2 else s

    def pkgpath(self, t):
        if not self.u8(t + 20) & 1:  # no uncommon type
            return ""
        k = self.kind(t)
        extra = {25: 80, 22: 56, 23: 56, 17: 72, 21: 88, 20: 80, 19: 56, 18: 64}.get(k, 48)
        nameoff = self.i32(t + extra)
        return self.name(self.types + nameoff)[0] if nameoff else ""

    def describe(self, t):
        k = self.kind(t)
        if k == 22:
            return "*" + self.describe(self.u64(t + 48))
        if k == 23:
            return "[]" + self.describe(self.u64(t + 48))
        if k == 21:
            return f"map[{self.describe(self.u64(t + 48))}]{self.describe(self.u64(t + 56))}"
        if self.u8(t + 20) & 4:  # named
            pp = self.pkgpath(t)
            base = self.tstr(t).rsplit(".", 1)[-1]
            return f"{pp}.{base}" if pp else self.tstr(t)
        return self.tstr(t)

    def structs(self):
        _, off, size = self.sections[".typelink"]
        stack = [self.types + struct.unpack_from("<i", self.data, off + 4 * i)[0] for i in range(size // 4)]
        seen, out = set(), {}
        while stack:
            t = stack.pop()
            if not t or t in seen:
                continue
            seen.add(t)
            try:
                k = self.kind(t)
                if k in (17, 18, 22, 23):
                    stack.append(self.u64(t + 48))
                elif k == 21:
                    stack += [self.u64(t + 48), self.u64(t + 56)]
                elif k == 25:
                    fptr, flen = self.u64(t + 56), self.u64(t + 64)
                    fields = []
                    for i in range(flen):
                        sf = fptr + 24 * i
                        fname, ftag = self.name(self.u64(sf))
                        ftype = self.u64(sf + 8)
                        stack.append(ftype)
                        fields.append((fname, ftag, ftype))
                    out[t] = fields
                ptr_to_this = self.i32(t + 44)
                if ptr_to_this:
                    stack.append(self.types + ptr_to_this)
            except (ValueError, IndexError, UnicodeDecodeError, struct.error):
                continue
        return out


def go_tag(tags: str, key: str) -> str | None:
    m = re.search(r'(?:^|\s)%s:"([^"]*)"' % key, tags)
    return m.group(1) if m else None


def extract_go_hints(binary: str) -> None:
    go = GoBinary(binary)
    rows = []
    for t, fields in go.structs().items():
        pp = go.pkgpath(t)
        if not pp.startswith("k8s.io/"):
            continue
        message = pp.replace("/", ".") + "." + go.tstr(t).rsplit(".", 1)[-1]
        for fname, tags, ftype in fields:
            pb = go_tag(tags, "protobuf")
            if not pb:
                continue
            pbparts = pb.split(",")
            try:
                tag = int(pbparts[1])
            except (IndexError, ValueError):
                continue
            pname = next((p[5:] for p in pbparts if p.startswith("name=")), fname)
            js = go_tag(tags, "json")
            if js is None:
                jname, opts = fname, []
            else:
                jname, *opts = js.split(",")
            if jname == "-":
                continue
            k = go.kind(ftype)
            pointer = k == 22
            inner = go.u64(ftype + 48) if pointer else ftype
            rows.append(
                (
                    message,
                    tag,
                    pname,
                    jname,
                    int("omitempty" in opts),
                    int("inline" in opts),
                    int(pointer),
                    GO_KINDS[go.kind(inner)] if go.kind(inner) < len(GO_KINDS) else "?",
                    go.describe(ftype),
                )
            )
    if not any(r[0] == META + "ObjectMeta" for r in rows):
        die(f"{binary}: no k8s.io/apimachinery ObjectMeta found; unsupported Go binary layout")
    rows.sort()
    version = ""
    try:
        version = subprocess.run(
            [binary, "version", "--client"], capture_output=True, text=True, timeout=30
        ).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    with open(HINTS_TSV, "w", encoding="utf-8") as f:
        f.write("# Go struct facts for the Kubernetes protobuf decoder (host/src/api/protobuf.rs).\n")
        f.write("# @generated by host/tools/gen_protobuf_schema.py --extract-go-hints from the\n")
        f.write(f"# runtime type metadata of a Kubernetes Go binary ({version or 'unknown version'}).\n")
        f.write("# message\ttag\tproto_name\tjson_name\tomitempty\tinline\tpointer\tgo_kind\tgo_type\n")
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    print(f"wrote {len(rows)} field hints for {len({r[0] for r in rows})} Go structs to {HINTS_TSV}")


def load_go_hints() -> dict[str, dict[int, GoField]]:
    hints: dict[str, dict[int, GoField]] = {}
    if not os.path.exists(HINTS_TSV):
        warn(f"{HINTS_TSV} is missing: zero values of Go non-pointer fields will be kept")
        return hints
    for line in open(HINTS_TSV, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        msg, tag, pname, json, omit, inline, ptr, kind, gotype = line.rstrip("\n").split("\t")
        hints.setdefault(msg.lower(), {})[int(tag)] = GoField(
            msg, int(tag), pname, json, omit == "1", inline == "1", ptr == "1", kind, gotype
        )
    return hints


# --------------------------------------------------------------------------
# Building the table
# --------------------------------------------------------------------------


# Initialisms Go spells in capitals inside JSON names (`desiredAPIVersion`,
# `podIPs`); prost's snake_case loses them, so the last-resort guess restores them.
INITIALISMS = {
    "api": "API",
    "id": "ID",
    "ids": "IDs",
    "ip": "IP",
    "ips": "IPs",
    "uid": "UID",
    "url": "URL",
    "tls": "TLS",
    "cidr": "CIDR",
    "cidrs": "CIDRs",
    "dns": "DNS",
}


def lower_camel(rust: str) -> str:
    parts = rust.removeprefix("r#").split("_")
    return parts[0] + "".join(INITIALISMS.get(p, p[:1].upper() + p[1:]) for p in parts[1:])


@dataclass
class OutField:
    tag: int
    json: str
    kind: str
    repeated: bool
    omit_zero: bool
    inline: bool
    target: str | None  # lower key of the message type


@dataclass
class OutMessage:
    key: str
    name: str  # proto full name
    special: str
    fields: list[OutField]


def version_rank(version: str) -> tuple:
    """Sort key: GA before beta before alpha, newer first."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (9, version)
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0))


def build(pb_messages, pb_resources, oa_types, oa_resources, hints):
    stats = dict.fromkeys(
        [
            "openapi",
            "sibling",
            "go",
            "global",
            "camel",
            "omit_zero",
            "sibling_omit_zero",
            "openapi_omit_zero",
            "inline",
            "hinted_messages",
            "fields",
        ],
        0,
    )

    # Global spelling index: squashed name -> JSON names seen anywhere (Go names
    # of fields without a json tag are capitalised and are left out).
    spelling: dict[str, set[str]] = {}
    for oa in oa_types.values():
        for js in oa.json_names:
            spelling.setdefault(squash(js), set()).add(js)
    for fields in hints.values():
        for gf in fields.values():
            if gf.json and not gf.json[:1].isupper():
                spelling.setdefault(squash(gf.json), set()).add(gf.json)

    # The same type in the other versions of its API group, best version first:
    # k8s-openapi and the hints know only some versions (e.g. apiextensions
    # v1beta1 is in neither).
    def siblings(table: dict, key: str) -> list:
        parts = key.split(".")
        group, name = parts[:-2], parts[-1]
        found = []
        for k, v in table.items():
            kp = k.split(".")
            if kp[:-2] == group and kp[-1] == name and kp[-2] != parts[-2]:
                found.append((version_rank(kp[-2]), v))
        return [v for _, v in sorted(found, key=lambda x: x[0])]

    hints_by_key = {k.removeprefix("k8s.io."): v for k, v in hints.items()}
    # API groups the Go binary knows nothing of (apiextensions, kube-aggregator
    # are not linked into kubectl).
    hinted_groups = {".".join(k.split(".")[:-2]) for k in hints_by_key}

    # Go spelling of type names by lower-case simple name (prost spells
    # `JSONSchemaProps` as `JsonSchemaProps`).
    spelled: dict[str, set[str]] = {}
    for oa in oa_types.values():
        spelled.setdefault(oa.name.lower(), set()).add(oa.name)
    for fields in hints.values():
        name = next(iter(fields.values())).message.rsplit(".", 1)[1]
        spelled.setdefault(name.lower(), set()).add(name)

    def proto_name(msg: PbMessage) -> str:
        pkg = "k8s.io." + ".".join(msg.module)
        hint = hints_by_key.get(msg.key)
        if hint:
            return next(iter(hint.values())).message
        oa = oa_types.get(msg.key)
        if oa:
            return f"{pkg}.{oa.name}"
        names = spelled.get(msg.rust.lower(), set())
        if len(names) == 1:
            return f"{pkg}.{next(iter(names))}"
        return f"{pkg}.{msg.rust}"

    def json_index(oa: OaType | None) -> dict[str, str]:
        index: dict[str, str] = {}
        if oa:
            for rust, js in oa.json_by_rust.items():
                index.setdefault(squash(rust), js)
                index.setdefault(squash(js), js)
        return index

    out: dict[str, OutMessage] = {}
    for key, msg in pb_messages.items():
        full = proto_name(msg)
        special, expected = SPECIALS.get(full, ("None", None))
        if special == "None" and msg.rust in STRING_LIST_NAMES:
            special, expected = "StringList", {1: "items"}
        oa = oa_types.get(key)
        own = json_index(oa)
        sibling_types = siblings(oa_types, key) if not oa else []
        sibling_oa = [json_index(o) for o in sibling_types]
        # Without any Go facts for the whole group, fall back to OpenAPI: an
        # optional string, bool or bytes field is taken to be a non-pointer
        # `omitempty` one. In apiextensions and apiregistration nearly all are;
        # for the few pointers (`$ref`, `x-kubernetes-preserve-unknown-fields`,
        # `url`) an explicit "" or false means the same as absence.
        openapi_optional = None
        if ".".join(key.split(".")[:-2]) not in hinted_groups:
            if oa:
                openapi_optional = oa.optional
            elif sibling_types:
                openapi_optional = sibling_types[0].optional
        hint = hints_by_key.get(key, {})
        sibling_hints = siblings(hints_by_key, key) if not hint else []
        if hint:
            stats["hinted_messages"] += 1
        fields = []
        for f in msg.fields:
            sq = squash(f.rust)
            gf = hint.get(f.tag)
            sibling_gf = next((h[f.tag] for h in sibling_hints if f.tag in h), None)
            json, inline = None, False
            if special != "None":
                json = expected.get(f.tag)
                if json is None or squash(json) != sq:
                    die(f"{full}: unexpected field {f.rust} (tag {f.tag}) in a special message")
            elif (gf or sibling_gf) and (gf or sibling_gf).inline:
                json, inline = "", True
            elif sq in own:
                json = own[sq]
                stats["openapi"] += 1
            elif gf and gf.json:
                json = gf.json
                stats["go"] += 1
            elif any(sq in idx for idx in sibling_oa):
                json = next(idx[sq] for idx in sibling_oa if sq in idx)
                stats["sibling"] += 1
            elif sibling_gf and sibling_gf.json and squash(sibling_gf.json) == sq:
                json = sibling_gf.json
                stats["sibling"] += 1
            else:
                names = spelling.get(sq, set())
                guess = lower_camel(f.rust)
                if len(names) == 1 or guess in names:
                    json = guess if guess in names else next(iter(names))
                    stats["global"] += 1
                else:
                    json = guess
                    stats["camel"] += 1
                if oa and f.kind == "message" and not f.repeated and not gf:
                    # No JSON counterpart: a Go `json:",inline"` member the hints
                    # do not know about if all the nested type's fields are
                    # fields of this type in the JSON schema.
                    nested = pb_messages.get(f.msg)
                    if nested and nested.fields and all(squash(n.rust) in own for n in nested.fields):
                        json, inline = "", True
                        warn(f"{full}.{f.rust}: no Go hint; inline, as its fields are this type's")
            if gf and special == "None" and not gf.inline and gf.json != json:
                warn(f"{full}.{f.rust} (tag {f.tag}): JSON name {json!r} but the Go tag says {gf.json!r}")
            go = gf
            if go is None and sibling_gf is not None and sibling_gf.json == json:
                go = sibling_gf
            omit_zero = (
                go is not None
                and special == "None"
                and go.omitempty
                and not go.pointer
                and f.kind in SCALAR_KINDS
                and not f.repeated
                and (go.kind in GO_SCALAR_KINDS or (f.kind == "bytes" and go.kind == "slice"))
            )
            if (
                go is None
                and openapi_optional is not None
                and special == "None"
                and json in openapi_optional
                and f.kind in ("string", "bool", "bytes")
                and not f.repeated
            ):
                omit_zero = True
                stats["openapi_omit_zero"] += 1
            if omit_zero:
                stats["omit_zero"] += 1
                if go is not gf and go is not None:
                    stats["sibling_omit_zero"] += 1
            if inline:
                stats["inline"] += 1
                if f.kind != "message" or f.repeated:
                    die(f"{full}.{f.rust}: inline field is not a singular message")
            kind = f.kind
            if kind == "map":
                kind = {"string": "MapString", "bytes": "MapBytes", "message": "MapMessage"}[f.map_value]
            else:
                kind = {"message": "Message", **SCALAR_KINDS}[kind]
            fields.append(OutField(f.tag, json, kind, f.repeated, omit_zero, inline, f.msg))
            stats["fields"] += 1
        tags = [f.tag for f in fields]
        if len(set(tags)) != len(tags):
            die(f"{full}: duplicate tags")
        jsons = [f.json for f in fields if not f.inline]
        if len(set(jsons)) != len(jsons):
            die(f"{full}: duplicate JSON names {jsons}")
        out[key] = OutMessage(key, full, special, fields)
    for full, (special, _) in SPECIALS.items():
        if not any(m.name == full for m in out.values()):
            warn(f"special message {full} ({special}) is not in k8s-pb")

    for m in out.values():
        for f in m.fields:
            if f.target is not None and f.target not in out:
                die(f"{m.name}: field {f.json} refers to unknown message {f.target}")

    roots = build_roots(pb_messages, pb_resources, oa_resources, out)
    return out, roots, stats


def module_key(module: tuple[str, ...]) -> str:
    return ".".join(module).lower()


def build_roots(pb_messages, pb_resources, oa_resources, out):
    roots: dict[tuple[str, str], str] = {}
    group_of: dict[str, str] = {}  # "api.apps" -> "apps"
    kinds_of_group: dict[str, set[str]] = {}

    def add(api_version: str, kind: str, key: str, why: str):
        prev = roots.get((api_version, kind))
        if prev and prev != key:
            die(f"{why}: ({api_version}, {kind}) maps to both {prev} and {key}")
        roots[(api_version, kind)] = key

    for module, rust, av, kind in pb_resources + oa_resources:
        key = (module_key(module) + "." + rust).lower()
        if key not in out:
            continue
        add(av, kind, key, "impl Resource")
        group = av.rsplit("/", 1)[0] if "/" in av else ""
        group_of[module_key(module[:-1])] = group
        kinds_of_group.setdefault(module_key(module[:-1]), set()).add(kind)

    # Older versions of a group: same kind names, and `<Kind>List` pairs.
    for key, msg in pb_messages.items():
        if len(msg.module) < 2:
            continue
        gkey = module_key(msg.module[:-1])
        version = msg.module[-1]
        if gkey in group_of:
            group = group_of[gkey]
        elif msg.module[0] == "api" and len(msg.module) == 3:
            group = GROUP_FALLBACK.get(msg.module[1], msg.module[1] + ".k8s.io")
        else:
            continue
        if not re.fullmatch(r"v\d+((alpha|beta)\d+)?", version):
            continue
        av = f"{group}/{version}" if group else version
        is_kind = msg.rust in kinds_of_group.get(gkey, set())
        list_key = key + "list"
        lst = out.get(list_key)
        has_meta = any(
            f.json == "metadata" and f.tag == 1 and f.target and f.target.endswith("meta.v1.objectmeta")
            for f in out[key].fields
        )
        if lst and has_meta and any(f.json == "items" and f.target == key for f in lst.fields):
            is_kind = True
        if is_kind:
            kind = out[key].name.rsplit(".", 1)[1]
            if (av, kind) not in roots:
                add(av, kind, key, "same-group kind")
            if lst and (av, kind + "List") not in roots:
                add(av, kind + "List", list_key, "list kind")
    # Lists of the kinds found through impl Resource.
    for (av, kind), key in list(roots.items()):
        lst = out.get(key + "list")
        if lst and (av, kind + "List") not in roots and any(f.json == "items" for f in lst.fields):
            add(av, kind + "List", key + "list", "list kind")
    return roots


# --------------------------------------------------------------------------
# Rust output
# --------------------------------------------------------------------------

HEADER = """\
// @generated by host/tools/gen_protobuf_schema.py from the k8s-pb {pb_version} and
// k8s-openapi {oa_version} sources and host/tools/protobuf_go_hints.tsv. Do not edit.

//! Schema table for the generic Kubernetes-protobuf decoder in
//! [`crate::api::protobuf`]: every message of k8s-pb with its fields (tag,
//! JSON name, wire kind) and the (apiVersion, kind) -> root message map.
//!
//! {n_messages} messages, {n_fields} fields, {n_roots} root kinds.

/// Wire kind of a field, as prost declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {{
    /// `string` (JSON string).
    String,
    /// `bytes` (JSON base64 string).
    Bytes,
    /// `bool`.
    Bool,
    /// `int32` varint.
    Int32,
    /// `int64` varint.
    Int64,
    /// `double` (fixed64).
    Double,
    /// A nested message: index into [`MESSAGES`].
    Message(u16),
    /// `map<string, string>`.
    MapString,
    /// `map<string, bytes>` (values as base64).
    MapBytes,
    /// `map<string, Message>`: index of the value message in [`MESSAGES`].
    MapMessage(u16),
}}

/// Messages whose JSON form is not an object of their fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {{
    /// An ordinary message: a JSON object of its fields.
    None,
    /// `resource.Quantity`: its `string` field as a JSON string.
    Quantity,
    /// `intstr.IntOrString`: a JSON number or string.
    IntOrString,
    /// `meta.v1.Time`: RFC 3339 seconds, `null` when zero.
    Time,
    /// `meta.v1.MicroTime`: RFC 3339 with microseconds, `null` when zero.
    MicroTime,
    /// `meta.v1.Duration`: a Go duration string.
    Duration,
    /// `runtime.RawExtension`: embedded JSON (or nested Kubernetes protobuf).
    RawExtension,
    /// `meta.v1.FieldsV1`, apiextensions `JSON`: embedded JSON bytes.
    RawJson,
    /// `JSONSchemaPropsOrArray`: a schema object or an array of schemas.
    SchemaOrArray,
    /// `JSONSchemaPropsOrBool`: a schema object or a bool.
    SchemaOrBool,
    /// `JSONSchemaPropsOrStringArray`: a schema object or an array of strings.
    SchemaOrStringArray,
    /// `meta.v1.Verbs`, `ExtraValue`: `repeated string items` as a JSON array.
    StringList,
}}

/// One field of a message.
#[derive(Clone, Copy, Debug)]
pub struct Field {{
    /// Protobuf field number.
    pub tag: u32,
    /// JSON member name (empty for inline fields).
    pub json: &'static str,
    /// Wire kind.
    pub kind: Kind,
    /// Bit set of [`REPEATED`], [`OMIT_ZERO`], [`INLINE`].
    pub flags: u8,
}}

/// The field is `repeated`.
pub const REPEATED: u8 = 1;
/// Go declares the field as a non-pointer scalar with `omitempty`: gogo-protobuf
/// always writes it, but Kubernetes JSON omits its zero value.
pub const OMIT_ZERO: u8 = 2;
/// Go declares the field `json:",inline"`: the members of the nested message
/// are members of the enclosing JSON object.
pub const INLINE: u8 = 4;

impl Field {{
    /// Whether the field is `repeated`.
    pub const fn repeated(&self) -> bool {{
        self.flags & REPEATED != 0
    }}
    /// Whether a zero value on the wire is left out of the JSON.
    pub const fn omit_zero(&self) -> bool {{
        self.flags & OMIT_ZERO != 0
    }}
    /// Whether the nested message is flattened into the enclosing object.
    pub const fn inline(&self) -> bool {{
        self.flags & INLINE != 0
    }}
}}

/// A protobuf message.
#[derive(Clone, Copy, Debug)]
pub struct Message {{
    /// Fully qualified proto name, e.g. `k8s.io.api.core.v1.Pod`.
    pub name: &'static str,
    /// How the JSON is shaped.
    pub special: Special,
    /// Fields in declaration order (the order JSON members are written in).
    pub fields: &'static [Field],
}}

/// A kind that can be the top-level object of a request body.
#[derive(Clone, Copy, Debug)]
pub struct Root {{
    /// JSON `apiVersion`, e.g. `apps/v1`.
    pub api_version: &'static str,
    /// JSON `kind`, e.g. `Deployment`.
    pub kind: &'static str,
    /// Index into [`MESSAGES`].
    pub message: u16,
}}

/// Looks up a message by its fully qualified proto name.
pub fn message_index(name: &str) -> Option<u16> {{
    MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .and_then(|i| u16::try_from(i).ok())
}}

/// Looks up the root message of an (apiVersion, kind).
pub fn root(api_version: &str, kind: &str) -> Option<u16> {{
    ROOTS
        .binary_search_by(|r| (r.api_version, r.kind).cmp(&(api_version, kind)))
        .ok()
        .map(|i| ROOTS[i].message)
}}

const fn f(tag: u32, json: &'static str, kind: Kind, flags: u8) -> Field {{
    Field {{
        tag,
        json,
        kind,
        flags,
    }}
}}

use Kind::*;
"""


def rust_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(out, roots, pb_version, oa_version) -> str:
    msgs = sorted(out.values(), key=lambda m: m.name)
    names = [m.name for m in msgs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        die(f"duplicate proto names: {dup}")
    if len(msgs) > 65535:
        die("too many messages for u16 indices")
    index = {m.key: i for i, m in enumerate(msgs)}
    n_fields = sum(len(m.fields) for m in msgs)
    lines = [
        HEADER.format(
            pb_version=pb_version,
            oa_version=oa_version,
            n_messages=len(msgs),
            n_fields=n_fields,
            n_roots=len(roots),
        )
    ]
    lines.append("/// All messages, sorted by [`Message::name`].")
    lines.append("pub static MESSAGES: &[Message] = &[")
    for i, m in enumerate(msgs):
        lines.append(f"    // {i}")
        lines.append("    Message {")
        lines.append(f"        name: {rust_str(m.name)},")
        lines.append(f"        special: Special::{m.special},")
        if not m.fields:
            lines.append("        fields: &[],")
        else:
            lines.append("        fields: &[")
            for fd in m.fields:
                kind = fd.kind
                if kind in ("Message", "MapMessage"):
                    kind = f"{kind}({index[fd.target]})"
                flags = []
                if fd.repeated:
                    flags.append("REPEATED")
                if fd.omit_zero:
                    flags.append("OMIT_ZERO")
                if fd.inline:
                    flags.append("INLINE")
                flag_s = " | ".join(flags) if flags else "0"
                lines.append(f"            f({fd.tag}, {rust_str(fd.json)}, {kind}, {flag_s}),")
            lines.append("        ],")
        lines.append("    },")
    lines.append("];")
    lines.append("")
    lines.append("/// Root kinds, sorted by (`api_version`, `kind`).")
    lines.append("pub static ROOTS: &[Root] = &[")
    for (av, kind), key in sorted(roots.items()):
        lines.append(
            f"    Root {{ api_version: {rust_str(av)}, kind: {rust_str(kind)}, message: {index[key]} }},"
        )
    lines.append("];")
    return "\n".join(lines) + "\n"


def rustfmt(text: str) -> str:
    try:
        res = subprocess.run(
            ["rustfmt", "--edition", "2024", "--emit", "stdout", "--quiet"],
            input=text,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as e:
        warn(f"rustfmt not run ({e}); output is unformatted")
        return text
    if res.returncode != 0:
        die(f"rustfmt failed:\n{res.stderr}")
    return res.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k8s-pb", help="k8s-pb crate folder")
    ap.add_argument("--k8s-openapi", help="k8s-openapi crate folder")
    ap.add_argument("--out", default=OUT_RS, help="output file (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="fail if the output is out of date")
    ap.add_argument(
        "--extract-go-hints",
        metavar="GO_BINARY",
        help=f"rewrite {os.path.relpath(HINTS_TSV, WORKSPACE)} from a Kubernetes Go binary",
    )
    args = ap.parse_args()
    if args.extract_go_hints:
        extract_go_hints(args.extract_go_hints)
        return
    pb_root = args.k8s_pb or find_crate("k8s-pb")
    oa_root = args.k8s_openapi or find_crate("k8s-openapi")
    pb_messages, pb_resources = parse_k8s_pb(pb_root)
    oa_types, oa_resources = parse_k8s_openapi(oa_root)
    hints = load_go_hints()
    out, roots, stats = build(pb_messages, pb_resources, oa_types, oa_resources, hints)
    text = rustfmt(
        render(
            out,
            roots,
            os.path.basename(pb_root).removeprefix("k8s-pb-"),
            os.path.basename(oa_root).removeprefix("k8s-openapi-"),
        )
    )
    print(
        f"{len(out)} messages ({stats['hinted_messages']} with Go hints), {stats['fields']} fields, "
        f"{len(roots)} root kinds; JSON names from k8s-openapi: {stats['openapi']}, Go tags: "
        f"{stats['go']}, other versions: {stats['sibling']}, other types: {stats['global']}, "
        f"camelCase guess: {stats['camel']}; omit-zero fields: {stats['omit_zero']} "
        f"({stats['sibling_omit_zero']} from other versions, {stats['openapi_omit_zero']} from OpenAPI), "
        f"inline fields: {stats['inline']}",
        file=sys.stderr,
    )
    if args.check:
        current = open(args.out, encoding="utf-8").read() if os.path.exists(args.out) else ""
        if current != text:
            die(f"{args.out} is out of date; run {os.path.relpath(__file__, WORKSPACE)}")
        return
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
