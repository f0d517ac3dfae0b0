//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! decoded into the JSON Kubernetes would produce for the same object.
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` message whose
//! `typeMeta` names the object's apiVersion and kind and whose `raw` holds the
//! object's own message. That message is decoded generically, driven by the
//! table in [`crate::api::protobuf_schema`] (generated from k8s-pb and
//! k8s-openapi by `host/tools/gen_protobuf_schema.py`), so every built-in kind
//! is covered. Types Kubernetes serializes specially are handled here:
//! `Quantity`, `IntOrString`, `Time`, `MicroTime`, `Duration`, `RawExtension`,
//! `FieldsV1`, the apiextensions `JSON` and `JSONSchemaPropsOr*` wrappers, and
//! the `Verbs`/`ExtraValue` string lists; `bytes` become base64 strings.
//!
//! Field presence follows Go: scalars Go declares as non-pointer `omitempty`
//! are always on the wire (gogo-protobuf writes them) but their zero value is
//! left out of the JSON; any other field present on the wire is kept, zero or
//! not (`replicas: 0`), and absent fields stay absent.
//!
//! The decoder never panics on malformed input, checks every length against
//! the bytes that remain, and limits message nesting to [`MAX_DEPTH`].

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::api::protobuf_schema::{self as schema, Field, Kind, Special};

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Deepest message nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with [`MAGIC`].
    #[error("not a Kubernetes protobuf body: it does not start with the magic bytes \"k8s\\0\"")]
    MissingMagic,
    /// The apiVersion/kind is not a built-in kind the table knows.
    #[error(
        "protobuf bodies are supported for built-in kinds only; send JSON for {kind} ({api_version})"
    )]
    UnsupportedKind {
        /// `typeMeta.apiVersion` of the body.
        api_version: String,
        /// `typeMeta.kind` of the body.
        kind: String,
    },
    /// The `runtime.Unknown` envelope asks for something this decoder does not do.
    #[error("unsupported protobuf envelope: {0}")]
    UnsupportedEnvelope(String),
    /// The bytes are not a valid encoding of the message.
    #[error("malformed protobuf body at {path}: {reason}")]
    Malformed {
        /// Where, as a JSON path (`spec.template.spec.containers[0].ports`).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl ProtobufError {
    fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed {
            path: String::new(),
            reason: reason.into(),
        }
    }

    /// Prefixes the path of a [`ProtobufError::Malformed`] with `segment`.
    fn at(mut self, segment: &str) -> Self {
        if let Self::Malformed { path, .. } = &mut self {
            if path.is_empty() {
                *path = segment.to_owned();
            } else if path.starts_with('[') || segment.is_empty() {
                path.insert_str(0, segment);
            } else {
                path.insert(0, '.');
                path.insert_str(0, segment);
            }
        }
        self
    }

    fn finish(self) -> Self {
        match self {
            Self::Malformed { path, reason } if path.is_empty() => Self::Malformed {
                path: "(top level)".to_owned(),
                reason,
            },
            other => other,
        }
    }
}

type Result<T, E = ProtobufError> = std::result::Result<T, E>;

/// Decodes a Kubernetes protobuf body (magic, `runtime.Unknown`, object) into
/// the object's JSON, with `kind` and `apiVersion` set.
pub fn decode(body: &[u8]) -> Result<Value> {
    decode_envelope(body, 0).map_err(ProtobufError::finish)
}

/// Decodes the bytes of one object message (the `raw` of the envelope) of the
/// given built-in kind into JSON, with `kind` and `apiVersion` set.
pub fn decode_object(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value> {
    decode_root(api_version, kind, raw, 0).map_err(ProtobufError::finish)
}

/// Whether protobuf bodies of this apiVersion/kind can be decoded.
pub fn is_supported_kind(api_version: &str, kind: &str) -> bool {
    schema::root(api_version, kind).is_some()
}

/// Whether a `Content-Type` header value names Kubernetes protobuf.
pub fn is_protobuf_content_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

fn decode_envelope(body: &[u8], depth: usize) -> Result<Value> {
    let raw_unknown = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::MissingMagic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut content_encoding = String::new();
    let mut content_type = String::new();
    let mut r = Reader::new(raw_unknown);
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        match (tag, wire) {
            (1, WIRE_LEN) => {
                (api_version, kind) = r
                    .bytes()
                    .and_then(|bytes| type_meta(bytes, depth))
                    .map_err(|e| e.at("typeMeta"))?;
            }
            (2, WIRE_LEN) => raw = r.bytes().map_err(|e| e.at("raw"))?,
            (3, WIRE_LEN) => content_encoding = r.string().map_err(|e| e.at("contentEncoding"))?,
            (4, WIRE_LEN) => content_type = r.string().map_err(|e| e.at("contentType"))?,
            _ => r.skip(tag, wire, depth)?,
        }
    }
    if !content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEnvelope(format!(
            "content encoding {content_encoding:?}"
        )));
    }
    if !content_type.is_empty() && !is_protobuf_content_type(&content_type) {
        return Err(ProtobufError::UnsupportedEnvelope(format!(
            "raw object of content type {content_type:?}"
        )));
    }
    if api_version.is_empty() || kind.is_empty() {
        return Err(
            ProtobufError::malformed("runtime.Unknown without apiVersion and kind").at("typeMeta"),
        );
    }
    decode_root(&api_version, &kind, raw, depth)
}

/// `runtime.TypeMeta`: (apiVersion, kind).
fn type_meta(bytes: &[u8], depth: usize) -> Result<(String, String)> {
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        match (tag, wire) {
            (1, WIRE_LEN) => api_version = r.string().map_err(|e| e.at("apiVersion"))?,
            (2, WIRE_LEN) => kind = r.string().map_err(|e| e.at("kind"))?,
            _ => r.skip(tag, wire, depth)?,
        }
    }
    Ok((api_version, kind))
}

fn decode_root(api_version: &str, kind: &str, raw: &[u8], depth: usize) -> Result<Value> {
    let index = schema::root(api_version, kind).ok_or_else(|| ProtobufError::UnsupportedKind {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
    })?;
    let mut out = Map::new();
    out.insert("kind".to_owned(), Value::String(kind.to_owned()));
    out.insert(
        "apiVersion".to_owned(),
        Value::String(api_version.to_owned()),
    );
    match decode_message(index, raw, depth + 1)? {
        Value::Object(fields) => out.extend(fields),
        _ => {
            return Err(ProtobufError::malformed(
                "root kind is not an object message",
            ));
        }
    }
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------
// Wire reader
// ---------------------------------------------------------------------------

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_START_GROUP: u8 = 3;
const WIRE_END_GROUP: u8 = 4;
const WIRE_FIXED32: u8 = 5;

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte > 1 {
                    return Err(ProtobufError::malformed("varint overflows 64 bits"));
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(ProtobufError::malformed(if self.buf.len() >= 10 {
            "varint longer than 10 bytes"
        } else {
            "truncated varint"
        }))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(ProtobufError::malformed(format!(
                "length {n} exceeds the {} bytes that remain",
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn fixed64(&mut self) -> Result<u64> {
        let bytes = self.take(8)?;
        let mut arr = [0u8; 8];
        arr.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(arr))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(len)
    }

    fn string(&mut self) -> Result<String> {
        Ok(utf8(self.bytes()?))
    }

    fn key(&mut self) -> Result<(u32, u8)> {
        let key = self.varint()?;
        let wire = (key & 7) as u8;
        let tag = key >> 3;
        if tag == 0 || tag > u64::from(u32::MAX >> 3) {
            return Err(ProtobufError::malformed(format!(
                "invalid field number {tag}"
            )));
        }
        Ok((tag as u32, wire))
    }

    /// Skips the value of a field this decoder does not know.
    fn skip(&mut self, tag: u32, wire: u8, depth: usize) -> Result<()> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.take(8).map(drop),
            WIRE_LEN => self.bytes().map(drop),
            WIRE_FIXED32 => self.take(4).map(drop),
            WIRE_START_GROUP => {
                if depth >= MAX_DEPTH {
                    return Err(too_deep());
                }
                loop {
                    if self.is_empty() {
                        return Err(ProtobufError::malformed(format!(
                            "unterminated group {tag}"
                        )));
                    }
                    let (inner, inner_wire) = self.key()?;
                    if inner_wire == WIRE_END_GROUP {
                        if inner != tag {
                            return Err(ProtobufError::malformed(format!(
                                "group {tag} ended by end-group {inner}"
                            )));
                        }
                        return Ok(());
                    }
                    self.skip(inner, inner_wire, depth + 1)?;
                }
            }
            WIRE_END_GROUP => Err(ProtobufError::malformed(format!(
                "unexpected end-group {tag}"
            ))),
            _ => Err(ProtobufError::malformed(format!(
                "invalid wire type {wire} for field {tag}"
            ))),
        }
    }
}

fn too_deep() -> ProtobufError {
    ProtobufError::malformed(format!("messages nested deeper than {MAX_DEPTH} levels"))
}

/// Go strings may hold any bytes; encoding/json writes invalid UTF-8 as U+FFFD.
fn utf8(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn base64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

// ---------------------------------------------------------------------------
// Generic message decoding
// ---------------------------------------------------------------------------

/// What the wire held for one field.
enum Slot<'a> {
    Empty,
    /// A singular scalar (the last occurrence wins).
    Scalar(Value),
    /// A singular message: its occurrences, merged by decoding their concatenation.
    Message(Vec<&'a [u8]>),
    /// A repeated field.
    List(Vec<Value>),
    /// A map field.
    Map(Map<String, Value>),
}

fn decode_message(index: u16, buf: &[u8], depth: usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let message = schema::MESSAGES
        .get(usize::from(index))
        .ok_or_else(|| ProtobufError::malformed(format!("schema has no message {index}")))?;
    match message.special {
        Special::Time | Special::MicroTime => return time(buf, message.special, depth),
        Special::RawExtension | Special::RawJson => return raw_json(buf, message.special, depth),
        _ => {}
    }
    let fields = message.fields;
    let mut slots: Vec<Slot<'_>> = fields.iter().map(|_| Slot::Empty).collect();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        let Some(i) = fields.iter().position(|f| f.tag == tag) else {
            r.skip(tag, wire, depth)?;
            continue;
        };
        let field = &fields[i];
        read_field(field, wire, &mut r, &mut slots[i], depth).map_err(|e| e.at(segment(field)))?;
    }
    let mut out = Map::new();
    for (field, slot) in fields.iter().zip(slots) {
        let value = match slot {
            Slot::Empty => continue,
            Slot::Scalar(v) => {
                if field.omit_zero() && is_zero(&v) {
                    continue;
                }
                v
            }
            Slot::Message(parts) => {
                let Kind::Message(target) = field.kind else {
                    continue;
                };
                let value = if let [one] = parts.as_slice() {
                    decode_message(target, one, depth + 1)
                } else {
                    decode_message(target, &parts.concat(), depth + 1)
                }
                .map_err(|e| e.at(segment(field)))?;
                if field.inline() {
                    if let Value::Object(members) = value {
                        out.extend(members);
                    }
                    continue;
                }
                value
            }
            Slot::List(items) => Value::Array(items),
            Slot::Map(entries) => Value::Object(entries),
        };
        out.insert(field.json.to_owned(), value);
    }
    match message.special {
        Special::None => Ok(Value::Object(out)),
        special => finish_special(special, out),
    }
}

fn segment(field: &Field) -> &'static str {
    if field.inline() { "" } else { field.json }
}

fn read_field<'a>(
    field: &Field,
    wire: u8,
    r: &mut Reader<'a>,
    slot: &mut Slot<'a>,
    depth: usize,
) -> Result<()> {
    match field.kind {
        Kind::Message(target) => {
            expect_wire(field, wire, WIRE_LEN)?;
            let bytes = r.bytes()?;
            if field.repeated() {
                let list = list_slot(slot);
                let value = decode_message(target, bytes, depth + 1)
                    .map_err(|e| e.at(&format!("[{}]", list.len())))?;
                list.push(value);
            } else if let Slot::Message(parts) = slot {
                parts.push(bytes);
            } else {
                *slot = Slot::Message(vec![bytes]);
            }
        }
        Kind::MapString | Kind::MapBytes | Kind::MapMessage(_) => {
            expect_wire(field, wire, WIRE_LEN)?;
            let entry = r.bytes()?;
            let (key, value) = map_entry(field.kind, entry, depth)?;
            if !matches!(slot, Slot::Map(_)) {
                *slot = Slot::Map(Map::new());
            }
            if let Slot::Map(map) = slot {
                map.insert(key, value);
            }
        }
        Kind::String | Kind::Bytes => {
            expect_wire(field, wire, WIRE_LEN)?;
            let bytes = r.bytes()?;
            let value = if field.kind == Kind::String {
                Value::String(utf8(bytes))
            } else {
                base64(bytes)
            };
            store_scalar(field, slot, value);
        }
        Kind::Bool | Kind::Int32 | Kind::Int64 | Kind::Double => {
            let scalar_wire = if field.kind == Kind::Double {
                WIRE_FIXED64
            } else {
                WIRE_VARINT
            };
            if wire == WIRE_LEN && field.repeated() {
                // Packed encoding.
                let mut packed = Reader::new(r.bytes()?);
                while !packed.is_empty() {
                    let value = read_number(field.kind, &mut packed)?;
                    list_slot(slot).push(value);
                }
            } else {
                expect_wire(field, wire, scalar_wire)?;
                let value = read_number(field.kind, r)?;
                store_scalar(field, slot, value);
            }
        }
    }
    Ok(())
}

fn expect_wire(field: &Field, wire: u8, expected: u8) -> Result<()> {
    if wire == expected {
        Ok(())
    } else {
        Err(ProtobufError::malformed(format!(
            "wire type {wire} where {:?} (wire type {expected}) was expected",
            field.kind
        )))
    }
}

fn list_slot<'s, 'a>(slot: &'s mut Slot<'a>) -> &'s mut Vec<Value> {
    if !matches!(slot, Slot::List(_)) {
        *slot = Slot::List(Vec::new());
    }
    match slot {
        Slot::List(list) => list,
        _ => unreachable!("slot was just made a list"),
    }
}

fn store_scalar(field: &Field, slot: &mut Slot<'_>, value: Value) {
    if field.repeated() {
        list_slot(slot).push(value);
    } else {
        *slot = Slot::Scalar(value);
    }
}

fn read_number(kind: Kind, r: &mut Reader<'_>) -> Result<Value> {
    Ok(match kind {
        Kind::Bool => Value::Bool(r.varint()? != 0),
        // int32 is sign-extended to 64 bits on the wire; keep the low 32.
        Kind::Int32 => Value::Number(Number::from(r.varint()? as u32 as i32)),
        Kind::Int64 => Value::Number(Number::from(r.varint()? as i64)),
        Kind::Double => double(f64::from_bits(r.fixed64()?))?,
        other => {
            return Err(ProtobufError::malformed(format!(
                "{other:?} is not a number"
            )));
        }
    })
}

/// A JSON number as Go's encoding/json writes a float64: integral values
/// without a fraction (`1`, not `1.0`).
fn double(x: f64) -> Result<Value> {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        return Ok(Value::Number(Number::from(x as i64)));
    }
    Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| ProtobufError::malformed(format!("{x} has no JSON representation")))
}

fn map_entry(kind: Kind, entry: &[u8], depth: usize) -> Result<(String, Value)> {
    let mut key = String::new();
    let mut value: Option<&[u8]> = None;
    let mut r = Reader::new(entry);
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        match (tag, wire) {
            (1, WIRE_LEN) => key = r.string()?,
            (2, WIRE_LEN) => value = Some(r.bytes()?),
            (1 | 2, _) => {
                return Err(ProtobufError::malformed(format!(
                    "map entry field {tag} has wire type {wire}"
                )));
            }
            _ => r.skip(tag, wire, depth)?,
        }
    }
    let bytes = value.unwrap_or_default();
    let value = match kind {
        Kind::MapString => Value::String(utf8(bytes)),
        Kind::MapBytes => base64(bytes),
        Kind::MapMessage(target) => {
            decode_message(target, bytes, depth + 1).map_err(|e| e.at(&format!("[{key:?}]")))?
        }
        _ => return Err(ProtobufError::malformed("not a map")),
    };
    Ok((key, value))
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Specially serialized types
// ---------------------------------------------------------------------------

fn finish_special(special: Special, mut obj: Map<String, Value>) -> Result<Value> {
    let mut take = |name: &str| obj.remove(name);
    Ok(match special {
        Special::Quantity => take("string").unwrap_or_else(|| Value::String("0".to_owned())),
        Special::IntOrString => {
            let ty = take("type").and_then(|v| v.as_i64()).unwrap_or(0);
            match ty {
                0 => take("intVal").unwrap_or_else(|| Value::Number(0.into())),
                1 => take("strVal").unwrap_or_else(|| Value::String(String::new())),
                other => {
                    return Err(ProtobufError::malformed(format!(
                        "IntOrString of unknown type {other}"
                    )));
                }
            }
        }
        Special::Duration => {
            let nanos = take("duration").and_then(|v| v.as_i64()).unwrap_or(0);
            Value::String(go_duration(nanos))
        }
        Special::StringList => match take("items") {
            Some(items @ Value::Array(_)) => items,
            _ => Value::Null,
        },
        Special::SchemaOrArray => match (take("jSONSchemas"), take("schema")) {
            (Some(list @ Value::Array(_)), _) => list,
            (_, Some(schema)) => schema,
            _ => Value::Null,
        },
        Special::SchemaOrBool => match take("schema") {
            Some(schema) => schema,
            None => Value::Bool(take("allows").and_then(|v| v.as_bool()).unwrap_or(false)),
        },
        Special::SchemaOrStringArray => match (take("property"), take("schema")) {
            (Some(list @ Value::Array(_)), _) => list,
            (_, Some(schema)) => schema,
            _ => Value::Null,
        },
        Special::None
        | Special::Time
        | Special::MicroTime
        | Special::RawExtension
        | Special::RawJson => Value::Object(obj),
    })
}

/// Seconds between 0001-01-01T00:00:00Z (Go's zero `time.Time`) and the Unix epoch.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// `meta.v1.Time` (whole seconds, as Kubernetes drops the nanoseconds when
/// decoding) and `meta.v1.MicroTime` (microseconds); `null` for the zero time.
fn time(buf: &[u8], special: Special, depth: usize) -> Result<Value> {
    if buf.is_empty() {
        return Ok(Value::Null);
    }
    let mut seconds = 0i64;
    let mut nanos = 0i64;
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        match (tag, wire) {
            (1, WIRE_VARINT) => seconds = r.varint()? as i64,
            (2, WIRE_VARINT) => nanos = i64::from(r.varint()? as u32 as i32),
            (1 | 2, _) => {
                return Err(ProtobufError::malformed(format!(
                    "time field {tag} has wire type {wire}"
                )));
            }
            _ => r.skip(tag, wire, depth)?,
        }
    }
    let micro = special == Special::MicroTime;
    if !micro {
        nanos = 0;
    }
    let seconds = seconds
        .checked_add(nanos.div_euclid(1_000_000_000))
        .ok_or_else(|| ProtobufError::malformed("time out of range"))?;
    let nanos = nanos.rem_euclid(1_000_000_000);
    if seconds == GO_ZERO_TIME_UNIX && nanos == 0 {
        return Ok(Value::Null);
    }
    rfc3339(seconds, micro.then_some(nanos / 1000)).map(Value::String)
}

/// `2006-01-02T15:04:05Z`, or `2006-01-02T15:04:05.000000Z` with micros.
fn rfc3339(seconds: i64, micros: Option<i64>) -> Result<String> {
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return Err(ProtobufError::malformed(format!(
            "time {seconds}s after the epoch is outside the years 0-9999 JSON can hold"
        )));
    }
    let (h, m, s) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    Ok(match micros {
        Some(us) => format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{us:06}Z"),
        None => format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"),
    })
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    fn frac(value: u64, digits: usize) -> String {
        let s = format!("{value:0digits$}");
        let s = s.trim_end_matches('0');
        if s.is_empty() {
            String::new()
        } else {
            format!(".{s}")
        }
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".to_owned();
    }
    if u < 1_000_000_000 {
        let (unit, prec) = if u < 1_000 {
            ("ns", 0)
        } else if u < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        let scale = 10u64.pow(prec as u32);
        return format!("{sign}{}{}{unit}", u / scale, frac(u % scale, prec));
    }
    let fraction = frac(u % 1_000_000_000, 9);
    let total = u / 1_000_000_000;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}{fraction}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}{fraction}s")
    } else {
        format!("{sign}{s}{fraction}s")
    }
}

/// `runtime.RawExtension`, `meta.v1.FieldsV1` and apiextensions `JSON`: the
/// `raw` bytes are the JSON value itself (`null` when empty). A
/// RawExtension may also hold a nested Kubernetes protobuf object.
fn raw_json(buf: &[u8], special: Special, depth: usize) -> Result<Value> {
    let mut raw: &[u8] = &[];
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (tag, wire) = r.key()?;
        match (tag, wire) {
            (1, WIRE_LEN) => raw = r.bytes()?,
            (1, _) => {
                return Err(ProtobufError::malformed(format!(
                    "raw has wire type {wire}"
                )));
            }
            _ => r.skip(tag, wire, depth)?,
        }
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if special == Special::RawExtension && raw.starts_with(MAGIC) {
        return decode_envelope(raw, depth).map_err(|e| e.at("raw"));
    }
    serde_json::from_slice(raw)
        .map_err(|e| ProtobufError::malformed(format!("embedded JSON is invalid: {e}")).at("raw"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // ---- fixtures captured from the real kubectl ---------------------------

    macro_rules! fixture {
        ($name:literal) => {
            (
                $name,
                include_bytes!(concat!("../../tests/fixtures/protobuf/", $name, ".pb")),
                include_str!(concat!("../../tests/fixtures/protobuf/", $name, ".json")),
            )
        };
    }

    /// Bodies kubectl v1.32 POSTed for `kubectl create ...`, with the JSON
    /// `kubectl create ... --dry-run=client -o json` prints for the same
    /// command (host/tests/fixtures/protobuf/README.md, capture.py).
    const FIXTURES: &[(&str, &[u8], &str)] = &[
        fixture!("clusterrole"),
        fixture!("clusterrolebinding"),
        fixture!("configmap"),
        fixture!("cronjob"),
        fixture!("deployment"),
        fixture!("deployment-zero-replicas"),
        fixture!("ingress"),
        fixture!("job"),
        fixture!("namespace"),
        fixture!("poddisruptionbudget"),
        fixture!("priorityclass"),
        fixture!("quota"),
        fixture!("role"),
        fixture!("rolebinding"),
        fixture!("secret-docker-registry"),
        fixture!("secret-generic"),
        fixture!("service-clusterip"),
        fixture!("service-externalname"),
        fixture!("service-nodeport"),
        fixture!("serviceaccount"),
        fixture!("token"),
    ];

    /// Go writes a nil slice, map or pointer of a field without `omitempty`
    /// as `null` (ClusterRole `rules: null`); on the wire such a field is
    /// simply absent, and absent fields stay absent in the decoder's JSON.
    /// Comparisons therefore drop `null` members, everywhere else the JSON
    /// must be identical.
    fn without_nulls(value: Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, without_nulls(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
            other => other,
        }
    }

    #[test]
    fn fixtures_decode_to_kubectl_json() {
        let mut failures = Vec::new();
        for (name, body, json) in FIXTURES {
            let expected: Value = serde_json::from_str(json).expect(name);
            match decode(body) {
                Ok(got) if without_nulls(got.clone()) == without_nulls(expected.clone()) => {}
                Ok(got) => {
                    failures.push(format!("{name}:\n  got      {got}\n  expected {expected}"))
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(FIXTURES.len() >= 21);
    }

    // ---- helpers -----------------------------------------------------------

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
        use prost::Message as _;
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.to_owned()),
                kind: Some(kind.to_owned()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    fn encode<M: prost::Message>(api_version: &str, kind: &str, message: &M) -> Vec<u8> {
        envelope(api_version, kind, message.encode_to_vec())
    }

    fn s(value: &str) -> Option<String> {
        Some(value.to_owned())
    }

    fn time(seconds: i64) -> Option<k8s_pb::apimachinery::pkg::apis::meta::v1::Time> {
        Some(k8s_pb::apimachinery::pkg::apis::meta::v1::Time {
            seconds: Some(seconds),
            nanos: Some(987_654_321),
        })
    }

    fn int_or_string(
        value: Result<i32, &str>,
    ) -> Option<k8s_pb::apimachinery::pkg::util::intstr::IntOrString> {
        use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
        Some(match value {
            Ok(i) => IntOrString {
                r#type: Some(0),
                int_val: Some(i),
                str_val: Some(String::new()),
            },
            Err(text) => IntOrString {
                r#type: Some(1),
                int_val: Some(0),
                str_val: s(text),
            },
        })
    }

    fn quantity(value: &str) -> k8s_pb::apimachinery::pkg::api::resource::Quantity {
        k8s_pb::apimachinery::pkg::api::resource::Quantity { string: s(value) }
    }

    /// Appends a field to an encoded message.
    fn push_field(buf: &mut Vec<u8>, tag: u32, wire: u8, payload: &[u8]) {
        prost::encoding::encode_varint(u64::from(tag << 3 | u32::from(wire)), buf);
        if wire == WIRE_LEN {
            prost::encoding::encode_varint(payload.len() as u64, buf);
        }
        buf.extend_from_slice(payload);
    }

    fn varint(value: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        prost::encoding::encode_varint(value, &mut buf);
        buf
    }

    // ---- objects built with k8s-pb ------------------------------------------

    #[test]
    fn deployment_with_special_types_inline_fields_and_explicit_zeroes() {
        use k8s_pb::api::apps::v1 as apps;
        use k8s_pb::api::core::v1 as core;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        let labels = std::collections::BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        let deployment = apps::Deployment {
            metadata: Some(meta::ObjectMeta {
                name: s("web"),
                namespace: s("prod"),
                generate_name: s(""),
                generation: Some(0),
                creation_timestamp: time(1_700_000_000),
                labels: labels.clone(),
                managed_fields: vec![meta::ManagedFieldsEntry {
                    manager: s("kubectl"),
                    operation: s("Update"),
                    time: time(0),
                    fields_type: s("FieldsV1"),
                    fields_v1: Some(meta::FieldsV1 {
                        raw: Some(br#"{"f:spec":{"f:replicas":{}}}"#.to_vec()),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                min_ready_seconds: Some(0),
                paused: Some(false),
                revision_history_limit: Some(0),
                selector: Some(meta::LabelSelector {
                    match_labels: labels.clone(),
                    ..Default::default()
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: s("RollingUpdate"),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_surge: int_or_string(Err("25%")),
                        max_unavailable: int_or_string(Ok(0)),
                    }),
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta {
                        creation_timestamp: Some(meta::Time::default()),
                        ..Default::default()
                    }),
                    spec: Some(core::PodSpec {
                        termination_grace_period_seconds: Some(-1),
                        host_network: Some(false),
                        security_context: Some(core::PodSecurityContext {
                            supplemental_groups: vec![1000, -5],
                            ..Default::default()
                        }),
                        containers: vec![core::Container {
                            name: s("nginx"),
                            image: s("nginx:1.27"),
                            image_pull_policy: s("IfNotPresent"),
                            resources: Some(core::ResourceRequirements {
                                limits: [
                                    ("cpu".to_owned(), quantity("500m")),
                                    ("memory".to_owned(), quantity("128Mi")),
                                ]
                                .into(),
                                ..Default::default()
                            }),
                            liveness_probe: Some(core::Probe {
                                handler: Some(core::ProbeHandler {
                                    http_get: Some(core::HttpGetAction {
                                        path: s("/healthz"),
                                        port: int_or_string(Ok(8080)),
                                        ..Default::default()
                                    }),
                                    ..Default::default()
                                }),
                                period_seconds: Some(10),
                                ..Default::default()
                            }),
                            env: vec![core::EnvVar {
                                name: s("MODE"),
                                value_from: Some(core::EnvVarSource {
                                    config_map_key_ref: Some(core::ConfigMapKeySelector {
                                        local_object_reference: Some(core::LocalObjectReference {
                                            name: s("settings"),
                                        }),
                                        key: s("mode"),
                                        optional: Some(false),
                                    }),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        volumes: vec![core::Volume {
                            name: s("data"),
                            volume_source: Some(core::VolumeSource {
                                aws_elastic_block_store: Some(
                                    core::AwsElasticBlockStoreVolumeSource {
                                        volume_id: s("vol-1"),
                                        fs_type: s("ext4"),
                                        ..Default::default()
                                    },
                                ),
                                ..Default::default()
                            }),
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus {
                conditions: vec![apps::DeploymentCondition {
                    r#type: s("Available"),
                    status: s("True"),
                    last_update_time: time(951_782_400), // 2000-02-29
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        let got = decode(&encode("apps/v1", "Deployment", &deployment)).unwrap();
        let expected = json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {
                "name": "web",
                "namespace": "prod",
                "creationTimestamp": "2023-11-14T22:13:20Z",
                "labels": {"app": "web"},
                "managedFields": [{
                    "manager": "kubectl",
                    "operation": "Update",
                    "time": "1970-01-01T00:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}}
                }]
            },
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"creationTimestamp": null},
                    "spec": {
                        "volumes": [{
                            "name": "data",
                            "awsElasticBlockStore": {"volumeID": "vol-1", "fsType": "ext4"}
                        }],
                        "containers": [{
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "env": [{
                                "name": "MODE",
                                "valueFrom": {
                                    "configMapKeyRef": {"name": "settings", "key": "mode", "optional": false}
                                }
                            }],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": 8080},
                                "periodSeconds": 10
                            },
                            "imagePullPolicy": "IfNotPresent"
                        }],
                        "terminationGracePeriodSeconds": -1,
                        "securityContext": {"supplementalGroups": [1000, -5]}
                    }
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}
                },
                "revisionHistoryLimit": 0
            },
            "status": {
                "conditions": [{
                    "type": "Available",
                    "status": "True",
                    "lastUpdateTime": "2000-02-29T00:00:00Z"
                }]
            }
        });
        assert_eq!(got, expected);
        // The typed k8s-openapi Deployment reads every member back.
        let typed: k8s_openapi::api::apps::v1::Deployment =
            serde_json::from_value(got.clone()).unwrap();
        assert_eq!(
            without_nulls(serde_json::to_value(&typed).unwrap()),
            without_nulls(got)
        );
    }

    #[test]
    fn secret_and_config_map_bytes_are_base64() {
        use k8s_pb::api::core::v1 as core;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        let secret = core::Secret {
            metadata: Some(meta::ObjectMeta {
                name: s("tls"),
                ..Default::default()
            }),
            r#type: s("Opaque"),
            immutable: Some(false),
            data: [
                ("bin".to_owned(), vec![0u8, 0xff, 0xfe, b'\n']),
                ("empty".to_owned(), Vec::new()),
            ]
            .into(),
            string_data: [("plain".to_owned(), "text".to_owned())].into(),
        };
        let got = decode(&encode("v1", "Secret", &secret)).unwrap();
        assert_eq!(
            got,
            json!({
                "kind": "Secret",
                "apiVersion": "v1",
                "metadata": {"name": "tls"},
                "immutable": false,
                "data": {"bin": "AP/+Cg==", "empty": ""},
                "stringData": {"plain": "text"},
                "type": "Opaque"
            })
        );
        let config_map = core::ConfigMap {
            metadata: Some(meta::ObjectMeta {
                name: s("cm"),
                ..Default::default()
            }),
            data: [("k".to_owned(), "v".to_owned())].into(),
            binary_data: [("b".to_owned(), b"hi".to_vec())].into(),
            ..Default::default()
        };
        let got = decode(&encode("v1", "ConfigMap", &config_map)).unwrap();
        assert_eq!(got["data"], json!({"k": "v"}));
        assert_eq!(got["binaryData"], json!({"b": "aGk="}));
    }

    #[test]
    fn micro_time_lease_and_event() {
        use k8s_pb::api::coordination::v1 as coordination;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        let lease = coordination::Lease {
            metadata: Some(meta::ObjectMeta {
                name: s("leader"),
                ..Default::default()
            }),
            spec: Some(coordination::LeaseSpec {
                holder_identity: s("node-a"),
                lease_duration_seconds: Some(15),
                acquire_time: Some(meta::MicroTime {
                    seconds: Some(1_700_000_000),
                    nanos: Some(123_456_789),
                }),
                renew_time: Some(meta::MicroTime::default()),
                ..Default::default()
            }),
        };
        let got = decode(&encode("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
        assert_eq!(
            got["spec"],
            json!({
                "holderIdentity": "node-a",
                "leaseDurationSeconds": 15,
                "acquireTime": "2023-11-14T22:13:20.123456Z",
                "renewTime": null
            })
        );
        let event = k8s_pb::api::events::v1::Event {
            event_time: Some(meta::MicroTime {
                seconds: Some(0),
                nanos: Some(1_000),
            }),
            reason: s("Started"),
            ..Default::default()
        };
        let got = decode(&encode("events.k8s.io/v1", "Event", &event)).unwrap();
        assert_eq!(got["eventTime"], json!("1970-01-01T00:00:00.000001Z"));
        assert_eq!(got["reason"], json!("Started"));
    }

    #[test]
    fn custom_resource_definition_schema() {
        use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        let raw = |text: &str| ext::Json {
            raw: Some(text.as_bytes().to_vec()),
        };
        let integer = ext::JsonSchemaProps {
            // Go's non-pointer `omitempty` zero values (always on the wire).
            id: s(""),
            description: s(""),
            nullable: Some(false),
            r#type: s("integer"),
            minimum: Some(1.0),
            maximum: Some(10.5),
            default: Some(raw("3")),
            ..Default::default()
        };
        let schema = ext::JsonSchemaProps {
            r#type: s("object"),
            properties: [
                ("replicas".to_owned(), integer),
                (
                    "tags".to_owned(),
                    ext::JsonSchemaProps {
                        r#type: s("array"),
                        items: Some(Box::new(ext::JsonSchemaPropsOrArray {
                            schema: Some(Box::new(ext::JsonSchemaProps {
                                r#type: s("string"),
                                r#enum: vec![raw(r#""a""#), raw(r#""b""#)],
                                ..Default::default()
                            })),
                            j_son_schemas: Vec::new(),
                        })),
                        x_kubernetes_list_type: s("set"),
                        ..Default::default()
                    },
                ),
                (
                    "labels".to_owned(),
                    ext::JsonSchemaProps {
                        r#type: s("object"),
                        additional_properties: Some(Box::new(ext::JsonSchemaPropsOrBool {
                            allows: Some(true),
                            schema: Some(Box::new(ext::JsonSchemaProps {
                                r#type: s("string"),
                                ..Default::default()
                            })),
                        })),
                        ..Default::default()
                    },
                ),
                (
                    "closed".to_owned(),
                    ext::JsonSchemaProps {
                        r#type: s("object"),
                        additional_properties: Some(Box::new(ext::JsonSchemaPropsOrBool {
                            allows: Some(false),
                            schema: None,
                        })),
                        x_kubernetes_preserve_unknown_fields: Some(true),
                        r#ref: s("#/definitions/x"),
                        ..Default::default()
                    },
                ),
            ]
            .into(),
            required: vec!["replicas".to_owned()],
            ..Default::default()
        };
        let crd = ext::CustomResourceDefinition {
            metadata: Some(meta::ObjectMeta {
                name: s("widgets.example.com"),
                ..Default::default()
            }),
            spec: Some(ext::CustomResourceDefinitionSpec {
                group: s("example.com"),
                scope: s("Namespaced"),
                names: Some(ext::CustomResourceDefinitionNames {
                    plural: s("widgets"),
                    kind: s("Widget"),
                    ..Default::default()
                }),
                versions: vec![ext::CustomResourceDefinitionVersion {
                    name: s("v1"),
                    served: Some(true),
                    storage: Some(true),
                    schema: Some(ext::CustomResourceValidation {
                        open_apiv3_schema: Some(schema),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        };
        let got = decode(&encode(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            &crd,
        ))
        .unwrap();
        assert_eq!(
            got["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
            json!({
                "type": "object",
                "required": ["replicas"],
                "properties": {
                    "closed": {
                        "$ref": "#/definitions/x",
                        "type": "object",
                        "additionalProperties": false,
                        "x-kubernetes-preserve-unknown-fields": true
                    },
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "replicas": {"type": "integer", "default": 3, "maximum": 10.5, "minimum": 1},
                    "tags": {
                        "type": "array",
                        "items": {"type": "string", "enum": ["a", "b"]},
                        "x-kubernetes-list-type": "set"
                    }
                }
            })
        );
        // k8s-openapi reads it (it writes `minimum` back as 1.0 where Go, like
        // this decoder, writes 1).
        let typed: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_json::from_value(got).unwrap();
        assert_eq!(typed.spec.versions[0].name, "v1");
    }

    #[test]
    fn raw_extension_holds_json_or_nested_protobuf() {
        use k8s_pb::api::apps::v1 as apps;
        use k8s_pb::apimachinery::pkg::runtime::RawExtension;
        let revision = |raw: Vec<u8>| apps::ControllerRevision {
            data: Some(RawExtension { raw: Some(raw) }),
            revision: Some(2),
            ..Default::default()
        };
        let got = decode(&encode(
            "apps/v1",
            "ControllerRevision",
            &revision(br#"{"spec":{"x":[1,2]}}"#.to_vec()),
        ))
        .unwrap();
        assert_eq!(got["data"], json!({"spec": {"x": [1, 2]}}));
        assert_eq!(got["revision"], json!(2));

        let config_map = k8s_pb::api::core::v1::ConfigMap {
            data: [("a".to_owned(), "b".to_owned())].into(),
            ..Default::default()
        };
        let nested = encode("v1", "ConfigMap", &config_map);
        let got = decode(&encode("apps/v1", "ControllerRevision", &revision(nested))).unwrap();
        assert_eq!(
            got["data"],
            json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "b"}})
        );

        let err = decode(&encode(
            "apps/v1",
            "ControllerRevision",
            &revision(b"{not json".to_vec()),
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("at data.raw: embedded JSON is invalid"),
            "{err}"
        );
    }

    #[test]
    fn string_lists_and_negative_ints() {
        use k8s_pb::api::authorization::v1 as authz;
        let review = authz::SubjectAccessReview {
            spec: Some(authz::SubjectAccessReviewSpec {
                user: s("alice"),
                extra: [(
                    "scopes".to_owned(),
                    authz::ExtraValue {
                        items: vec!["a".to_owned(), "b".to_owned()],
                    },
                )]
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let got = decode(&encode(
            "authorization.k8s.io/v1",
            "SubjectAccessReview",
            &review,
        ))
        .unwrap();
        assert_eq!(got["spec"]["extra"], json!({"scopes": ["a", "b"]}));

        let class = k8s_pb::api::scheduling::v1::PriorityClass {
            value: Some(-5),
            global_default: Some(false),
            ..Default::default()
        };
        let got = decode(&encode("scheduling.k8s.io/v1", "PriorityClass", &class)).unwrap();
        assert_eq!(got["value"], json!(-5));
        assert_eq!(
            got.get("globalDefault"),
            None,
            "Go omits a false non-pointer omitempty bool"
        );
    }

    #[test]
    fn packed_and_unpacked_repeated_scalars_and_unknown_fields() {
        // PodSecurityContext.supplementalGroups is repeated int64, field 4.
        let index = schema::message_index("k8s.io.api.core.v1.PodSecurityContext").unwrap();
        let mut unpacked = Vec::new();
        push_field(&mut unpacked, 4, WIRE_VARINT, &varint(7));
        push_field(&mut unpacked, 4, WIRE_VARINT, &varint(-1i64 as u64));
        let mut packed = Vec::new();
        let payload = [varint(7), varint(-1i64 as u64)].concat();
        push_field(&mut packed, 4, WIRE_LEN, &payload);
        let expected = json!({"supplementalGroups": [7, -1]});
        assert_eq!(decode_message(index, &unpacked, 0).unwrap(), expected);
        assert_eq!(decode_message(index, &packed, 0).unwrap(), expected);

        // Unknown tags of every wire type, groups included, are skipped.
        let mut with_unknown = packed.clone();
        push_field(&mut with_unknown, 999, WIRE_VARINT, &varint(1));
        push_field(&mut with_unknown, 1000, WIRE_LEN, b"whatever");
        push_field(&mut with_unknown, 1001, WIRE_FIXED64, &[0; 8]);
        push_field(&mut with_unknown, 1002, WIRE_FIXED32, &[0; 4]);
        push_field(&mut with_unknown, 1003, WIRE_START_GROUP, &[]);
        push_field(&mut with_unknown, 1, WIRE_VARINT, &varint(5));
        push_field(&mut with_unknown, 1003, WIRE_END_GROUP, &[]);
        assert_eq!(decode_message(index, &with_unknown, 0).unwrap(), expected);

        // A singular message that occurs twice is merged, as protobuf does.
        let deployment_spec = schema::message_index("k8s.io.api.apps.v1.DeploymentSpec").unwrap();
        let mut twice = Vec::new();
        let mut strategy_a = Vec::new();
        push_field(&mut strategy_a, 1, WIRE_LEN, b"Recreate");
        let mut strategy_b = Vec::new();
        push_field(&mut strategy_b, 2, WIRE_LEN, &[]);
        push_field(&mut twice, 4, WIRE_LEN, &strategy_a);
        push_field(&mut twice, 4, WIRE_LEN, &strategy_b);
        assert_eq!(
            decode_message(deployment_spec, &twice, 0).unwrap(),
            json!({"strategy": {"type": "Recreate", "rollingUpdate": {}}})
        );
    }

    #[test]
    fn durations_and_quantities() {
        // metrics.k8s.io NodeMetrics.window is a meta.v1.Duration (field 3).
        let index =
            schema::message_index("k8s.io.metrics.pkg.apis.metrics.v1beta1.NodeMetrics").unwrap();
        let mut window = Vec::new();
        push_field(&mut window, 1, WIRE_VARINT, &varint(90_500_000_000));
        let mut usage_entry = Vec::new();
        push_field(&mut usage_entry, 1, WIRE_LEN, b"cpu");
        push_field(&mut usage_entry, 2, WIRE_LEN, &[]); // empty Quantity
        let mut body = Vec::new();
        push_field(&mut body, 3, WIRE_LEN, &window);
        push_field(&mut body, 4, WIRE_LEN, &usage_entry);
        assert_eq!(
            decode_message(index, &body, 0).unwrap(),
            json!({"window": "1m30.5s", "usage": {"cpu": "0"}})
        );
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_000_000, "1ms"),
            (2_250_000, "2.25ms"),
            (1_000_000_000, "1s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_001, "1h2m3.000000001s"),
            (-90_000_000_000, "-1m30s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(go_duration(nanos), text, "{nanos}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0, None).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(-1, Some(999_999)).unwrap(),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(rfc3339(951_868_799, None).unwrap(), "2000-02-29T23:59:59Z");
        assert_eq!(
            rfc3339(253_402_300_799, None).unwrap(),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(
            rfc3339(GO_ZERO_TIME_UNIX, None).unwrap(),
            "0001-01-01T00:00:00Z"
        );
        assert!(rfc3339(253_402_300_800, None).is_err());
        assert!(rfc3339(i64::MIN / 2, None).is_err());
        let index = schema::message_index("k8s.io.apimachinery.pkg.apis.meta.v1.Time").unwrap();
        let mut zero = Vec::new();
        push_field(&mut zero, 1, WIRE_VARINT, &varint(GO_ZERO_TIME_UNIX as u64));
        assert_eq!(decode_message(index, &zero, 0).unwrap(), Value::Null);
        assert_eq!(decode_message(index, &[], 0).unwrap(), Value::Null);
    }

    // ---- errors ------------------------------------------------------------

    fn malformed_reason(body: &[u8]) -> String {
        match decode(body) {
            Err(e @ ProtobufError::Malformed { .. }) => e.to_string(),
            Err(e) => panic!("expected a malformed-body error, got {e}"),
            Ok(v) => panic!(
                "expected a malformed-body error, got {:.300}",
                v.to_string()
            ),
        }
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(
            decode(b"{\"kind\":\"Pod\"}"),
            Err(ProtobufError::MissingMagic)
        );
        assert_eq!(decode(b"k8s"), Err(ProtobufError::MissingMagic));
        let err = decode(&envelope("example.com/v1", "Widget", Vec::new())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "protobuf bodies are supported for built-in kinds only; send JSON for Widget (example.com/v1)"
        );
        assert!(!is_supported_kind("example.com/v1", "Widget"));
        assert!(is_supported_kind("apps/v1", "Deployment"));
        assert!(is_supported_kind("v1", "PodList"));
        assert!(is_protobuf_content_type(
            "application/vnd.kubernetes.protobuf; charset=x"
        ));
        assert!(!is_protobuf_content_type("application/json"));

        let mut gzip = MAGIC.to_vec();
        let mut type_meta = Vec::new();
        push_field(&mut type_meta, 1, WIRE_LEN, b"v1");
        push_field(&mut type_meta, 2, WIRE_LEN, b"Pod");
        push_field(&mut gzip, 1, WIRE_LEN, &type_meta);
        push_field(&mut gzip, 3, WIRE_LEN, b"gzip");
        assert!(matches!(
            decode(&gzip),
            Err(ProtobufError::UnsupportedEnvelope(_))
        ));
        assert!(malformed_reason(MAGIC).contains("without apiVersion and kind"));
    }

    #[test]
    fn malformed_bodies() {
        let good = encode(
            "v1",
            "Namespace",
            &k8s_pb::api::core::v1::Namespace::default(),
        );
        // Truncated varint in the envelope.
        let mut body = MAGIC.to_vec();
        body.push(0x80);
        assert!(malformed_reason(&body).contains("truncated varint"));
        // Over-long varint.
        let mut body = MAGIC.to_vec();
        body.extend([0xff; 11]);
        assert!(malformed_reason(&body).contains("varint longer than 10 bytes"));
        // A length past the end of the body.
        let mut body = MAGIC.to_vec();
        push_field(&mut body, 2, WIRE_LEN, &[]);
        *body.last_mut().unwrap() = 0x7f;
        assert!(malformed_reason(&body).contains("length 127 exceeds the 0 bytes that remain"));
        // A huge length never allocates.
        let mut body = MAGIC.to_vec();
        body.push(2 << 3 | 2);
        body.extend(varint(u64::MAX));
        assert!(malformed_reason(&body).contains("exceeds"));
        // Field number zero.
        let mut body = good.clone();
        body.push(0);
        assert!(malformed_reason(&body).contains("invalid field number 0"));
        // Wrong wire type for a known field, reported with its JSON path.
        let mut container = Vec::new();
        push_field(&mut container, 1, WIRE_VARINT, &varint(1)); // name is a string
        let mut pod_spec = Vec::new();
        push_field(&mut pod_spec, 2, WIRE_LEN, &container);
        let mut pod = Vec::new();
        push_field(&mut pod, 2, WIRE_LEN, &pod_spec);
        let reason = malformed_reason(&envelope("v1", "Pod", pod));
        assert!(
            reason.contains("at spec.containers[0].name: wire type 0"),
            "{reason}"
        );
        // Unterminated group.
        let mut body = Vec::new();
        push_field(&mut body, 77, WIRE_START_GROUP, &[]);
        assert!(malformed_reason(&envelope("v1", "Pod", body)).contains("unterminated group 77"));
        // An IntOrString of an unknown type.
        let mut ios = Vec::new();
        push_field(&mut ios, 1, WIRE_VARINT, &varint(7));
        let mut port = Vec::new();
        push_field(&mut port, 4, WIRE_LEN, &ios); // ServicePort.targetPort
        let mut spec = Vec::new();
        push_field(&mut spec, 1, WIRE_LEN, &port);
        let mut service = Vec::new();
        push_field(&mut service, 2, WIRE_LEN, &spec);
        let reason = malformed_reason(&envelope("v1", "Service", service));
        assert!(
            reason.contains("spec.ports[0].targetPort: IntOrString of unknown type 7"),
            "{reason}"
        );
    }

    #[test]
    fn nesting_depth_is_limited() {
        // JSONSchemaProps.not (field 28) nested `levels` times.
        fn nested(levels: usize) -> Vec<u8> {
            let mut schema = Vec::new();
            for _ in 0..levels {
                let mut outer = Vec::new();
                push_field(&mut outer, 28, WIRE_LEN, &schema);
                schema = outer;
            }
            // CRD.spec(2).versions(7).schema(4).openAPIV3Schema(1)
            let mut validation = Vec::new();
            push_field(&mut validation, 1, WIRE_LEN, &schema);
            let mut version = Vec::new();
            push_field(&mut version, 4, WIRE_LEN, &validation);
            let mut spec = Vec::new();
            push_field(&mut spec, 7, WIRE_LEN, &version);
            let mut crd = Vec::new();
            push_field(&mut crd, 2, WIRE_LEN, &spec);
            envelope("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd)
        }
        assert!(decode(&nested(55)).is_ok());
        let reason = malformed_reason(&nested(300));
        assert!(reason.contains("nested deeper than 64 levels"), "{reason}");
        // Deep unknown groups are limited too.
        let mut groups = Vec::new();
        for _ in 0..100 {
            push_field(&mut groups, 9, WIRE_START_GROUP, &[]);
        }
        assert!(malformed_reason(&envelope("v1", "Pod", groups)).contains("nested deeper"));
    }

    /// Deterministic xorshift, to mutate bodies without a rand dependency.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn truncated_and_mutated_bodies_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for (name, body, _) in FIXTURES {
            for end in 0..body.len() {
                let _ = decode(&body[..end]);
            }
            for _ in 0..2_000 {
                let mut mutated = body.to_vec();
                for _ in 0..1 + rng.next() % 4 {
                    let at = (rng.next() % mutated.len() as u64) as usize;
                    mutated[at] = rng.next() as u8;
                }
                if let Ok(value) = decode(&mutated) {
                    assert!(value.is_object(), "{name}");
                }
            }
        }
    }

    // ---- the table ---------------------------------------------------------

    #[test]
    fn schema_table_is_consistent() {
        let messages = schema::MESSAGES;
        assert!(messages.len() > 1000);
        assert!(messages.windows(2).all(|w| w[0].name < w[1].name));
        for (i, message) in messages.iter().enumerate() {
            assert_eq!(schema::message_index(message.name), u16::try_from(i).ok());
            let mut tags: Vec<u32> = message.fields.iter().map(|f| f.tag).collect();
            tags.sort_unstable();
            tags.dedup();
            assert_eq!(tags.len(), message.fields.len(), "{}", message.name);
            for field in message.fields {
                if let Kind::Message(t) | Kind::MapMessage(t) = field.kind {
                    assert!(usize::from(t) < messages.len());
                }
                assert_eq!(
                    field.json.is_empty(),
                    field.inline(),
                    "{}.{}",
                    message.name,
                    field.json
                );
                if field.inline() {
                    assert!(matches!(field.kind, Kind::Message(_)) && !field.repeated());
                }
            }
        }
        assert!(
            schema::ROOTS
                .windows(2)
                .all(|w| (w[0].api_version, w[0].kind) < (w[1].api_version, w[1].kind))
        );
        for root in schema::ROOTS {
            let message = &messages[usize::from(root.message)];
            assert_eq!(message.special, Special::None, "{}", root.kind);
            assert!(
                message.name.ends_with(&format!(".{}", root.kind)),
                "{} {}",
                root.kind,
                message.name
            );
            // Every root decodes an empty object.
            let got = decode(&envelope(root.api_version, root.kind, Vec::new())).unwrap();
            assert_eq!(
                got,
                json!({"kind": root.kind, "apiVersion": root.api_version})
            );
        }
        for (api_version, kind, message) in [
            ("v1", "Pod", "k8s.io.api.core.v1.Pod"),
            ("v1", "Namespace", "k8s.io.api.core.v1.Namespace"),
            ("apps/v1", "Deployment", "k8s.io.api.apps.v1.Deployment"),
            ("batch/v1", "CronJob", "k8s.io.api.batch.v1.CronJob"),
            ("policy/v1", "Eviction", "k8s.io.api.policy.v1.Eviction"),
            ("autoscaling/v1", "Scale", "k8s.io.api.autoscaling.v1.Scale"),
            (
                "authentication.k8s.io/v1",
                "TokenRequest",
                "k8s.io.api.authentication.v1.TokenRequest",
            ),
            (
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
            ),
            (
                "apiregistration.k8s.io/v1",
                "APIService",
                "k8s.io.kube_aggregator.pkg.apis.apiregistration.v1.APIService",
            ),
        ] {
            assert_eq!(
                schema::root(api_version, kind),
                schema::message_index(message),
                "{kind}"
            );
        }
    }

    // ---- every field, against k8s-openapi ----------------------------------

    /// Encodes a message of the table with every field set (one element per
    /// list and map), recursing until `depth` runs out or a type recurs.
    fn synthesize(index: u16, depth: usize, stack: &mut Vec<u16>) -> Vec<u8> {
        let message = &schema::MESSAGES[usize::from(index)];
        let mut out = Vec::new();
        let raw_json = |out: &mut Vec<u8>| push_field(out, 1, WIRE_LEN, br#"{"a":1}"#);
        match message.special {
            Special::Quantity => push_field(&mut out, 1, WIRE_LEN, b"250m"),
            Special::IntOrString => {
                push_field(&mut out, 1, WIRE_VARINT, &varint(1));
                push_field(&mut out, 3, WIRE_LEN, b"x");
            }
            Special::Time | Special::MicroTime => {
                push_field(&mut out, 1, WIRE_VARINT, &varint(1_000_000_000));
                push_field(&mut out, 2, WIRE_VARINT, &varint(5_000));
            }
            Special::Duration => push_field(&mut out, 1, WIRE_VARINT, &varint(1_500_000_000)),
            Special::RawExtension | Special::RawJson => raw_json(&mut out),
            Special::StringList => push_field(&mut out, 1, WIRE_LEN, b"x"),
            Special::None
            | Special::SchemaOrArray
            | Special::SchemaOrBool
            | Special::SchemaOrStringArray => {
                if depth == 0 || stack.iter().filter(|&&i| i == index).count() > 1 {
                    return out;
                }
                stack.push(index);
                for field in message.fields {
                    let value = |kind: Kind, stack: &mut Vec<u16>| -> Option<(u8, Vec<u8>)> {
                        Some(match kind {
                            Kind::String => (WIRE_LEN, b"x".to_vec()),
                            Kind::Bytes => (WIRE_LEN, b"xy".to_vec()),
                            Kind::Bool => (WIRE_VARINT, varint(1)),
                            Kind::Int32 | Kind::Int64 => (WIRE_VARINT, varint(7)),
                            Kind::Double => (WIRE_FIXED64, 1.5f64.to_bits().to_le_bytes().to_vec()),
                            Kind::Message(t) | Kind::MapMessage(t) => {
                                let nested = synthesize(t, depth - 1, stack);
                                let special = schema::MESSAGES[usize::from(t)].special;
                                if nested.is_empty() && special == Special::None {
                                    return None;
                                }
                                (WIRE_LEN, nested)
                            }
                            Kind::MapString | Kind::MapBytes => (WIRE_LEN, b"v".to_vec()),
                        })
                    };
                    let Some((wire, payload)) = value(field.kind, stack) else {
                        continue;
                    };
                    if matches!(
                        field.kind,
                        Kind::MapString | Kind::MapBytes | Kind::MapMessage(_)
                    ) {
                        let mut entry = Vec::new();
                        push_field(&mut entry, 1, WIRE_LEN, b"k");
                        push_field(&mut entry, 2, WIRE_LEN, &payload);
                        push_field(&mut out, field.tag, WIRE_LEN, &entry);
                    } else {
                        push_field(&mut out, field.tag, wire, &payload);
                    }
                }
                stack.pop();
            }
        }
        out
    }

    /// Members of `got` that `typed` lacks or holds with another value.
    fn differences(path: &str, got: &Value, typed: &Value, out: &mut Vec<String>) {
        match (got, typed) {
            (Value::Object(g), Value::Object(t)) => {
                for (key, value) in g {
                    let here = format!("{path}.{key}");
                    match t.get(key) {
                        Some(other) => differences(&here, value, other, out),
                        None => out.push(format!("{here} (missing)")),
                    }
                }
            }
            (Value::Array(g), Value::Array(t)) if g.len() == t.len() => {
                for (i, (a, b)) in g.iter().zip(t).enumerate() {
                    differences(&format!("{path}[{i}]"), a, b, out);
                }
            }
            (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
            (a, b) if a == b => {}
            (a, b) => out.push(format!("{path}: {a} != {b}")),
        }
    }

    /// Path tails of fields newer than the k8s-openapi version the workspace
    /// enables (v1_33): the decoder keeps them, k8s-openapi drops them.
    const NEWER_THAN_K8S_OPENAPI: &[&str] = &[
        // core/v1 (1.34+)
        "spec.workloadRef",
        "spec.hostnameOverride",
        "status.allocatedResources",
        "status.resources",
        "restartPolicyRules",
        "valueFrom.fileKeyRef",
        "podCertificate",
        "extendedResourceClaimStatus",
        "declaredFeatures",
        // storage/v1
        "spec.serviceAccountTokenInSecrets",
        // resource.k8s.io/v1beta2
        "spec.extendedResourceName",
        "exactly.capacity",
        "firstAvailable[0].capacity",
        "constraints[0].distinctAttribute",
        "bindingConditions",
        "bindingFailureConditions",
        "shareID",
        "consumedCapacity",
        "allocationTimestamp",
        "capacity.k.requestPolicy",
        "bindsToNode",
        "allowMultipleAllocations",
        // apiextensions/v1
        "status.observedGeneration",
        "conditions[0].observedGeneration",
    ];

    fn check_every_field<K>(failures: &mut Vec<String>)
    where
        K: k8s_openapi::Resource + serde::de::DeserializeOwned + serde::Serialize,
    {
        let Some(index) = schema::root(K::API_VERSION, K::KIND) else {
            failures.push(format!("{} {}: no root", K::API_VERSION, K::KIND));
            return;
        };
        let body = envelope(
            K::API_VERSION,
            K::KIND,
            synthesize(index, 12, &mut Vec::new()),
        );
        let got = match decode(&body) {
            Ok(got) => got,
            Err(e) => return failures.push(format!("{}: {e}", K::KIND)),
        };
        let typed: K = match serde_json::from_value(got.clone()) {
            Ok(typed) => typed,
            Err(e) => return failures.push(format!("{}: k8s-openapi rejects it: {e}", K::KIND)),
        };
        let typed = serde_json::to_value(&typed).unwrap();
        let mut found = Vec::new();
        differences(K::KIND, &without_nulls(got), &typed, &mut found);
        failures.extend(found.into_iter().filter(|d| {
            !NEWER_THAN_K8S_OPENAPI
                .iter()
                .any(|tail| d.ends_with(&format!(".{tail} (missing)")))
        }));
    }

    #[test]
    fn every_field_reads_back_into_k8s_openapi_types() {
        use k8s_openapi::api::{
            admissionregistration::v1 as admissionregistration, apps::v1 as apps,
            authentication::v1 as authentication, authorization::v1 as authorization,
            autoscaling::v1 as autoscaling1, autoscaling::v2 as autoscaling2, batch::v1 as batch,
            certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
            discovery::v1 as discovery, events::v1 as events, flowcontrol::v1 as flowcontrol,
            networking::v1 as networking, node::v1 as node, policy::v1 as policy, rbac::v1 as rbac,
            resource::v1beta2 as resource, scheduling::v1 as scheduling, storage::v1 as storage,
        };
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
        use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
        let mut failures = Vec::new();
        macro_rules! check {
            ($($ty:ty),* $(,)?) => { $(check_every_field::<$ty>(&mut failures);)* };
        }
        check!(
            core::Binding,
            core::ConfigMap,
            core::Endpoints,
            core::Event,
            core::LimitRange,
            core::Namespace,
            core::Node,
            core::PersistentVolume,
            core::PersistentVolumeClaim,
            core::Pod,
            core::PodTemplate,
            core::ReplicationController,
            core::ResourceQuota,
            core::Secret,
            core::Service,
            core::ServiceAccount,
            apps::ControllerRevision,
            apps::DaemonSet,
            apps::Deployment,
            apps::ReplicaSet,
            apps::StatefulSet,
            batch::CronJob,
            batch::Job,
            autoscaling1::HorizontalPodAutoscaler,
            autoscaling1::Scale,
            autoscaling2::HorizontalPodAutoscaler,
            policy::Eviction,
            policy::PodDisruptionBudget,
            rbac::ClusterRole,
            rbac::ClusterRoleBinding,
            rbac::Role,
            rbac::RoleBinding,
            networking::Ingress,
            networking::IngressClass,
            networking::NetworkPolicy,
            storage::CSIDriver,
            storage::CSINode,
            storage::CSIStorageCapacity,
            storage::StorageClass,
            storage::VolumeAttachment,
            scheduling::PriorityClass,
            node::RuntimeClass,
            coordination::Lease,
            discovery::EndpointSlice,
            events::Event,
            certificates::CertificateSigningRequest,
            admissionregistration::MutatingWebhookConfiguration,
            admissionregistration::ValidatingWebhookConfiguration,
            admissionregistration::ValidatingAdmissionPolicy,
            admissionregistration::ValidatingAdmissionPolicyBinding,
            flowcontrol::FlowSchema,
            flowcontrol::PriorityLevelConfiguration,
            authentication::TokenRequest,
            authentication::TokenReview,
            authentication::SelfSubjectReview,
            authorization::LocalSubjectAccessReview,
            authorization::SelfSubjectAccessReview,
            authorization::SelfSubjectRulesReview,
            authorization::SubjectAccessReview,
            resource::DeviceClass,
            resource::ResourceClaim,
            resource::ResourceClaimTemplate,
            resource::ResourceSlice,
            apiextensions::CustomResourceDefinition,
            apiregistration::APIService,
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
