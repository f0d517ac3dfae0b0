//! Validation the way the Kubernetes API server does it.
//!
//! * Name and label syntax exactly as apimachinery's `util/validation`
//!   (`IsDNS1123Subdomain`, `IsDNS1123Label`, `IsDNS1035Label`, `IsQualifiedName`,
//!   `IsValidLabelValue`, path segment names), with Kubernetes' error messages, written
//!   by hand (no regex engine needed for them).
//! * [`FieldError`]: apimachinery's `field.Error`, rendered the same way
//!   (`spec.replicas: Invalid value: -1: must be greater than or equal to 0`) and turned
//!   into `StatusCause`s and `Invalid` statuses.
//! * [`validate_object_meta`]: `ValidateObjectMetaAccessor` (name, namespace, generation,
//!   labels, annotations and their total size, owner references, finalizers, managed
//!   fields).
//! * Unknown-field detection for strict field validation: [`unknown_fields`] for built-in
//!   kinds (walking the published OpenAPI schemas through [`SchemaNode`]), and
//!   [`unknown_fields_crd`] / [`prune`] / [`prune_tracking`] for custom resources, which
//!   follow the apiextensions structural pruning algorithm (including the `ObjectMeta`
//!   coercion of `metadata` at the root and in embedded resources).
//! * [`validate_against_schema`]: validation of a custom resource against a CRD's
//!   `openAPIV3Schema`, with the error shapes kube-openapi's validator produces as
//!   converted by the apiextensions server, followed by the embedded-resource and
//!   `x-kubernetes-list-type` checks the custom resource strategy adds.
//!
//! Messages follow Kubernetes 1.33. CRD `pattern`s are matched with the `regex` crate
//! (RE2 syntax, like Go's `regexp` that Kubernetes uses); a pattern that does not compile
//! is ignored (Kubernetes refuses such CRDs).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Number, Value, json};

use crate::api::schema::SchemaNode;

/// The largest total size (keys plus values, in bytes) of an object's annotations.
pub const TOTAL_ANNOTATION_SIZE_LIMIT_B: usize = 256 * (1 << 10);
/// The longest DNS-1123 label.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// The longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// The longest DNS-1035 label.
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
/// The longest label value, and the longest name part of a qualified name.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// The longest field manager name.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;
/// The longest subresource name in a managed fields entry.
pub const MAX_SUBRESOURCE_NAME_LENGTH: usize = 256;
/// The message of a negative value where only non-negative ones are allowed.
pub const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

// ---------------------------------------------------------------------------------------
// Message helpers (apimachinery util/validation)
// ---------------------------------------------------------------------------------------

/// `MaxLenError`: "must be no more than N characters".
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// `EmptyError`: "must be non-empty".
pub fn empty_error() -> &'static str {
    "must be non-empty"
}

/// `RegexError`: the message of a failed format, with examples and the regex shown.
pub fn regex_error(msg: &str, re: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{re}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(re);
    out.push_str("')");
    out
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, whole string.
fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, whole string.
fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

/// `[a-z]([-a-z0-9]*[a-z0-9])?`, whole string.
fn matches_dns1035_label(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_lowercase) && matches_dns1123_label(s)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, whole string.
fn matches_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `IsDNS1123Label`: the errors of `value` as an RFC 1123 label (empty when valid).
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `IsDNS1123Subdomain`: the errors of `value` as an RFC 1123 subdomain.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsDNS1035Label`: the errors of `value` as an RFC 1035 label.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !matches_dns1035_label(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// `IsQualifiedName`: label keys, annotation keys, finalizers
/// (`[prefix/]name`, prefix a DNS subdomain, name at most 63 characters).
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(LABEL_VALUE_MAX_LENGTH)
        ));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `IsValidLabelValue`: empty, or at most 63 characters of `[-A-Za-z0-9_.]` starting and
/// ending with an alphanumeric character.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !(value.is_empty() || matches_qualified_name_part(value)) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `IsValidPathSegmentName`: not `.` or `..`, and no `/` or `%`.
pub fn is_valid_path_segment_name(name: &str) -> Vec<String> {
    for illegal in [".", ".."] {
        if name == illegal {
            return vec![format!("may not be '{illegal}'")];
        }
    }
    is_valid_path_segment_prefix(name)
}

/// `IsValidPathSegmentPrefix`: no `/` or `%`.
pub fn is_valid_path_segment_prefix(name: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|illegal| name.contains(*illegal))
        .map(|illegal| format!("may not contain '{illegal}'"))
        .collect()
}

/// `maskTrailingDash`: a generateName prefix may end in `-` (kept bug-compatible: the
/// last two bytes are replaced by `a`).
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let without_dash = &name[..name.len() - 1];
        match without_dash.chars().next_back() {
            Some(c) if c.is_ascii() => format!("{}a", &without_dash[..without_dash.len() - 1]),
            _ => format!("{without_dash}a"),
        }
    } else {
        name.to_string()
    }
}

/// Which syntax an object's name must follow (`ValidateNameFunc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// `NameIsDNSSubdomain`: most kinds, and all custom resources.
    Dns1123Subdomain,
    /// `NameIsDNSLabel`: namespaces, and a few others.
    Dns1123Label,
    /// `NameIsDNS1035Label`: services.
    Dns1035Label,
    /// `ValidatePathSegmentName`: RBAC objects and the like.
    PathSegment,
}

impl NameRule {
    /// The errors of `name` (a `generateName` prefix when `prefix`).
    pub fn validate(self, name: &str, prefix: bool) -> Vec<String> {
        match self {
            NameRule::Dns1123Subdomain if prefix => is_dns1123_subdomain(&mask_trailing_dash(name)),
            NameRule::Dns1123Subdomain => is_dns1123_subdomain(name),
            NameRule::Dns1123Label if prefix => is_dns1123_label(&mask_trailing_dash(name)),
            NameRule::Dns1123Label => is_dns1123_label(name),
            NameRule::Dns1035Label if prefix => is_dns1035_label(&mask_trailing_dash(name)),
            NameRule::Dns1035Label => is_dns1035_label(name),
            NameRule::PathSegment if prefix => is_valid_path_segment_prefix(name),
            NameRule::PathSegment => is_valid_path_segment_name(name),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Go-compatible rendering
// ---------------------------------------------------------------------------------------

fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    // Format characters (Unicode category Cf) and private use are not printable in Go.
    !matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF)
}

/// Go's `strconv.Quote` (`%q`): a double-quoted string with Go escapes.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// The shortest decimal digits of a finite, non-zero `f` and its decimal exponent
/// (`d.ddd × 10^exp`).
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

fn fixed_from_digits(digits: &str, exp: i32) -> String {
    let nd = digits.len() as i32;
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        format!("0.{zeros}{digits}")
    } else if exp + 1 >= nd {
        format!("{digits}{}", "0".repeat((exp + 1 - nd) as usize))
    } else {
        let (int, frac) = digits.split_at((exp + 1) as usize);
        format!("{int}.{frac}")
    }
}

fn exponent_from_digits(digits: &str, exp: i32, min_exp_digits: usize) -> String {
    let (first, rest) = digits.split_at(1);
    let mut out = first.to_string();
    if !rest.is_empty() {
        out.push('.');
        out.push_str(rest);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    out.push_str(&format!(
        "{:0width$}",
        exp.unsigned_abs(),
        width = min_exp_digits
    ));
    out
}

/// Go's `%v` of a `float64` (`strconv.FormatFloat(f, 'g', -1, 64)`): `1e+06`, `0.5`.
pub fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0");
    }
    let (digits, exp) = shortest_digits(f);
    let body = if !(-4..6).contains(&exp) {
        exponent_from_digits(&digits, exp, 2)
    } else {
        fixed_from_digits(&digits, exp)
    };
    format!("{sign}{body}")
}

/// Go's `encoding/json` rendering of a `float64`.
fn go_json_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".to_string();
    }
    let sign = if f.is_sign_negative() && f != 0.0 {
        "-"
    } else {
        ""
    };
    if f == 0.0 {
        return "0".to_string();
    }
    let abs = f.abs();
    let (digits, exp) = shortest_digits(f);
    let body = if !(1e-6..1e21).contains(&abs) {
        // strconv 'e' format, then "e-09" cleaned up to "e-9".
        exponent_from_digits(&digits, exp, 1)
    } else {
        fixed_from_digits(&digits, exp)
    };
    format!("{sign}{body}")
}

/// Go's `%v` of a JSON number as the API server holds it (`int64` or `float64`).
pub fn go_format_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        go_format_float(n.as_f64().unwrap_or(0.0))
    }
}

fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn go_json_into(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                out.push_str(&go_json_float(n.as_f64().unwrap_or(0.0)));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => go_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_into(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(k, out);
                out.push(':');
                if let Some(item) = map.get(k.as_str()) {
                    go_json_into(item, out);
                }
            }
            out.push('}');
        }
    }
}

/// Go's `json.Marshal` of a value as the API server holds it (map keys sorted, HTML
/// characters escaped).
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    go_json_into(v, &mut out);
    out
}

/// How `field.Error` shows a bad value: strings quoted (`%q`), numbers and booleans
/// plainly, anything else as JSON.
pub fn render_bad_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Number(n) => go_format_number(n),
        Value::Bool(b) => b.to_string(),
        other => go_json(other),
    }
}

// ---------------------------------------------------------------------------------------
// Field errors
// ---------------------------------------------------------------------------------------

/// apimachinery's `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// `FieldValueNotFound`.
    NotFound,
    /// `FieldValueRequired`.
    Required,
    /// `FieldValueDuplicate`.
    Duplicate,
    /// `FieldValueInvalid`.
    Invalid,
    /// `FieldValueNotSupported`.
    NotSupported,
    /// `FieldValueForbidden`.
    Forbidden,
    /// `FieldValueTooLong`.
    TooLong,
    /// `FieldValueTooMany`.
    TooMany,
    /// `InternalError`.
    Internal,
    /// `FieldValueTypeInvalid`.
    TypeInvalid,
}

impl FieldErrorKind {
    /// The `StatusCause` reason (`FieldValueInvalid`, ...).
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::NotFound => "FieldValueNotFound",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::Internal => "InternalError",
            FieldErrorKind::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human form (`Invalid value`, `Required value`, ...).
    pub fn description(self) -> &'static str {
        match self {
            FieldErrorKind::NotFound => "Not found",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Invalid | FieldErrorKind::TypeInvalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::Internal => "Internal error",
        }
    }

    /// Whether the bad value is never shown for this kind.
    fn omits_value(self) -> bool {
        matches!(
            self,
            FieldErrorKind::Required
                | FieldErrorKind::Forbidden
                | FieldErrorKind::TooLong
                | FieldErrorKind::Internal
        )
    }
}

/// A field-level validation error (apimachinery's `field.Error`).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// The path of the field (`spec.template.spec.containers[0].image`).
    pub field: String,
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The offending value; `None` when it is not shown.
    pub value: Option<Value>,
    /// The detail (`must be greater than or equal to 0`), possibly empty.
    pub message: String,
}

impl FieldError {
    /// A field error of any kind.
    pub fn new(
        field: impl Into<String>,
        kind: FieldErrorKind,
        value: Option<Value>,
        message: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.into(),
            kind,
            value,
            message: message.into(),
        }
    }

    /// `field.Required`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Required, None, detail)
    }

    /// `field.Invalid`.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(field, FieldErrorKind::Invalid, Some(value.into()), detail)
    }

    /// `field.TypeInvalid`.
    pub fn type_invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(
            field,
            FieldErrorKind::TypeInvalid,
            Some(value.into()),
            detail,
        )
    }

    /// `field.NotSupported`: "supported values: "a", "b"".
    pub fn not_supported<S: AsRef<str>>(
        field: impl Into<String>,
        value: impl Into<Value>,
        valid: &[S],
    ) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v.as_ref())).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            field,
            FieldErrorKind::NotSupported,
            Some(value.into()),
            detail,
        )
    }

    /// `field.Duplicate`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(field, FieldErrorKind::Duplicate, Some(value.into()), "")
    }

    /// `field.NotFound`.
    pub fn not_found(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(field, FieldErrorKind::NotFound, Some(value.into()), "")
    }

    /// `field.Forbidden`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Forbidden, None, detail)
    }

    /// `field.TooLong`: "may not be more than N bytes" (`max_length` < 0: no limit shown).
    pub fn too_long(field: impl Into<String>, max_length: i64) -> Self {
        let detail = if max_length >= 0 {
            let unit = if max_length == 1 { "byte" } else { "bytes" };
            format!("may not be more than {max_length} {unit}")
        } else {
            "value is too long".to_string()
        };
        Self::new(field, FieldErrorKind::TooLong, None, detail)
    }

    /// `field.TooMany`: "must have at most N items" (negative numbers are not shown).
    pub fn too_many(field: impl Into<String>, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            let unit = if max == 1 { "item" } else { "items" };
            format!("must have at most {max} {unit}")
        } else {
            "has too many items".to_string()
        };
        let value = (actual >= 0).then(|| Value::from(actual));
        Self::new(field, FieldErrorKind::TooMany, value, detail)
    }

    /// `field.InternalError`.
    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(field, FieldErrorKind::Internal, None, detail)
    }

    /// `ErrorBody`: the message without the field (`Invalid value: -1: must be ...`).
    pub fn body(&self) -> String {
        let mut s = self.kind.description().to_string();
        if !self.kind.omits_value()
            && let Some(v) = &self.value
        {
            s.push_str(": ");
            s.push_str(&render_bad_value(v));
        }
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }

    /// The `StatusCause` for this error: `{reason, message, field}`.
    pub fn to_cause(&self) -> Value {
        let mut cause = Map::new();
        cause.insert("reason".into(), Value::from(self.kind.reason()));
        cause.insert("message".into(), Value::from(self.body()));
        if !self.field.is_empty() {
            cause.insert("field".into(), Value::from(self.field.clone()));
        }
        Value::Object(cause)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// `ErrorList.ToAggregate().Error()`: one message, or `[a, b]` for several (duplicates
/// dropped). Empty for no errors.
pub fn aggregate_message(errs: &[FieldError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        let msg = e.to_string();
        if !seen.contains(&msg) {
            seen.push(msg);
        }
    }
    match seen.len() {
        0 => String::new(),
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// `apierrors.NewInvalid`: the 422 `Status` for an object that failed validation
/// (`Pod "x" is invalid: ...`). `group` is empty for the core group.
pub fn invalid_status(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> Value {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let aggregate = aggregate_message(errs);
    let message = if aggregate.is_empty() {
        format!("{qualified} {} is invalid", go_quote(name))
    } else {
        format!("{qualified} {} is invalid: {aggregate}", go_quote(name))
    };
    let mut details = Map::new();
    if !name.is_empty() {
        details.insert("name".into(), Value::from(name));
    }
    if !group.is_empty() {
        details.insert("group".into(), Value::from(group));
    }
    details.insert("kind".into(), Value::from(kind));
    details.insert(
        "causes".into(),
        Value::Array(errs.iter().map(FieldError::to_cause).collect()),
    );
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": Value::Object(details),
        "code": 422
    })
}

// ---------------------------------------------------------------------------------------
// Field paths
// ---------------------------------------------------------------------------------------

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

// ---------------------------------------------------------------------------------------
// ObjectMeta
// ---------------------------------------------------------------------------------------

fn str_field<'a>(
    meta: &'a Map<String, Value>,
    name: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> &'a str {
    match meta.get(name) {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s,
        Some(other) => {
            errs.push(FieldError::invalid(
                child(path, name),
                other.clone(),
                "must be a string",
            ));
            ""
        }
    }
}

/// `ValidateObjectMetaAccessor` for the `metadata` of an object at the root
/// (`metadata.name: Invalid value: "Foo": a lowercase RFC 1123 subdomain ...`).
pub fn validate_object_meta(
    meta: &Value,
    namespaced: bool,
    name_rule: NameRule,
) -> Vec<FieldError> {
    validate_object_meta_at(meta, namespaced, name_rule, "metadata")
}

/// [`validate_object_meta`] for an `ObjectMeta` found at `path` (`spec.template.metadata`).
pub fn validate_object_meta_at(
    meta: &Value,
    namespaced: bool,
    name_rule: NameRule,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Map::new();
    let meta = match meta {
        Value::Object(m) => m,
        Value::Null => &empty,
        other => {
            errs.push(FieldError::invalid(
                path,
                other.clone(),
                "must be an object",
            ));
            &empty
        }
    };

    let generate_name = str_field(meta, "generateName", path, &mut errs);
    if !generate_name.is_empty() {
        for msg in name_rule.validate(generate_name, true) {
            errs.push(FieldError::invalid(
                child(path, "generateName"),
                generate_name,
                msg,
            ));
        }
    }
    let name = str_field(meta, "name", path, &mut errs);
    if name.is_empty() {
        errs.push(FieldError::required(
            child(path, "name"),
            "name or generateName is required",
        ));
    } else {
        for msg in name_rule.validate(name, false) {
            errs.push(FieldError::invalid(child(path, "name"), name, msg));
        }
    }
    let namespace = str_field(meta, "namespace", path, &mut errs);
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(child(path, "namespace"), ""));
        } else {
            for msg in is_dns1123_label(namespace) {
                errs.push(FieldError::invalid(
                    child(path, "namespace"),
                    namespace,
                    msg,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            child(path, "namespace"),
            "not allowed on this type",
        ));
    }

    if let Some(generation) = meta.get("generation").and_then(Value::as_i64)
        && generation < 0
    {
        errs.push(FieldError::invalid(
            child(path, "generation"),
            generation,
            IS_NEGATIVE_ERROR_MSG,
        ));
    }
    errs.extend(validate_labels(
        meta.get("labels").unwrap_or(&Value::Null),
        &child(path, "labels"),
    ));
    errs.extend(validate_annotations(
        meta.get("annotations").unwrap_or(&Value::Null),
        &child(path, "annotations"),
    ));
    errs.extend(validate_owner_references(
        meta.get("ownerReferences").unwrap_or(&Value::Null),
        &child(path, "ownerReferences"),
    ));
    errs.extend(validate_finalizers(
        meta.get("finalizers").unwrap_or(&Value::Null),
        &child(path, "finalizers"),
    ));
    errs.extend(validate_managed_fields(
        meta.get("managedFields").unwrap_or(&Value::Null),
        &child(path, "managedFields"),
    ));
    errs
}

/// `ValidateLabels`: keys are qualified names, values label values.
pub fn validate_labels(labels: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(labels) = labels.as_object() else {
        if !labels.is_null() {
            errs.push(FieldError::invalid(
                path,
                labels.clone(),
                "must be an object",
            ));
        }
        return errs;
    };
    for (k, v) in labels {
        for msg in is_qualified_name(k) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        match v {
            Value::String(v) => {
                for msg in is_valid_label_value(v) {
                    errs.push(FieldError::invalid(path, v.as_str(), msg));
                }
            }
            other => errs.push(FieldError::invalid(path, other.clone(), "must be a string")),
        }
    }
    errs
}

/// `ValidateLabelSelector` of a structured `metav1.LabelSelector` at `path`
/// (`spec.selector`): `matchLabels` as labels, and each of `matchExpressions` with a
/// valid operator, the right number of values, a qualified-name key and label values.
pub fn validate_label_selector(selector: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if selector.is_null() {
        return errs;
    }
    errs.extend(validate_labels(
        selector.get("matchLabels").unwrap_or(&Value::Null),
        &child(path, "matchLabels"),
    ));
    let exprs = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, expr) in exprs.iter().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        let values: Vec<&Value> = expr
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let operator = expr.get("operator").and_then(Value::as_str).unwrap_or("");
        match operator {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                child(&p, "operator"),
                other,
                "not a valid selector operator",
            )),
        }
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        for msg in is_qualified_name(key) {
            errs.push(FieldError::invalid(child(&p, "key"), key, msg));
        }
        for (j, v) in values.iter().enumerate() {
            let vp = index(&child(&p, "values"), j);
            match v.as_str() {
                Some(v) => {
                    for msg in is_valid_label_value(v) {
                        errs.push(FieldError::invalid(vp.clone(), v, msg));
                    }
                }
                None => errs.push(FieldError::invalid(vp, (*v).clone(), "must be a string")),
            }
        }
    }
    errs
}

/// `ValidateAnnotations`: keys are qualified names (case-insensitively), and all keys and
/// values together are at most 256 KiB.
pub fn validate_annotations(annotations: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(annotations) = annotations.as_object() else {
        if !annotations.is_null() {
            errs.push(FieldError::invalid(
                path,
                annotations.clone(),
                "must be an object",
            ));
        }
        return errs;
    };
    let mut total = 0usize;
    for (k, v) in annotations {
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
        total += k.len();
        match v {
            Value::String(v) => total += v.len(),
            other => errs.push(FieldError::invalid(path, other.clone(), "must be a string")),
        }
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B {
        errs.push(FieldError::too_long(
            path,
            TOTAL_ANNOTATION_SIZE_LIMIT_B as i64,
        ));
    }
    errs
}

/// `schema.ParseGroupVersion`: `(group, version)`.
pub fn parse_group_version(gv: &str) -> Result<(&str, &str), String> {
    if gv.is_empty() || gv == "/" {
        return Ok(("", ""));
    }
    match gv.matches('/').count() {
        0 => Ok(("", gv)),
        1 => Ok(gv.split_once('/').unwrap_or(("", gv))),
        _ => Err(format!("unexpected GroupVersion string: {gv}")),
    }
}

/// `ValidateOwnerReferences` (errors are reported on the list's path, without an index,
/// as Kubernetes does).
pub fn validate_owner_references(refs: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(refs) = refs.as_array() else {
        return errs;
    };
    let mut first_controller: Option<String> = None;
    for r in refs {
        let get = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let api_version = get("apiVersion");
        let kind = get("kind");
        let (group, version) = parse_group_version(api_version).unwrap_or(("", ""));
        if version.is_empty() {
            errs.push(FieldError::invalid(
                child(path, "apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(FieldError::invalid(
                child(path, "kind"),
                kind,
                "must not be empty",
            ));
        }
        if get("name").is_empty() {
            errs.push(FieldError::invalid(
                child(path, "name"),
                "",
                "must not be empty",
            ));
        }
        if get("uid").is_empty() {
            errs.push(FieldError::invalid(
                child(path, "uid"),
                "",
                "must not be empty",
            ));
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(FieldError::invalid(
                path,
                r.clone(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{kind}/{}", get("name"));
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    Value::Array(refs.clone()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// `ValidateFinalizers`: qualified names, and not both `orphan` and `foregroundDeletion`.
pub fn validate_finalizers(finalizers: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(list) = finalizers.as_array() else {
        return errs;
    };
    let mut orphan = false;
    let mut foreground = false;
    for f in list {
        let Some(f) = f.as_str() else {
            errs.push(FieldError::invalid(path, f.clone(), "must be a string"));
            continue;
        };
        for msg in is_qualified_name(f) {
            errs.push(FieldError::invalid(path, f, msg));
        }
        orphan |= f == "orphan";
        foreground |= f == "foregroundDeletion";
    }
    if orphan && foreground {
        errs.push(FieldError::invalid(
            path,
            finalizers.clone(),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// `ValidateManagedFields`.
pub fn validate_managed_fields(entries: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(entries) = entries.as_array() else {
        return errs;
    };
    for (i, e) in entries.iter().enumerate() {
        let p = index(path, i);
        let get = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
        let operation = get("operation");
        if operation != "Apply" && operation != "Update" {
            errs.push(FieldError::invalid(
                child(&p, "operation"),
                operation,
                "must be `Apply` or `Update`",
            ));
        }
        let fields_type = get("fieldsType");
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            errs.push(FieldError::invalid(
                child(&p, "fieldsType"),
                fields_type,
                "must be `FieldsV1`",
            ));
        }
        let manager = get("manager");
        if manager.len() > FIELD_MANAGER_MAX_LENGTH {
            errs.push(FieldError::too_long(
                child(&p, "manager"),
                FIELD_MANAGER_MAX_LENGTH as i64,
            ));
        }
        if manager.chars().any(|c| !is_go_printable(c)) {
            errs.push(FieldError::invalid(
                child(&p, "manager"),
                manager,
                "must only contain printable characters",
            ));
        }
        if get("subresource").len() > MAX_SUBRESOURCE_NAME_LENGTH {
            errs.push(FieldError::too_long(
                child(&p, "subresource"),
                MAX_SUBRESOURCE_NAME_LENGTH as i64,
            ));
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------
// Unknown fields (strict field validation)
// ---------------------------------------------------------------------------------------

/// The message of one unknown field in strict decoding (`unknown field "spec.foo"`).
pub fn unknown_field_message(path: &str) -> String {
    format!("unknown field {}", go_quote(path))
}

/// Kubernetes' strict decoding error for a list of unknown field paths:
/// `strict decoding error: unknown field "spec.foo", unknown field "spec.bar"`.
pub fn strict_decoding_error(paths: &[String]) -> String {
    let parts: Vec<String> = paths.iter().map(|p| unknown_field_message(p)).collect();
    format!("strict decoding error: {}", parts.join(", "))
}

/// The fields of a built-in object that its OpenAPI schema does not declare, in document
/// order, as strict decoding reports them (`spec.foo`,
/// `spec.template.spec.containers[0].imagee`, `metadata.foo`).
///
/// Objects whose schema declares neither `properties` nor an `additionalProperties`
/// schema (`RawExtension`, `FieldsV1`, `JSON`), and those marked
/// `x-kubernetes-preserve-unknown-fields`, are taken as free-form.
pub fn unknown_fields(obj: &Value, schema: SchemaNode<'_>) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(obj, schema, "", &mut out);
    out
}

fn walk_unknown(v: &Value, node: SchemaNode<'_>, path: &str, out: &mut Vec<String>) {
    if node.preserves_unknown_fields() {
        return;
    }
    match v {
        Value::Object(map) => {
            let additional = node.json().get("additionalProperties");
            let additional_schema = node.additional_properties();
            let allows_any = matches!(additional, Some(Value::Bool(true)));
            match node.properties() {
                Some(props) => {
                    for (k, child_value) in map {
                        let p = child(path, k);
                        if props.contains_key(k) {
                            if let Some(sub) = node.property(k) {
                                walk_unknown(child_value, sub, &p, out);
                            }
                        } else if let Some(sub) = additional_schema {
                            walk_unknown(child_value, sub, &p, out);
                        } else if !allows_any {
                            out.push(p);
                        }
                    }
                }
                None => {
                    if let Some(sub) = additional_schema {
                        for (k, child_value) in map {
                            walk_unknown(child_value, sub, &child(path, k), out);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = node.items() {
                for (i, item) in items.iter().enumerate() {
                    walk_unknown(item, sub, &index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// The JSON fields of `metav1.ObjectMeta`.
pub const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];
const OWNER_REFERENCE_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "name",
    "uid",
    "controller",
    "blockOwnerDeletion",
];
const MANAGED_FIELDS_ENTRY_FIELDS: &[&str] = &[
    "manager",
    "operation",
    "apiVersion",
    "time",
    "fieldsType",
    "fieldsV1",
    "subresource",
];

fn sorted_keys(map: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = map.keys().cloned().collect();
    keys.sort();
    keys
}

/// Drop (and record, keys in sorted order as Go's JSON round trip visits them) the fields
/// of a struct-like object that are not in `known`; `nested` lists the fields holding
/// arrays of further structs.
fn coerce_struct(
    map: &mut Map<String, Value>,
    known: &[&str],
    nested: &[(&str, &[&str])],
    path: &str,
    out: &mut Vec<String>,
) {
    for k in sorted_keys(map) {
        if !known.contains(&k.as_str()) {
            out.push(child(path, &k));
            map.retain(|key, _| *key != k);
            continue;
        }
        if let Some((_, fields)) = nested.iter().find(|(name, _)| *name == k)
            && let Some(Value::Array(items)) = map.get_mut(&k)
        {
            let p = child(path, &k);
            for (i, item) in items.iter_mut().enumerate() {
                if let Value::Object(m) = item {
                    coerce_struct(m, fields, &[], &index(&p, i), out);
                }
            }
        }
    }
}

/// Drop the fields of an `ObjectMeta` that Kubernetes does not know, returning their
/// paths (`metadata.foo`, `metadata.ownerReferences[0].bar`) under `path`.
pub fn coerce_object_meta(meta: &mut Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Object(map) = meta {
        coerce_struct(
            map,
            OBJECT_META_FIELDS,
            &[
                ("ownerReferences", OWNER_REFERENCE_FIELDS),
                ("managedFields", MANAGED_FIELDS_ENTRY_FIELDS),
            ],
            path,
            &mut out,
        );
    }
    out
}

// ---------------------------------------------------------------------------------------
// Structural schemas (CRD openAPIV3Schema): pruning
// ---------------------------------------------------------------------------------------

fn flag(s: &Map<String, Value>, name: &str) -> bool {
    s.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn obj_field<'a>(s: &'a Map<String, Value>, name: &str) -> Option<&'a Map<String, Value>> {
    s.get(name).and_then(Value::as_object)
}

/// `additionalProperties` of a structural schema.
enum Additional<'a> {
    None,
    Schema(&'a Map<String, Value>),
    Any,
}

fn additional(s: &Map<String, Value>) -> Additional<'_> {
    match s.get("additionalProperties") {
        Some(Value::Object(m)) => Additional::Schema(m),
        Some(Value::Bool(true)) => Additional::Any,
        _ => Additional::None,
    }
}

const EMBEDDED_META_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

struct Pruner {
    path: String,
    unknown: Vec<String>,
}

impl Pruner {
    fn record(&mut self, k: &str) {
        self.unknown.push(child(&self.path, k));
    }

    fn with_key<F: FnOnce(&mut Self)>(&mut self, k: &str, f: F) {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(k);
        f(self);
        self.path.truncate(len);
    }

    fn with_index<F: FnOnce(&mut Self)>(&mut self, i: usize, f: F) {
        let len = self.path.len();
        self.path.push_str(&format!("[{i}]"));
        f(self);
        self.path.truncate(len);
    }

    fn prune(&mut self, x: &mut Value, s: Option<&Map<String, Value>>, embedded_override: bool) {
        if let Some(s) = s
            && flag(s, "x-kubernetes-preserve-unknown-fields")
        {
            self.skip_prune(x, s, embedded_override);
            return;
        }
        match x {
            Value::Object(map) => {
                let Some(s) = s else {
                    for k in map.keys() {
                        self.unknown.push(child(&self.path, k));
                    }
                    map.clear();
                    return;
                };
                let embedded = embedded_override || flag(s, "x-kubernetes-embedded-resource");
                let props = obj_field(s, "properties");
                let additional = additional(s);
                let keys: Vec<String> = map.keys().cloned().collect();
                let mut remove = Vec::new();
                for k in keys {
                    if embedded && EMBEDDED_META_FIELDS.contains(&k.as_str()) {
                        continue;
                    }
                    let sub = props.and_then(|p| p.get(&k));
                    let Some(v) = map.get_mut(&k) else { continue };
                    if let Some(sub) = sub {
                        let sub = sub.as_object();
                        self.with_key(&k, |me| me.prune(v, sub, false));
                    } else {
                        match additional {
                            Additional::Schema(ap) => {
                                self.with_key(&k, |me| me.prune(v, Some(ap), false));
                            }
                            Additional::Any => {}
                            Additional::None => {
                                self.record(&k);
                                remove.push(k);
                            }
                        }
                    }
                }
                if !remove.is_empty() {
                    map.retain(|k, _| !remove.contains(k));
                }
            }
            Value::Array(items) => {
                let item_schema = s.and_then(|s| obj_field(s, "items"));
                for (i, item) in items.iter_mut().enumerate() {
                    self.with_index(i, |me| me.prune(item, item_schema, false));
                }
            }
            _ => {}
        }
    }

    fn skip_prune(&mut self, x: &mut Value, s: &Map<String, Value>, embedded_override: bool) {
        match x {
            Value::Object(map) => {
                let embedded = embedded_override || flag(s, "x-kubernetes-embedded-resource");
                let props = obj_field(s, "properties");
                let additional = additional(s);
                for (k, v) in map.iter_mut() {
                    if embedded && EMBEDDED_META_FIELDS.contains(&k.as_str()) {
                        continue;
                    }
                    if let Some(sub) = props.and_then(|p| p.get(k)) {
                        let sub = sub.as_object();
                        self.with_key(k, |me| me.prune(v, sub, false));
                    } else if let Additional::Schema(ap) = additional {
                        self.with_key(k, |me| me.prune(v, Some(ap), false));
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = obj_field(s, "items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        self.with_index(i, |me| me.skip_prune(item, item_schema, false));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The schema of property `k` of an object schema, or of its `additionalProperties`.
fn property_schema<'a>(s: &'a Map<String, Value>, k: &str) -> Option<&'a Map<String, Value>> {
    if let Some(p) = obj_field(s, "properties").and_then(|p| p.get(k)) {
        return p.as_object();
    }
    match additional(s) {
        Additional::Schema(ap) => Some(ap),
        _ => None,
    }
}

/// `PruneNonNullableNullsWithoutDefaults`: drop `null` values of object fields whose schema
/// is neither `nullable` nor defaulted.
fn prune_non_nullable_nulls(x: &mut Value, s: &Map<String, Value>) {
    match x {
        Value::Object(map) => {
            map.retain(|k, v| {
                let Some(sub) = property_schema(s, k) else {
                    return true;
                };
                !(v.is_null() && !flag(sub, "nullable") && !sub.contains_key("default"))
            });
            for (k, v) in map.iter_mut() {
                if let Some(sub) = property_schema(s, k) {
                    prune_non_nullable_nulls(v, sub);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = obj_field(s, "items") {
                for item in items {
                    prune_non_nullable_nulls(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

/// The `ObjectMeta` coercion of embedded resources (not the root): drop unknown fields of
/// their `metadata`, recording `spec.template.metadata.foo`.
fn coerce_embedded_meta(x: &mut Value, s: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
    match x {
        Value::Object(map) => {
            if flag(s, "x-kubernetes-embedded-resource")
                && let Some(meta) = map.get_mut("metadata")
            {
                out.extend(coerce_object_meta(meta, &child(path, "metadata")));
            }
            let props = obj_field(s, "properties");
            let additional = additional(s);
            for (k, v) in map.iter_mut() {
                if let Some(sub) = props.and_then(|p| p.get(k)).and_then(Value::as_object) {
                    coerce_embedded_meta(v, sub, &child(path, k), out);
                } else if let Additional::Schema(ap) = additional {
                    coerce_embedded_meta(v, ap, &key(path, k), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = obj_field(s, "items") {
                for (i, item) in items.iter_mut().enumerate() {
                    coerce_embedded_meta(item, item_schema, &index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// What the API server does to a custom resource against its CRD's `openAPIV3Schema`
/// before validation, returning the unknown field paths in the order strict field
/// validation reports them:
///
/// 1. unknown fields of the root `metadata` are dropped (`metadata.foo`, keys sorted);
/// 2. structural pruning: fields the schema does not declare are dropped, except under
///    `x-kubernetes-preserve-unknown-fields` and `additionalProperties`; `apiVersion`,
///    `kind` and `metadata` are kept at the root and in embedded resources (paths
///    sorted);
/// 3. `null` values of fields that are neither `nullable` nor defaulted are dropped
///    (not reported);
/// 4. unknown fields of embedded resources' `metadata` are dropped
///    (`spec.template.metadata.foo`).
pub fn prune_tracking(obj: &mut Value, schema: &Value) -> Vec<String> {
    let empty = Map::new();
    let s = schema.as_object().unwrap_or(&empty);
    let mut unknown = Vec::new();
    if let Some(meta) = obj.get_mut("metadata") {
        unknown.extend(coerce_object_meta(meta, "metadata"));
    }
    let mut pruner = Pruner {
        path: String::new(),
        unknown: Vec::new(),
    };
    pruner.prune(obj, Some(s), true);
    let mut pruned = pruner.unknown;
    pruned.sort();
    unknown.extend(pruned);
    prune_non_nullable_nulls(obj, s);
    coerce_embedded_meta_children(obj, s, &mut unknown);
    unknown
}

/// Embedded-resource metadata coercion below the root (the root's metadata is handled
/// separately, and the root itself is not an embedded resource here).
fn coerce_embedded_meta_children(obj: &mut Value, s: &Map<String, Value>, out: &mut Vec<String>) {
    if let Value::Object(map) = obj {
        let props = obj_field(s, "properties");
        let additional = additional(s);
        for (k, v) in map.iter_mut() {
            if k == "metadata" {
                continue;
            }
            if let Some(sub) = props.and_then(|p| p.get(k)).and_then(Value::as_object) {
                coerce_embedded_meta(v, sub, k, out);
            } else if let Additional::Schema(ap) = additional {
                coerce_embedded_meta(v, ap, &key("", k), out);
            }
        }
    }
}

/// [`prune_tracking`] without the paths: what is stored for a custom resource.
pub fn prune(obj: &mut Value, schema: &Value) {
    let _ = prune_tracking(obj, schema);
}

/// The unknown fields of a custom resource for strict field validation (the paths
/// [`prune_tracking`] would drop), without changing `obj`.
pub fn unknown_fields_crd(obj: &Value, schema: &Value) -> Vec<String> {
    let mut copy = obj.clone();
    prune_tracking(&mut copy, schema)
}

// ---------------------------------------------------------------------------------------
// Structural schemas: validation
// ---------------------------------------------------------------------------------------

fn regex_cache() -> &'static Mutex<HashMap<String, Option<regex::Regex>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Whether `s` matches the ECMA-262 `pattern` (unanchored, as Kubernetes matches), or
/// `None` when the pattern does not compile.
fn pattern_matches(pattern: &str, s: &str) -> Option<bool> {
    let mut cache = match regex_cache().lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    if cache.len() > 1024 {
        cache.clear();
    }
    let re = cache
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok());
    re.as_ref().map(|re| re.is_match(s))
}

fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

/// `YYYY-MM-DD` with a day that exists.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !b[..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let year: u32 = s[..4].parse().unwrap_or(0);
    let (Some(month), Some(day)) = (two_digits(&b[5..7]), two_digits(&b[8..10])) else {
        return false;
    };
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// An RFC 3339 date-time, loosely as go-openapi's `strfmt` accepts it: `T` or `t` (or a
/// space) between date and time, seconds and fractions optional, zone `Z`, `z`,
/// `±hh:mm`, `±hhmm` or none.
pub fn is_date_time(s: &str) -> bool {
    if s.len() < 16 || !s.is_char_boundary(10) || !is_date(&s[..10]) {
        return false;
    }
    let rest = &s.as_bytes()[10..];
    if !matches!(rest.first(), Some(b'T' | b't' | b' ')) {
        return false;
    }
    let t = &rest[1..];
    let (Some(hh), Some(mm)) = (
        t.get(0..2).and_then(two_digits),
        t.get(3..5).and_then(two_digits),
    ) else {
        return false;
    };
    if t.get(2) != Some(&b':') || hh > 23 || mm > 59 {
        return false;
    }
    let mut i = 5;
    if t.get(i) == Some(&b':') {
        match t.get(i + 1..i + 3).and_then(two_digits) {
            Some(ss) if ss <= 60 => i += 3,
            _ => return false,
        }
        if t.get(i) == Some(&b'.') {
            let digits = t[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return false;
            }
            i += 1 + digits;
        }
    }
    match &t[i..] {
        [] | [b'Z'] | [b'z'] => true,
        [b'+' | b'-', zone @ ..] => match zone {
            [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => matches!(
                (two_digits(&[*h1, *h2]), two_digits(&[*m1, *m2])),
                (Some(h), Some(m)) if h <= 23 && m <= 59
            ),
            _ => false,
        },
        _ => false,
    }
}

/// A CRD schema node, with the keywords validation reads.
struct Node<'a>(&'a Map<String, Value>);

impl<'a> Node<'a> {
    fn get(&self, k: &str) -> Option<&'a Value> {
        self.0.get(k)
    }
    fn flag(&self, k: &str) -> bool {
        flag(self.0, k)
    }
    fn str(&self, k: &str) -> Option<&'a str> {
        self.0.get(k).and_then(Value::as_str)
    }
    fn f64(&self, k: &str) -> Option<f64> {
        self.0.get(k).and_then(Value::as_f64)
    }
    fn i64(&self, k: &str) -> Option<i64> {
        self.0.get(k).and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        })
    }
    fn types(&self) -> Vec<&'a str> {
        if self.flag("x-kubernetes-int-or-string") {
            return vec!["integer", "string"];
        }
        match self.get("type") {
            Some(Value::String(t)) if !t.is_empty() => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
    fn sub(&self, k: &str) -> Option<Node<'a>> {
        obj_field(self.0, k).map(Node)
    }
    fn subs(&self, k: &str) -> Vec<Node<'a>> {
        self.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_object).map(Node).collect())
            .unwrap_or_default()
    }
}

fn is_whole(f: f64) -> bool {
    f.is_finite() && f.fract() == 0.0
}

/// `schemaInfoForType`: the JSON Schema type and format of a decoded value.
fn data_type_and_format(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Null => ("null", ""),
        Value::Bool(_) => ("boolean", ""),
        Value::Number(n) if n.is_f64() => ("number", "double"),
        Value::Number(_) => ("integer", "int64"),
        Value::String(_) => ("string", ""),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// How a numeric bound is printed in a message: as an integer when the value checked is
/// one (`ExceedsMaximumInt`), else as Go prints a `float64`.
fn bound_text(bound: f64, data: &Number) -> String {
    if !data.is_f64() {
        (bound as i64).to_string()
    } else {
        go_format_float(bound)
    }
}

/// The field path Kubernetes reports for a kube-openapi error at `name` (`<nil>` at the
/// root).
fn err_path(name: &str) -> String {
    let trimmed = name.strip_prefix('.').unwrap_or(name);
    if trimmed.is_empty() {
        "<nil>".to_string()
    } else {
        trimmed.to_string()
    }
}

fn validate_node(data: &Value, node: &Node<'_>, path: &str, errs: &mut Vec<FieldError>) {
    let types = node.types();
    let nullable = node.flag("nullable");
    let fpath = err_path(path);

    if data.is_null() {
        if !types.is_empty() && !types.contains(&"null") && !nullable {
            errs.push(type_error(path, &types.join(","), "null"));
        }
        if !nullable {
            validate_enum(data, node, &fpath, errs);
        }
        return;
    }

    // Type.
    let (data_type, data_format) = data_type_and_format(data);
    let schema_format = node.str("format").unwrap_or("");
    if !types.is_empty() {
        let whole = data.as_f64().is_some_and(is_whole);
        let float_int = data_type == "number" && whole && types.contains(&"integer");
        let int_float = data_type == "integer" && types.contains(&"number");
        let string_or_array = matches!(data, Value::String(_) | Value::Array(_));
        let numeric_type = types.contains(&"number") || types.contains(&"integer");
        let type_ok = types.contains(&data_type) || float_int || int_float;
        // A value that is neither a string nor an array is checked against the format
        // first (`type: string, format: date-time` given a number).
        let format_ok =
            string_or_array || schema_format.is_empty() || type_ok || data_format == schema_format;
        if !format_ok {
            errs.push(type_error(path, schema_format, data_format));
        } else if !numeric_type && !schema_format.is_empty() && string_or_array {
            // kube-openapi skips the type check of formatted strings and arrays.
        } else if !type_ok {
            errs.push(type_error(path, &types.join(","), data_type));
        }
    }

    // allOf / anyOf / oneOf / not.
    for sub in node.subs("allOf") {
        validate_node(data, &sub, path, errs);
    }
    let any_of = node.subs("anyOf");
    if !any_of.is_empty() {
        let results: Vec<Vec<FieldError>> = any_of
            .iter()
            .map(|sub| {
                let mut e = Vec::new();
                validate_node(data, sub, path, &mut e);
                e
            })
            .collect();
        if !results.iter().any(Vec::is_empty) {
            errs.push(FieldError::invalid(
                "<nil>",
                "",
                format!(
                    "{} must validate at least one schema (anyOf)",
                    go_quote(path)
                ),
            ));
            if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                errs.extend(best);
            }
        }
    }
    let one_of = node.subs("oneOf");
    if !one_of.is_empty() {
        let results: Vec<Vec<FieldError>> = one_of
            .iter()
            .map(|sub| {
                let mut e = Vec::new();
                validate_node(data, sub, path, &mut e);
                e
            })
            .collect();
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if valid != 1 {
            let detail = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errs.push(FieldError::invalid(
                "<nil>",
                "",
                format!(
                    "{} must validate one and only one schema (oneOf). {detail}",
                    go_quote(path)
                ),
            ));
            if valid == 0
                && let Some(best) = results.into_iter().min_by_key(Vec::len)
            {
                errs.extend(best);
            }
        }
    }
    if let Some(not) = node.sub("not") {
        let mut e = Vec::new();
        validate_node(data, &not, path, &mut e);
        if e.is_empty() {
            errs.push(FieldError::invalid(
                "<nil>",
                "",
                format!("{} must not validate the schema (not)", go_quote(path)),
            ));
        }
    }

    match data {
        Value::String(s) => {
            let len = s.chars().count() as i64;
            if let Some(max) = node.i64("maxLength")
                && len > max
            {
                errs.push(FieldError::too_long(fpath.clone(), max));
            }
            if let Some(min) = node.i64("minLength")
                && len < min
            {
                errs.push(FieldError::invalid(
                    fpath.clone(),
                    s.as_str(),
                    format!("{path} in body should be at least {min} chars long"),
                ));
            }
            if let Some(pattern) = node.str("pattern")
                && pattern_matches(pattern, s) == Some(false)
            {
                errs.push(FieldError::invalid(
                    fpath.clone(),
                    s.as_str(),
                    format!("{path} in body should match '{pattern}'"),
                ));
            }
            let format_ok = match schema_format {
                "date-time" | "datetime" => is_date_time(s),
                "date" => is_date(s),
                _ => true,
            };
            if !format_ok {
                errs.push(FieldError::type_invalid(
                    fpath.clone(),
                    s.as_str(),
                    format!(
                        "{path} in body must be of type {schema_format}: {}",
                        go_quote(s)
                    ),
                ));
            }
        }
        Value::Number(n) => validate_number(n, node, path, &fpath, errs),
        Value::Array(items) => {
            if let Some(item_schema) = node.sub("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_node(item, &item_schema, &index(path, i), errs);
                }
            }
            let size = items.len() as i64;
            if let Some(min) = node.i64("minItems")
                && size < min
            {
                errs.push(FieldError::invalid(
                    fpath.clone(),
                    size,
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = node.i64("maxItems")
                && size > max
            {
                errs.push(FieldError::too_many(fpath.clone(), size, max));
            }
            if node.flag("uniqueItems") {
                let dup = items
                    .iter()
                    .enumerate()
                    .any(|(i, a)| items[..i].iter().any(|b| json_equal(a, b)));
                if dup {
                    errs.push(FieldError::invalid(
                        fpath.clone(),
                        "",
                        format!("{path} in body shouldn't contain duplicates"),
                    ));
                }
            }
        }
        _ => {}
    }

    validate_enum(data, node, &fpath, errs);

    if let Value::Object(map) = data {
        validate_object(map, node, path, &fpath, errs);
    }
}

fn type_error(path: &str, type_name: &str, data_type: &str) -> FieldError {
    FieldError::type_invalid(
        err_path(path),
        data_type,
        format!(
            "{path} in body must be of type {type_name}: {}",
            go_quote(data_type)
        ),
    )
}

fn validate_enum(data: &Value, node: &Node<'_>, fpath: &str, errs: &mut Vec<FieldError>) {
    let Some(Value::Array(allowed)) = node.get("enum") else {
        return;
    };
    if allowed.is_empty() || allowed.iter().any(|a| json_equal(a, data)) {
        return;
    }
    let values: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => s.clone(),
            other => go_json(other),
        })
        .collect();
    errs.push(FieldError::not_supported(fpath, data.clone(), &values));
}

fn validate_number(
    n: &Number,
    node: &Node<'_>,
    path: &str,
    fpath: &str,
    errs: &mut Vec<FieldError>,
) {
    let value = n.as_f64().unwrap_or(0.0);
    let data = Value::Number(n.clone());
    if let Some(factor) = node.f64("multipleOf")
        && factor > 0.0
    {
        let ok = match n.as_i64() {
            Some(i) if is_whole(factor) => i % (factor as i64) == 0,
            _ => is_whole(value / factor),
        };
        if !ok {
            let shown = if !n.is_f64() && is_whole(factor) {
                (factor as i64).to_string()
            } else {
                go_format_float(factor)
            };
            errs.push(FieldError::invalid(
                fpath,
                data.clone(),
                format!("{path} in body should be a multiple of {shown}"),
            ));
        }
    }
    if let Some(max) = node.f64("maximum") {
        let exclusive = node.flag("exclusiveMaximum");
        if value > max || (exclusive && value == max) {
            let op = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(FieldError::invalid(
                fpath,
                data.clone(),
                format!("{path} in body should be {op} {}", bound_text(max, n)),
            ));
        }
    }
    if let Some(min) = node.f64("minimum") {
        let exclusive = node.flag("exclusiveMinimum");
        if value < min || (exclusive && value == min) {
            let op = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(FieldError::invalid(
                fpath,
                data,
                format!("{path} in body should be {op} {}", bound_text(min, n)),
            ));
        }
    }
}

fn validate_object(
    map: &Map<String, Value>,
    node: &Node<'_>,
    path: &str,
    fpath: &str,
    errs: &mut Vec<FieldError>,
) {
    let count = map.len() as i64;
    if let Some(min) = node.i64("minProperties")
        && count < min
    {
        errs.push(FieldError::invalid(
            fpath,
            count,
            format!("{path} in body should have at least {min} properties"),
        ));
    }
    if let Some(max) = node.i64("maxProperties")
        && count > max
    {
        errs.push(FieldError::too_many(fpath, count, max));
    }
    if let Some(Value::Array(required)) = node.get("required") {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                errs.push(FieldError::required(child(path, r), ""));
            }
        }
    }
    let props = node.sub("properties");
    let additional = additional(node.0);
    if matches!(node.get("additionalProperties"), Some(Value::Bool(false))) {
        for k in map.keys() {
            if !props.as_ref().is_some_and(|p| p.0.contains_key(k)) {
                errs.push(FieldError::invalid(
                    fpath,
                    k.as_str(),
                    format!("{path}.{k} in body is a forbidden property"),
                ));
            }
        }
    }
    for (k, v) in map {
        let sub = props.as_ref().and_then(|p| p.sub(k));
        if let Some(sub) = sub {
            validate_node(v, &sub, &child(path, k), errs);
        } else if let Additional::Schema(ap) = additional {
            validate_node(v, &Node(ap), &child(path, k), errs);
        }
    }
}

/// The embedded-resource checks of custom resources (`x-kubernetes-embedded-resource`
/// below the root): `apiVersion` and `kind` are required strings, and `metadata` is a
/// valid `ObjectMeta` (names as path segments, namespace optional).
fn validate_embedded(
    x: &Value,
    s: &Map<String, Value>,
    path: &str,
    is_root: bool,
    errs: &mut Vec<FieldError>,
) {
    match x {
        Value::Object(map) => {
            if !is_root && flag(s, "x-kubernetes-embedded-resource") {
                validate_embedded_resource(map, path, errs);
            }
            let props = obj_field(s, "properties");
            let additional = additional(s);
            for (k, v) in map {
                if let Some(sub) = props.and_then(|p| p.get(k)).and_then(Value::as_object) {
                    validate_embedded(v, sub, &child(path, k), false, errs);
                } else if let Additional::Schema(ap) = additional {
                    validate_embedded(v, ap, &key(path, k), false, errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = obj_field(s, "items") {
                for (i, item) in items.iter().enumerate() {
                    validate_embedded(item, item_schema, &index(path, i), false, errs);
                }
            }
        }
        _ => {}
    }
}

fn validate_embedded_resource(map: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    if !map.contains_key("apiVersion") {
        errs.push(FieldError::required(child(path, "apiVersion"), ""));
    }
    if !map.contains_key("kind") {
        errs.push(FieldError::required(child(path, "kind"), ""));
    }
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" => match v.as_str() {
                None => errs.push(FieldError::invalid(
                    child(path, k),
                    v.clone(),
                    "must be a string",
                )),
                Some("") => errs.push(FieldError::invalid(child(path, k), "", "must not be empty")),
                Some(gv) => {
                    if let Err(e) = parse_group_version(gv) {
                        errs.push(FieldError::invalid(child(path, k), gv, e));
                    }
                }
            },
            "kind" => match v.as_str() {
                None => errs.push(FieldError::invalid(
                    child(path, k),
                    v.clone(),
                    "must be a string",
                )),
                Some("") => errs.push(FieldError::invalid(child(path, k), "", "must not be empty")),
                Some(kind) => {
                    let problems = is_dns1035_label(&kind.to_lowercase());
                    if !problems.is_empty() {
                        errs.push(FieldError::invalid(
                            child(path, k),
                            kind,
                            format!(
                                "may have mixed case, but should otherwise match: {}",
                                problems.join(",")
                            ),
                        ));
                    }
                }
            },
            "metadata" => {
                let mut meta = v.clone();
                if let Value::Object(m) = &mut meta {
                    let has_name = m
                        .get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| !n.is_empty());
                    if !has_name {
                        m.insert("name".into(), Value::from("fakename"));
                    }
                }
                let namespaced = v
                    .get("namespace")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty());
                errs.extend(validate_object_meta_at(
                    &meta,
                    namespaced,
                    NameRule::PathSegment,
                    &child(path, "metadata"),
                ));
            }
            _ => {}
        }
    }
}

/// The `x-kubernetes-list-type` checks: `set` items are unique, `map` items are objects
/// unique by their `x-kubernetes-list-map-keys`.
fn validate_list_types(x: &Value, s: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    match x {
        Value::Array(items) => {
            match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => validate_list_set(items, path, errs),
                Some("map") => validate_list_map(items, s, path, errs),
                _ => {}
            }
            if let Some(item_schema) = obj_field(s, "items") {
                for (i, item) in items.iter().enumerate() {
                    validate_list_types(item, item_schema, &index(path, i), errs);
                }
            }
        }
        Value::Object(map) => {
            if let Additional::Schema(ap) = additional(s) {
                for (k, v) in map {
                    validate_list_types(v, ap, &key(path, k), errs);
                }
            }
            if let Some(props) = obj_field(s, "properties") {
                for (k, v) in map {
                    if let Some(sub) = props.get(k).and_then(Value::as_object) {
                        validate_list_types(v, sub, &child(path, k), errs);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The indices of the second occurrence of each value seen more than once.
fn second_occurrences(keys: &[String]) -> Vec<usize> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let c = counts.entry(k.as_str()).or_insert(0);
        *c += 1;
        if *c == 2 {
            out.push(i);
        }
    }
    out
}

fn canonical_key(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(is_whole) => {
            go_json(&Value::from(n.as_f64().unwrap_or(0.0) as i64))
        }
        other => go_json(other),
    }
}

fn validate_list_set(items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    if items.len() <= 1 {
        return;
    }
    let keys: Vec<String> = items.iter().map(canonical_key).collect();
    for i in second_occurrences(&keys) {
        errs.push(FieldError::duplicate(index(path, i), items[i].clone()));
    }
}

fn validate_list_map(
    items: &[Value],
    s: &Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    for (i, x) in items.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            errs.push(FieldError::invalid(
                index(path, i),
                x.clone(),
                "must be an object for an array of list-type map",
            ));
            return;
        }
    }
    if items.len() <= 1 {
        return;
    }
    let map_keys: Vec<&str> = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let item_props = obj_field(s, "items").and_then(|i| obj_field(i, "properties"));
    let keys: Vec<String> = items
        .iter()
        .map(|x| {
            let tuple: Vec<String> = map_keys
                .iter()
                .map(|k| match x.get(*k) {
                    Some(v) => canonical_key(v),
                    None => item_props
                        .and_then(|p| p.get(*k))
                        .and_then(|p| p.get("default"))
                        .map(canonical_key)
                        .unwrap_or_else(|| "<unspecified>".to_string()),
                })
                .collect();
            tuple.join("\u{0}")
        })
        .collect();
    for i in second_occurrences(&keys) {
        let mut key_values = Map::new();
        for k in &map_keys {
            let v = items[i].get(*k).cloned().unwrap_or(Value::Null);
            key_values.insert((*k).to_string(), v);
        }
        errs.push(FieldError::duplicate(
            index(path, i),
            Value::Object(key_values),
        ));
    }
}

/// Validate a custom resource against its CRD's `openAPIV3Schema` as the apiextensions
/// server does after pruning: kube-openapi schema validation (type, `nullable`,
/// `x-kubernetes-int-or-string`, `enum`, `required`, numeric bounds, string lengths,
/// `pattern`, `format` `date-time`/`date`, item counts, `uniqueItems`, property counts,
/// `additionalProperties`, `allOf`/`anyOf`/`oneOf`/`not`), then the checks of embedded
/// resources below the root, then `x-kubernetes-list-type` `set`/`map` uniqueness.
///
/// The root `metadata` is not validated as `ObjectMeta` here: use
/// [`validate_object_meta`] with [`NameRule::Dns1123Subdomain`] for that.
pub fn validate_against_schema(obj: &Value, schema: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(s) = schema.as_object() else {
        return errs;
    };
    validate_node(obj, &Node(s), "", &mut errs);
    validate_embedded(obj, s, "", true, &mut errs);
    validate_list_types(obj, s, "", &mut errs);
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    fn strings(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn dns1123_subdomain() {
        assert!(is_dns1123_subdomain("example.com").is_empty());
        assert!(is_dns1123_subdomain("a").is_empty());
        assert!(is_dns1123_subdomain("0-0.a-b.9").is_empty());
        assert_eq!(is_dns1123_subdomain("Foo"), vec![SUBDOMAIN_MSG]);
        for bad in ["", "-a", "a-", "a..b", ".a", "a.", "a_b", "a.-b", "é"] {
            assert_eq!(is_dns1123_subdomain(bad), vec![SUBDOMAIN_MSG], "{bad:?}");
        }
        let long = "a".repeat(254);
        assert_eq!(
            is_dns1123_subdomain(&long),
            vec!["must be no more than 253 characters"]
        );
        assert!(is_dns1123_subdomain(&"a".repeat(253)).is_empty());
        assert_eq!(
            is_dns1123_subdomain(&format!("{}-", "a".repeat(253))),
            vec![
                "must be no more than 253 characters".to_string(),
                SUBDOMAIN_MSG.to_string()
            ]
        );
    }

    #[test]
    fn dns1123_label_and_1035() {
        assert!(is_dns1123_label("my-name").is_empty());
        assert!(is_dns1123_label("123-abc").is_empty());
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(is_dns1123_label("A"), vec![LABEL_MSG]);
        assert_eq!(is_dns1123_label(""), vec![LABEL_MSG]);
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert!(is_dns1035_label("abc-123").is_empty());
        assert_eq!(
            is_dns1035_label("1abc"),
            vec![
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
    }

    #[test]
    fn qualified_names_and_label_values() {
        for ok in [
            "a",
            "MyName",
            "my.name",
            "123-abc",
            "example.com/My_Name.x",
            "a/b",
        ] {
            assert!(is_qualified_name(ok).is_empty(), "{ok}");
        }
        assert_eq!(is_qualified_name("a b"), vec![NAME_PART_MSG]);
        assert_eq!(
            is_qualified_name("/a"),
            vec!["prefix part must be non-empty"]
        );
        assert_eq!(
            is_qualified_name("a/"),
            vec![
                "name part must be non-empty".to_string(),
                NAME_PART_MSG.to_string()
            ]
        );
        assert_eq!(
            is_qualified_name("Example.com/a"),
            vec![format!("prefix part {SUBDOMAIN_MSG}")]
        );
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert_eq!(
            is_qualified_name("a/b/c"),
            vec![
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ]
        );
        assert!(is_valid_label_value("").is_empty());
        assert!(is_valid_label_value("my_value").is_empty());
        assert_eq!(is_valid_label_value("-a"), vec![LABEL_VALUE_MSG]);
        assert_eq!(is_valid_label_value("a b"), vec![LABEL_VALUE_MSG]);
        assert_eq!(
            is_valid_label_value(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn path_segments_and_name_rules() {
        assert_eq!(is_valid_path_segment_name("."), vec!["may not be '.'"]);
        assert_eq!(is_valid_path_segment_name(".."), vec!["may not be '..'"]);
        assert_eq!(
            is_valid_path_segment_name("a/b%c"),
            vec!["may not contain '/'", "may not contain '%'"]
        );
        assert!(is_valid_path_segment_name("Any:Thing").is_empty());
        assert!(NameRule::PathSegment.validate("..", true).is_empty());
        // generateName prefixes may end with '-'.
        assert!(NameRule::Dns1123Subdomain.validate("foo-", true).is_empty());
        assert_eq!(
            NameRule::Dns1123Subdomain.validate("foo-", false),
            vec![SUBDOMAIN_MSG]
        );
        assert!(NameRule::Dns1123Label.validate("a-", true).is_empty());
        assert_eq!(NameRule::Dns1123Label.validate("-", true), vec![LABEL_MSG]);
        assert_eq!(mask_trailing_dash("ab-"), "aa");
        assert_eq!(mask_trailing_dash("é-"), "éa");
        assert!(!NameRule::Dns1035Label.validate("1a", false).is_empty());
    }

    #[test]
    fn go_rendering() {
        assert_eq!(
            go_quote("a\"b\\c\n\t\u{1}é\u{a0}"),
            "\"a\\\"b\\\\c\\n\\t\\x01é\\u00a0\""
        );
        for (f, want) in [
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (100.0, "100"),
            (0.0, "0"),
            (1.5e-300, "1.5e-300"),
        ] {
            assert_eq!(go_format_float(f), want, "{f}");
        }
        assert_eq!(
            go_json(&json!({"b": 1, "a": "<x&>", "c": [1.5, 1e-7, 1e21, 100.0, null, true]})),
            r#"{"a":"\u003cx\u0026\u003e","b":1,"c":[1.5,1e-7,1e+21,100,null,true]}"#
        );
        assert_eq!(render_bad_value(&json!(1.5)), "1.5");
        assert_eq!(render_bad_value(&json!(-3)), "-3");
        assert_eq!(render_bad_value(&json!("x")), "\"x\"");
        assert_eq!(render_bad_value(&json!(["a"])), "[\"a\"]");
        assert_eq!(render_bad_value(&Value::Null), "null");
    }

    #[test]
    fn field_error_shapes() {
        let e = FieldError::invalid("spec.replicas", -1, IS_NEGATIVE_ERROR_MSG);
        assert_eq!(
            e.to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            e.to_cause(),
            json!({"reason": "FieldValueInvalid", "message": "Invalid value: -1: must be greater than or equal to 0", "field": "spec.replicas"})
        );
        assert_eq!(
            FieldError::required("spec.size", "").to_string(),
            "spec.size: Required value"
        );
        assert_eq!(
            FieldError::required("metadata.name", "name or generateName is required").to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        assert_eq!(
            FieldError::not_supported("spec.color", "pink", &["red", "blue"]).to_string(),
            "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\""
        );
        assert_eq!(
            FieldError::too_long("metadata.annotations", 262144).to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(
            FieldError::too_long("x", 1).to_string(),
            "x: Too long: may not be more than 1 byte"
        );
        assert_eq!(
            FieldError::too_many("spec.x", 3, 2).to_string(),
            "spec.x: Too many: 3: must have at most 2 items"
        );
        assert_eq!(
            FieldError::too_many("spec.x", -1, 1).to_string(),
            "spec.x: Too many: must have at most 1 item"
        );
        assert_eq!(
            FieldError::forbidden("metadata.namespace", "not allowed on this type").to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
        assert_eq!(
            FieldError::duplicate("spec.l[1]", json!({"name": "a"})).to_string(),
            "spec.l[1]: Duplicate value: {\"name\":\"a\"}"
        );
        assert_eq!(
            FieldError::not_found("spec.x", "y").to_string(),
            "spec.x: Not found: \"y\""
        );
        assert_eq!(
            FieldError::internal("spec", "boom").to_string(),
            "spec: Internal error: boom"
        );
        let t = FieldError::type_invalid(
            "spec.r",
            "string",
            "spec.r in body must be of type integer: \"string\"",
        );
        assert_eq!(t.to_cause()["reason"], "FieldValueTypeInvalid");
        assert_eq!(
            FieldError::required("", "x").to_cause(),
            json!({"reason": "FieldValueRequired", "message": "Required value: x"})
        );
        for (k, reason) in [
            (FieldErrorKind::NotFound, "FieldValueNotFound"),
            (FieldErrorKind::Duplicate, "FieldValueDuplicate"),
            (FieldErrorKind::NotSupported, "FieldValueNotSupported"),
            (FieldErrorKind::Forbidden, "FieldValueForbidden"),
            (FieldErrorKind::TooLong, "FieldValueTooLong"),
            (FieldErrorKind::TooMany, "FieldValueTooMany"),
            (FieldErrorKind::Internal, "InternalError"),
        ] {
            assert_eq!(k.reason(), reason);
        }
    }

    #[test]
    fn aggregate_and_status() {
        let a = FieldError::required("metadata.name", "name or generateName is required");
        let b = FieldError::invalid("spec.replicas", -1, IS_NEGATIVE_ERROR_MSG);
        assert_eq!(aggregate_message(&[]), "");
        assert_eq!(aggregate_message(std::slice::from_ref(&a)), a.to_string());
        assert_eq!(
            aggregate_message(&[a.clone(), b.clone(), a.clone()]),
            format!("[{a}, {b}]")
        );
        let st = invalid_status("apps", "Deployment", "web", &[a.clone(), b]);
        assert_eq!(st["code"], 422);
        assert_eq!(st["reason"], "Invalid");
        assert_eq!(
            st["message"],
            "Deployment.apps \"web\" is invalid: [metadata.name: Required value: name or generateName is required, spec.replicas: Invalid value: -1: must be greater than or equal to 0]"
        );
        assert_eq!(st["details"]["group"], "apps");
        assert_eq!(st["details"]["causes"][1]["field"], "spec.replicas");
        let st = invalid_status("", "Pod", "p", &[a]);
        assert_eq!(
            st["message"],
            "Pod \"p\" is invalid: metadata.name: Required value: name or generateName is required"
        );
        assert!(st["details"].get("group").is_none());
    }

    #[test]
    fn object_meta() {
        let errs = validate_object_meta(
            &json!({"name": "Foo", "namespace": "default"}),
            true,
            NameRule::Dns1123Subdomain,
        );
        assert_eq!(
            strings(&errs),
            vec![format!(
                "metadata.name: Invalid value: \"Foo\": {SUBDOMAIN_MSG}"
            )]
        );

        let errs = validate_object_meta(&json!({}), true, NameRule::Dns1123Subdomain);
        assert_eq!(
            strings(&errs),
            vec![
                "metadata.name: Required value: name or generateName is required",
                "metadata.namespace: Required value"
            ]
        );
        let errs = validate_object_meta(
            &json!({"name": "n", "namespace": "x"}),
            false,
            NameRule::Dns1123Label,
        );
        assert_eq!(
            strings(&errs),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        let errs = validate_object_meta(
            &json!({"name": "n", "namespace": "Bad"}),
            true,
            NameRule::Dns1123Label,
        );
        assert_eq!(
            strings(&errs),
            vec![format!(
                "metadata.namespace: Invalid value: \"Bad\": {LABEL_MSG}"
            )]
        );
        let errs = validate_object_meta(
            &json!({"name": "n", "generateName": "Foo-", "generation": -1}),
            false,
            NameRule::Dns1123Subdomain,
        );
        assert_eq!(
            strings(&errs),
            vec![
                format!("metadata.generateName: Invalid value: \"Foo-\": {SUBDOMAIN_MSG}"),
                "metadata.generation: Invalid value: -1: must be greater than or equal to 0"
                    .to_string()
            ]
        );
        assert!(
            validate_object_meta(
                &json!({"name": "ok", "generateName": "ok-"}),
                false,
                NameRule::Dns1123Subdomain
            )
            .is_empty()
        );

        let errs = validate_object_meta(
            &json!({"name": "n", "labels": {"a b": "x", "ok": "-bad"}}),
            false,
            NameRule::Dns1123Subdomain,
        );
        assert_eq!(
            strings(&errs),
            vec![
                format!("metadata.labels: Invalid value: \"a b\": {NAME_PART_MSG}"),
                format!("metadata.labels: Invalid value: \"-bad\": {LABEL_VALUE_MSG}"),
            ]
        );
        assert_eq!(errs[0].to_cause()["field"], "metadata.labels");
    }

    #[test]
    fn annotations() {
        // Case does not matter for annotation keys.
        assert!(
            validate_annotations(&json!({"Example.com/Foo": "x"}), "metadata.annotations")
                .is_empty()
        );
        let errs = validate_annotations(&json!({"a b": "x"}), "metadata.annotations");
        assert_eq!(
            strings(&errs),
            vec![format!(
                "metadata.annotations: Invalid value: \"a b\": {NAME_PART_MSG}"
            )]
        );
        let exact = json!({"k": "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B - 1)});
        assert!(validate_annotations(&exact, "metadata.annotations").is_empty());
        let over = json!({"k": "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B)});
        let errs = validate_object_meta(
            &json!({"name": "n", "annotations": over}),
            false,
            NameRule::Dns1123Subdomain,
        );
        assert_eq!(
            strings(&errs),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
        assert_eq!(errs[0].to_cause()["reason"], "FieldValueTooLong");
    }

    #[test]
    fn owner_references_finalizers_managed_fields() {
        let meta = json!({
            "name": "n",
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
                {"apiVersion": "", "kind": "", "name": "", "uid": ""},
                {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "2", "controller": true}
            ],
            "finalizers": ["orphan", "foregroundDeletion", "bad name"],
            "managedFields": [{"manager": "m", "operation": "Patch", "fieldsType": "FieldsV2"}]
        });
        let errs = strings(&validate_object_meta(
            &meta,
            false,
            NameRule::Dns1123Subdomain,
        ));
        assert_eq!(
            errs[0],
            "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty"
        );
        assert_eq!(
            errs[1],
            "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty"
        );
        assert_eq!(
            errs[2],
            "metadata.ownerReferences.name: Invalid value: \"\": must not be empty"
        );
        assert_eq!(
            errs[3],
            "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty"
        );
        assert!(
            errs[4].starts_with("metadata.ownerReferences: Invalid value: {\"apiVersion\":\"v1\"")
        );
        assert!(errs[4].ends_with(": /v1, Kind=Event is disallowed from being an owner"));
        assert!(errs[5].ends_with("Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and Event/e"));
        assert_eq!(
            errs[6],
            format!("metadata.finalizers: Invalid value: \"bad name\": {NAME_PART_MSG}")
        );
        assert_eq!(
            errs[7],
            "metadata.finalizers: Invalid value: [\"orphan\",\"foregroundDeletion\",\"bad name\"]: finalizer orphan and foregroundDeletion cannot be both set"
        );
        assert_eq!(
            errs[8],
            "metadata.managedFields[0].operation: Invalid value: \"Patch\": must be `Apply` or `Update`"
        );
        assert_eq!(
            errs[9],
            "metadata.managedFields[0].fieldsType: Invalid value: \"FieldsV2\": must be `FieldsV1`"
        );
        assert_eq!(errs.len(), 10);
        assert_eq!(
            parse_group_version("a/b/c"),
            Err("unexpected GroupVersion string: a/b/c".to_string())
        );
        assert_eq!(parse_group_version("apps/v1"), Ok(("apps", "v1")));
    }

    #[test]
    fn label_selector_validation() {
        let sel = json!({
            "matchLabels": {"app": "web", "-x": "y"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": []},
                {"key": "t", "operator": "Exists", "values": ["a"]},
                {"key": "t", "operator": "Foo"},
                {"key": "t", "operator": "NotIn", "values": ["ok", "-no"]}
            ]
        });
        assert_eq!(
            strings(&validate_label_selector(&sel, "spec.selector")),
            vec![
                format!("spec.selector.matchLabels: Invalid value: \"-x\": {NAME_PART_MSG}"),
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'".to_string(),
                "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".to_string(),
                "spec.selector.matchExpressions[2].operator: Invalid value: \"Foo\": not a valid selector operator".to_string(),
                format!("spec.selector.matchExpressions[3].values[1]: Invalid value: \"-no\": {LABEL_VALUE_MSG}"),
            ]
        );
        assert!(validate_label_selector(&Value::Null, "spec.selector").is_empty());
    }

    fn pod_defs() -> Value {
        json!({
            "Pod": {"type": "object", "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"allOf": [{"$ref": "#/components/schemas/ObjectMeta"}]},
                "spec": {"$ref": "#/components/schemas/PodSpec"}
            }},
            "ObjectMeta": {"type": "object", "properties": {
                "name": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
            }},
            "PodSpec": {"type": "object", "properties": {
                "containers": {"type": "array", "items": {"$ref": "#/components/schemas/Container"}},
                "overhead": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Container"}},
                "raw": {"$ref": "#/components/schemas/RawExtension"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {"type": "string"}}},
                "anything": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true},
                "closed": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}
            }},
            "Container": {"type": "object", "properties": {"name": {"type": "string"}, "image": {"type": "string"}}},
            "RawExtension": {"type": "object"}
        })
    }

    #[test]
    fn unknown_fields_of_builtins() {
        let defs = pod_defs();
        let defs = defs.as_object().unwrap();
        let pod = SchemaNode::definition(defs, "Pod").unwrap();
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"any": "x"}, "bogus": 1},
            "spec": {
                "foo": 1,
                "containers": [{"name": "a", "image": "x"}, {"name": "b", "imagee": "y"}],
                "overhead": {"c1": {"name": "x", "nope": 1}},
                "raw": {"whatever": {"deep": 1}},
                "free": {"whatever": 1},
                "anything": {"whatever": 1},
                "closed": {"a": "x", "b": 1}
            },
            "status": {}
        });
        assert_eq!(
            unknown_fields(&obj, pod),
            vec![
                "metadata.bogus",
                "spec.foo",
                "spec.containers[1].imagee",
                "spec.overhead.c1.nope",
                "spec.closed.b",
                "status"
            ]
        );
        assert!(
            unknown_fields(&json!({"kind": "Pod", "spec": {"containers": []}}), pod).is_empty()
        );
        assert_eq!(
            strict_decoding_error(&["spec.foo".to_string(), "spec.bar".to_string()]),
            "strict decoding error: unknown field \"spec.foo\", unknown field \"spec.bar\""
        );
    }

    fn crd_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer"},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
                    "inner": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
                        "typed": {"type": "object", "properties": {"a": {"type": "string"}}}
                    }},
                    "nullable": {"type": "string", "nullable": true},
                    "plain": {"type": "string"},
                    "defaulted": {"type": "string", "default": "x"}
                }},
                "status": {"type": "object"}
            }
        })
    }

    #[test]
    fn pruning_custom_resources() {
        let mut obj = json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "bogus": 1, "ownerReferences": [{"name": "o", "extra": 1}]},
            "spec": {
                "replicas": 1,
                "foo": 1,
                "items": [{"name": "a", "zzz": 1}],
                "free": {"anything": 1, "typed": {"a": "x", "b": 2}},
                "labels": {"x": "y"},
                "nullable": null,
                "plain": null,
                "defaulted": null,
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t", "junk": 1}, "spec": {"whatever": 1}},
                "inner": {"apiVersion": "v1", "kind": "X", "metadata": {"name": "i"}, "spec": {"a": "x", "b": 1}, "other": 1}
            },
            "status": {"phase": "x"},
            "extra": 1
        });
        let unknown = prune_tracking(&mut obj, &crd_schema());
        assert_eq!(
            unknown,
            vec![
                "metadata.bogus",
                "metadata.ownerReferences[0].extra",
                "extra",
                "spec.foo",
                "spec.free.typed.b",
                "spec.inner.other",
                "spec.inner.spec.b",
                "spec.items[0].zzz",
                "status.phase",
                "spec.template.metadata.junk"
            ]
        );
        assert_eq!(
            obj,
            json!({
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "w", "ownerReferences": [{"name": "o"}]},
                "spec": {
                    "replicas": 1,
                    "items": [{"name": "a"}],
                    "free": {"anything": 1, "typed": {"a": "x"}},
                    "labels": {"x": "y"},
                    "nullable": null,
                    "defaulted": null,
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t"}, "spec": {"whatever": 1}},
                    "inner": {"apiVersion": "v1", "kind": "X", "metadata": {"name": "i"}, "spec": {"a": "x"}}
                },
                "status": {}
            })
        );
        // Key order is kept.
        let keys: Vec<&String> = obj["spec"].as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "replicas");
        assert_eq!(keys[1], "items");
        // Pruning again finds nothing.
        let before = obj.clone();
        assert!(unknown_fields_crd(&obj, &crd_schema()).is_empty());
        prune(&mut obj, &crd_schema());
        assert_eq!(obj, before);
    }

    #[test]
    fn pruning_with_preserved_root() {
        let schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}});
        let obj = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "a", "zz": 1}, "x": {"y": 1}, "spec": {"a": "b", "c": 1}});
        assert_eq!(
            unknown_fields_crd(&obj, &schema),
            vec!["metadata.zz", "spec.c"]
        );
        // No schema at all: everything but apiVersion/kind/metadata goes.
        let obj =
            json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "a"}, "spec": {"a": 1}});
        assert_eq!(
            unknown_fields_crd(&obj, &json!({"type": "object"})),
            vec!["spec"]
        );
        let mut arr = json!({"apiVersion": "v", "kind": "K", "list": [{"a": 1}, 2]});
        let schema = json!({"type": "object", "properties": {"list": {"type": "array"}}});
        assert_eq!(prune_tracking(&mut arr, &schema), vec!["list[0].a"]);
        assert_eq!(arr["list"], json!([{}, 2]));
    }

    fn widget_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                        "size": {"type": "string"},
                        "color": {"type": "string", "enum": ["red", "blue"]},
                        "level": {"type": "integer", "enum": [1, 2]},
                        "name": {"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"},
                        "ratio": {"type": "number", "maximum": 1, "exclusiveMaximum": true},
                        "big": {"type": "number", "minimum": 1000000},
                        "step": {"type": "integer", "multipleOf": 5},
                        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
                        "uniq": {"type": "array", "uniqueItems": true},
                        "port": {"x-kubernetes-int-or-string": true},
                        "when": {"type": "string", "format": "date-time"},
                        "day": {"type": "string", "format": "date"},
                        "opt": {"type": "string", "nullable": true},
                        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
                        "map": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "strict": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false},
                        "props": {"type": "object", "minProperties": 1, "maxProperties": 2},
                        "ao": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "oo": {"oneOf": [{"minimum": 1}, {"minimum": 2}]},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
                        "free": {"x-kubernetes-preserve-unknown-fields": true}
                    }
                }
            }
        })
    }

    fn check(spec: Value) -> Vec<String> {
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec});
        strings(&validate_against_schema(&obj, &widget_schema()))
    }

    fn check_one(field: &str, value: Value) -> Vec<String> {
        let mut spec = json!({"size": "s"});
        spec[field] = value;
        check(spec)
    }

    #[test]
    fn schema_validation_valid_objects() {
        assert!(check(json!({"size": "s"})).is_empty());
        let all = json!({
            "size": "s", "replicas": 3, "color": "red", "level": 2, "name": "abc", "ratio": 0.5,
            "big": 2e6, "step": 10, "tags": ["a"], "uniq": [1, 2], "port": "http", "when": "2024-01-02T03:04:05Z",
            "day": "2024-02-29", "opt": null, "set": ["a", "b"], "ports": [{"name": "a"}, {"name": "b"}],
            "map": {"a": 1}, "strict": {"a": "x"}, "props": {"a": 1}, "ao": 1, "oo": 1,
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}, "free": {"x": [1]},
            "unknown": "fields are pruned, not invalid"
        });
        assert_eq!(check(all), Vec::<String>::new());
        // Whole floats are integers; ints are numbers.
        assert!(check_one("replicas", json!(3.0)).is_empty());
        assert!(check_one("ratio", json!(0)).is_empty());
        assert!(check_one("port", json!(80)).is_empty());
        for ok in [
            "2024-01-02T03:04:05.123+01:00",
            "2024-01-02t03:04:05z",
            "2024-01-02T03:04",
            "2024-01-02T03:04:05-0700",
        ] {
            assert!(check_one("when", json!(ok)).is_empty(), "{ok}");
        }
    }

    #[test]
    fn schema_validation_messages() {
        assert_eq!(
            check_one("replicas", json!("string")),
            vec![
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
            ]
        );
        assert_eq!(
            check_one("replicas", json!(2.5)),
            vec![
                "spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\""
            ]
        );
        assert_eq!(check(json!({})), vec!["spec.size: Required value"]);
        assert_eq!(
            check_one("color", json!("pink")),
            vec!["spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\""]
        );
        assert_eq!(
            check_one("level", json!(3)),
            vec!["spec.level: Unsupported value: 3: supported values: \"1\", \"2\""]
        );
        assert_eq!(
            check_one("replicas", json!(-1)),
            vec![
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
            ]
        );
        assert_eq!(
            check_one("replicas", json!(11)),
            vec![
                "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"
            ]
        );
        assert_eq!(
            check_one("name", json!("ab")),
            vec![
                "spec.name: Invalid value: \"ab\": spec.name in body should be at least 3 chars long"
            ]
        );
        assert_eq!(
            check_one("name", json!("abcdef")),
            vec!["spec.name: Too long: may not be more than 5 bytes"]
        );
        assert_eq!(
            check_one("name", json!("AB1")),
            vec!["spec.name: Invalid value: \"AB1\": spec.name in body should match '^[a-z]+$'"]
        );
        assert_eq!(
            check_one("ratio", json!(1)),
            vec!["spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1"]
        );
        assert_eq!(
            check_one("ratio", json!(1.5)),
            vec!["spec.ratio: Invalid value: 1.5: spec.ratio in body should be less than 1"]
        );
        assert_eq!(
            check_one("big", json!(0.5)),
            vec![
                "spec.big: Invalid value: 0.5: spec.big in body should be greater than or equal to 1e+06"
            ]
        );
        assert_eq!(
            check_one("step", json!(7)),
            vec!["spec.step: Invalid value: 7: spec.step in body should be a multiple of 5"]
        );
        assert_eq!(
            check_one("tags", json!([])),
            vec!["spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"]
        );
        assert_eq!(
            check_one("tags", json!(["a", "b", "c"])),
            vec!["spec.tags: Too many: 3: must have at most 2 items"]
        );
        assert_eq!(
            check_one("tags", json!([1])),
            vec![
                "spec.tags[0]: Invalid value: \"integer\": spec.tags[0] in body must be of type string: \"integer\""
            ]
        );
        assert_eq!(
            check_one("uniq", json!([1, "a", 1.0])),
            vec!["spec.uniq: Invalid value: \"\": spec.uniq in body shouldn't contain duplicates"]
        );
        assert_eq!(
            check_one("port", json!(true)),
            vec![
                "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""
            ]
        );
        assert_eq!(
            check_one("when", json!("nope")),
            vec![
                "spec.when: Invalid value: \"nope\": spec.when in body must be of type date-time: \"nope\""
            ]
        );
        assert_eq!(check_one("when", json!("2024-02-30T00:00:00Z")).len(), 1);
        assert_eq!(check_one("when", json!("2024-01-02T25:00:00Z")).len(), 1);
        assert_eq!(check_one("day", json!("2023-02-29")).len(), 1);
        assert_eq!(
            check(json!({"size": null})),
            vec![
                "spec.size: Invalid value: \"null\": spec.size in body must be of type string: \"null\""
            ]
        );
        assert_eq!(
            check_one("map", json!({"a": "x"})),
            vec![
                "spec.map.a: Invalid value: \"string\": spec.map.a in body must be of type integer: \"string\""
            ]
        );
        assert_eq!(
            check_one("strict", json!({"b": 1})),
            vec![
                "spec.strict: Invalid value: \"b\": spec.strict.b in body is a forbidden property"
            ]
        );
        assert_eq!(
            check_one("props", json!({})),
            vec![
                "spec.props: Invalid value: 0: spec.props in body should have at least 1 properties"
            ]
        );
        assert_eq!(
            check_one("props", json!({"a": 1, "b": 2, "c": 3})),
            vec!["spec.props: Too many: 3: must have at most 2 items"]
        );
        assert_eq!(
            check_one("ao", json!(true)),
            vec![
                "<nil>: Invalid value: \"\": \"spec.ao\" must validate at least one schema (anyOf)",
                "spec.ao: Invalid value: \"boolean\": spec.ao in body must be of type integer: \"boolean\""
            ]
        );
        assert_eq!(
            check_one("oo", json!(5)),
            vec![
                "<nil>: Invalid value: \"\": \"spec.oo\" must validate one and only one schema (oneOf). Found 2 valid alternatives"
            ]
        );
        let obj = json!({"apiVersion": "v", "kind": "K", "spec": "x"});
        assert_eq!(
            strings(&validate_against_schema(&obj, &widget_schema())),
            vec![
                "spec: Invalid value: \"string\": spec in body must be of type object: \"string\""
            ]
        );
        let reasons: Vec<Value> = validate_against_schema(&obj, &widget_schema())
            .iter()
            .map(|e| e.to_cause()["reason"].clone())
            .collect();
        assert_eq!(reasons, vec![json!("FieldValueTypeInvalid")]);
    }

    #[test]
    fn schema_validation_order_and_extras() {
        // required first, then the properties in document order.
        assert_eq!(
            check(json!({"replicas": -1, "color": "pink"})),
            vec![
                "spec.size: Required value",
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
                "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\""
            ]
        );
        assert_eq!(
            check_one("set", json!(["a", "b", "a", "a"])),
            vec!["spec.set[2]: Duplicate value: \"a\""]
        );
        assert_eq!(
            check_one(
                "ports",
                json!([{"name": "a", "port": 1}, {"name": "a", "port": 2}])
            ),
            vec!["spec.ports[1]: Duplicate value: {\"name\":\"a\"}"]
        );
        assert_eq!(
            check_one("ports", json!([1])),
            vec![
                "spec.ports[0]: Invalid value: \"integer\": spec.ports[0] in body must be of type object: \"integer\"",
                "spec.ports[0]: Invalid value: 1: must be an object for an array of list-type map"
            ]
        );
        assert_eq!(
            check_one(
                "template",
                json!({"metadata": {"name": "a/b", "namespace": "Bad"}})
            ),
            vec![
                "spec.template.apiVersion: Required value".to_string(),
                "spec.template.kind: Required value".to_string(),
                "spec.template.metadata.name: Invalid value: \"a/b\": may not contain '/'"
                    .to_string(),
                format!("spec.template.metadata.namespace: Invalid value: \"Bad\": {LABEL_MSG}"),
            ]
        );
        assert_eq!(
            check_one(
                "template",
                json!({"apiVersion": "a/b/c", "kind": "Foo_Bar"})
            ),
            vec![
                "spec.template.apiVersion: Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c",
                "spec.template.kind: Invalid value: \"Foo_Bar\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert!(check_one("template", json!({"apiVersion": "v1", "kind": "ConfigMap"})).is_empty());
        // Root metadata is the caller's (validate_object_meta), not checked here.
        let obj = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "Not Valid"}, "spec": {"size": "s"}});
        assert!(validate_against_schema(&obj, &widget_schema()).is_empty());
    }

    #[test]
    fn date_formats() {
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2023-02-29"));
        assert!(!is_date("2024-13-01"));
        assert!(!is_date("2024-1-01"));
        assert!(is_date_time("2024-01-02T03:04:05Z"));
        assert!(is_date_time("2024-01-02 03:04:05.5+00:00"));
        assert!(!is_date_time("2024-01-02T03:04:05.Z"));
        assert!(!is_date_time("2024-01-02T03:04:05+24:00"));
        assert!(!is_date_time("2024-01-02"));
        assert!(!is_date_time("2024-01-02T03:04:05Zjunk"));
    }
}
