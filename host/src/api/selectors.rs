//! Label and field selectors, exactly as apimachinery parses and matches them.
//!
//! * [`LabelSelector`]: `labels.Parse` (`a=b`, `a==b`, `a!=b`, `a in (x,y)`,
//!   `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, comma-joined), the structured
//!   `metav1.LabelSelector` (`matchLabels`/`matchExpressions`,
//!   `LabelSelectorAsSelector`), and `labels.SelectorFromSet`; with Kubernetes' error
//!   messages (`unable to parse requirement: ...`).
//! * [`FieldSelector`]: `fields.ParseSelector` (`=`, `==`, `!=`, backslash escapes as in
//!   `fields.EscapeValue`), plus the per-kind field label conversions and selectable field
//!   sets of the API server ([`convert_field_label`], [`supported_field`], [`field_set`]):
//!   an unsupported field is refused with the message Kubernetes gives
//!   (`field label not supported: spec.foo`, or for kinds without their own conversion
//!   `"spec.foo" is not a known field selector: only "metadata.name", "metadata.namespace"`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::api::validation::{go_json, go_quote, is_qualified_name, is_valid_label_value};

// ---------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------

/// A label selector that could not be parsed or built; the message is Kubernetes'.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The operator of a label requirement (`selection.Operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `in`
    In,
    /// `notin`
    NotIn,
    /// `=`
    Equals,
    /// `==`
    DoubleEquals,
    /// `!=`
    NotEquals,
    /// a bare key
    Exists,
    /// `!key`
    DoesNotExist,
    /// `>`
    GreaterThan,
    /// `<`
    LessThan,
}

impl Operator {
    /// The `selection.Operator` string (`in`, `notin`, `=`, `==`, `!=`, `exists`, `!`,
    /// `gt`, `lt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// The labels a selector is matched against.
pub trait Labels {
    /// The value of label `key`, if the object has it.
    fn lookup(&self, key: &str) -> Option<&str>;
}

/// A JSON object of labels (`metadata.labels`); values that are not strings count as
/// absent.
impl Labels for Map<String, Value> {
    fn lookup(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

impl Labels for BTreeMap<String, String> {
    fn lookup(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for HashMap<String, String> {
    fn lookup(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<L: Labels + ?Sized> Labels for &L {
    fn lookup(&self, key: &str) -> Option<&str> {
        (**self).lookup(key)
    }
}

/// One requirement of a label selector (`labels.Requirement`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// How `field.Error` renders (for the errors of `NewRequirement`, whose paths are
/// relative: `key`, `values`, `values[0][app]`, or `<nil>`).
fn invalid(field: &str, value: &str, detail: &str) -> String {
    format!("{field}: Invalid value: {}: {detail}", go_quote(value))
}

fn invalid_list(field: &str, values: &[String], detail: &str) -> String {
    let list = Value::Array(values.iter().map(|v| Value::from(v.as_str())).collect());
    format!("{field}: Invalid value: {}: {detail}", go_json(&list))
}

/// `utilerrors.NewAggregate(...).Error()`: one message, or `[a, b]`.
fn aggregate(mut msgs: Vec<String>) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for m in msgs.drain(..) {
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

fn validate_label_key(key: &str, path: &str) -> Option<String> {
    let errs = is_qualified_name(key);
    (!errs.is_empty()).then(|| invalid(path, key, &errs.join("; ")))
}

fn parse_int(s: &str) -> Option<i64> {
    // strconv.ParseInt(s, 10, 64): optional sign, decimal digits.
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Requirement {
    /// `labels.NewRequirement`: checks the key, the number of values for the operator,
    /// integer values for `gt`/`lt`, and the values' syntax.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, ParseError> {
        let key = key.into();
        let mut errs = Vec::new();
        errs.extend(validate_label_key(&key, "key"));
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(invalid_list(
                        "values",
                        &values,
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(invalid_list(
                        "values",
                        &values,
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(invalid_list(
                        "values",
                        &values,
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid_list(
                        "values",
                        &values,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if parse_int(v).is_none() {
                        errs.push(invalid(
                            &format!("values[{i}]"),
                            v,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let problems = is_valid_label_value(v);
            if !problems.is_empty() {
                errs.push(invalid(
                    &format!("values[{i}][{key}]"),
                    v,
                    &problems.join("; "),
                ));
            }
        }
        match aggregate(errs) {
            Some(msg) => Err(ParseError(msg)),
            None => Ok(Requirement {
                key,
                operator,
                values,
            }),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, as given.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        let found = labels.lookup(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                found.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => found.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => found.is_some(),
            Operator::DoesNotExist => found.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = found.and_then(parse_int) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Some(want) = parse_int(want) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// `Requirement.String()`: `!a`, `a`, `a=b`, `a in (x,y)` (values sorted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        if let [only] = self.values.as_slice() {
            f.write_str(only)?;
        } else {
            let mut sorted = self.values.clone();
            sorted.sort();
            f.write_str(&sorted.join(","))?;
        }
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: the AND of its requirements (`labels.Selector`). The empty selector
/// matches everything; [`LabelSelector::nothing`] matches nothing.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// The lexer of `labels.Parse`, byte for byte (a NUL byte ends a token like the end of
/// the input does).
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let mut buf = Vec::new();
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
            buf.push(ch);
        }
        let tok = keyword(&buf).unwrap_or(Token::Identifier);
        (tok, String::from_utf8_lossy(&buf).into_owned())
    }

    fn scan_special(&mut self) -> (Token, String) {
        let mut buf = Vec::new();
        let mut last: Option<(Token, usize)> = None;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special(ch) {
                buf.push(ch);
                if let Some(tok) = keyword(&buf) {
                    last = Some((tok, buf.len()));
                } else if last.is_some() {
                    self.unread();
                    break;
                }
            } else {
                self.unread();
                break;
            }
        }
        match last {
            Some((tok, len)) => (tok, String::from_utf8_lossy(&buf[..len]).into_owned()),
            // Unreachable: every special symbol alone is a token.
            None => (
                Token::Identifier,
                String::from_utf8_lossy(&buf).into_owned(),
            ),
        }
    }

    fn lex(&mut self) -> (Token, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Token::EndOfString, String::new());
        }
        self.unread();
        if is_special(ch) {
            self.scan_special()
        } else {
            self.scan_id_or_keyword()
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    pos: usize,
}

impl Parser {
    fn new(s: &str) -> Self {
        let mut lexer = Lexer {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Token::EndOfString;
            items.push(item);
            if end {
                break;
            }
        }
        Parser { items, pos: 0 }
    }

    fn at(&self, i: usize, ctx: Context) -> (Token, String) {
        let (tok, lit) = self
            .items
            .get(i)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        let tok = match (ctx, tok) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            (_, t) => t,
        };
        (tok, lit)
    }

    fn lookahead(&self, ctx: Context) -> (Token, String) {
        self.at(self.pos, ctx)
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        let item = self.at(self.pos, ctx);
        if self.pos < self.items.len() {
            self.pos += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, ParseError> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| ParseError(format!("unable to parse requirement: {}", e.0)))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(reqs),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(ParseError(format!(
                                    "found '{l2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(ParseError(format!(
                                "found '{l}', expected: ',' or 'end of string'"
                            )));
                        }
                    }
                }
                Token::EndOfString => return Ok(reqs),
                _ => {
                    return Err(ParseError(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, ParseError> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::new(key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let mut values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        // sets.String.List(): sorted, without duplicates.
        values.sort();
        values.dedup();
        Requirement::new(key, op, values)
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), ParseError> {
        let mut operator = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(ParseError(format!("found '{lit}', expected: identifier")));
        }
        if let Some(e) = validate_label_key(&lit, "<nil>") {
            return Err(ParseError(e));
        }
        let (t, _) = self.lookahead(Context::Values);
        if (t == Token::EndOfString || t == Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((lit, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, ParseError> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(ParseError(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                )));
            }
        })
    }

    fn parse_values(&mut self) -> Result<Vec<String>, ParseError> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(ParseError(format!("found '{lit}' expected: '('")));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Token::ClosedPar {
                    return Err(ParseError(format!("found '{lit}', expected: ')'")));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(ParseError(format!(
                "found '{lit}', expected: ',', ')' or identifier"
            ))),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, ParseError> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    values.push(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => {
                            return Err(ParseError(format!(
                                "found '{lit2}', expected: ',' or ')'"
                            )));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if tok2 == Token::Comma {
                        self.consume(Context::Values);
                        values.push(String::new());
                    }
                }
                _ => {
                    return Err(ParseError(format!(
                        "found '{lit}', expected: ',', or identifier"
                    )));
                }
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, ParseError> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Token::EndOfString || tok == Token::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            Ok(vec![lit])
        } else {
            Err(ParseError(format!("found '{lit}', expected: identifier")))
        }
    }
}

fn sort_by_key(reqs: &mut [Requirement]) {
    reqs.sort_by(|a, b| a.key.cmp(&b.key));
}

impl LabelSelector {
    /// `labels.Parse` of the query-string form (`app=web,tier in (a,b),!canary`).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut requirements = Parser::new(s).parse()?;
        sort_by_key(&mut requirements);
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// The selector that matches everything (`labels.Everything()`).
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// The selector that matches nothing (`labels.Nothing()`).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// A selector from requirements (sorted by key, as `Selector.Add` does).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        sort_by_key(&mut requirements);
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// `labels.SelectorFromSet`: `key=value` for each label (no validation).
    pub fn from_set<'a, I: IntoIterator<Item = (&'a str, &'a str)>>(labels: I) -> Self {
        let requirements = labels
            .into_iter()
            .map(|(k, v)| Requirement {
                key: k.to_string(),
                operator: Operator::Equals,
                values: vec![v.to_string()],
            })
            .collect();
        Self::from_requirements(requirements)
    }

    /// `metav1.LabelSelectorAsSelector` of a structured selector
    /// (`{matchLabels: {..}, matchExpressions: [{key, operator, values}]}`): `null`
    /// matches nothing, `{}` everything.
    pub fn from_label_selector_json(v: &Value) -> Result<Self, ParseError> {
        let map = match v {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(map) => map,
            other => {
                return Err(ParseError(format!(
                    "a label selector must be an object, not {}",
                    go_json(other)
                )));
            }
        };
        let mut requirements = Vec::new();
        match map.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let Some(v) = v.as_str() else {
                        return Err(ParseError(format!(
                            "matchLabels.{k}: label values must be strings"
                        )));
                    };
                    requirements.push(Requirement::new(
                        k.as_str(),
                        Operator::Equals,
                        vec![v.to_string()],
                    )?);
                }
            }
            Some(_) => return Err(ParseError("matchLabels must be an object".to_string())),
        }
        match map.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for expr in exprs {
                    let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
                    let op_name = expr.get("operator").and_then(Value::as_str).unwrap_or("");
                    let op = match op_name {
                        "In" => Operator::In,
                        "NotIn" => Operator::NotIn,
                        "Exists" => Operator::Exists,
                        "DoesNotExist" => Operator::DoesNotExist,
                        other => {
                            return Err(ParseError(format!(
                                "{} is not a valid label selector operator",
                                go_quote(other)
                            )));
                        }
                    };
                    let values = match expr.get("values") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(vs)) => vs
                            .iter()
                            .map(|v| {
                                v.as_str().map(str::to_string).ok_or_else(|| {
                                    ParseError(format!(
                                        "matchExpressions values must be strings, not {}",
                                        go_json(v)
                                    ))
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                        Some(_) => {
                            return Err(ParseError(
                                "matchExpressions values must be an array".to_string(),
                            ));
                        }
                    };
                    requirements.push(Requirement::new(key, op, values)?);
                }
            }
            Some(_) => return Err(ParseError("matchExpressions must be an array".to_string())),
        }
        Ok(Self::from_requirements(requirements))
    }

    /// Whether the selector restricts nothing (`Selector.Empty()`; false for
    /// [`LabelSelector::nothing`]).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this is [`LabelSelector::nothing`].
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// [`LabelSelector::matches`] on the `metadata.labels` of an object (none: no labels).
    pub fn matches_object(&self, obj: &Value) -> bool {
        let empty = Map::new();
        let labels = obj
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.matches(labels)
    }

    /// `RequiresExactMatch`: the single value label `key` must have, if the selector says
    /// so (`=`, `==`, or `in` with one value).
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [only]) => Some(only),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    /// `Selector.String()`: the requirements joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// ---------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------

/// A field selector that could not be parsed, or that names a field the kind does not
/// support; the message is Kubernetes'.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term without an operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Syntax {
        /// The whole selector.
        selector: String,
        /// The term that has no `=`, `==` or `!=`.
        term: String,
    },
    /// A backslash not followed by `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// An unescaped `,` or `=` in a value (shown as its code point, as Kubernetes does).
    #[error("invalid field selector: unescaped character in value: {}", *.0 as u32)]
    UnescapedRune(char),
    /// A field the kind does not support (`field label not supported: spec.foo`).
    #[error("{message}")]
    Unsupported {
        /// The field label.
        field: String,
        /// Kubernetes' message for it.
        message: String,
    },
}

/// The operator of a field selector term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `=`
    Equals,
    /// `==`
    DoubleEquals,
    /// `!=`
    NotEquals,
}

/// One term of a field selector (`metadata.name=x`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field label (`spec.nodeName`).
    pub field: String,
    /// The operator.
    pub operator: FieldOperator,
    /// The value, unescaped.
    pub value: String,
}

impl FieldRequirement {
    /// Whether the value the object has for the field (`""` when it has none) satisfies
    /// the term.
    pub fn matches_value(&self, actual: &str) -> bool {
        match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    /// `hasTerm`/`notHasTerm` `String()`: `field=escaped` or `field!=escaped`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A field selector: the AND of its terms (`fields.Selector`); empty matches everything.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

/// `fields.EscapeValue`: escape `\`, `,` and `=` with a backslash.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `fields.UnescapeValue`.
pub fn unescape_value(s: &str) -> Result<String, FieldSelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => return Err(FieldSelectorError::InvalidEscape(format!("\\{other}"))),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(FieldSelectorError::UnescapedRune(c)),
            other => out.push(other),
        }
    }
    if in_slash {
        return Err(FieldSelectorError::InvalidEscape("\\".to_string()));
    }
    Ok(out)
}

/// `splitTerms`: split on commas not escaped by a backslash (backslashes kept).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// `splitTerm`: the first `!=`, `==` or `=` splits the term.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::DoubleEquals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, rhs));
            }
        }
    }
    None
}

impl FieldSelector {
    /// `fields.ParseSelector` (terms sorted, empty terms skipped, no whitespace trimming).
    pub fn parse(selector: &str) -> Result<Self, FieldSelectorError> {
        let mut parts = split_terms(selector);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, operator, rhs)) = split_term(part) else {
                return Err(FieldSelectorError::Syntax {
                    selector: selector.to_string(),
                    term: part.to_string(),
                });
            };
            terms.push(FieldRequirement {
                field: lhs.to_string(),
                operator,
                value: unescape_value(rhs)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// The selector that matches everything.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Whether the selector restricts nothing.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, in the (sorted) order Kubernetes keeps them.
    pub fn fields(&self) -> impl Iterator<Item = &FieldRequirement> {
        self.terms.iter()
    }

    /// The terms as `(field, value)` pairs (see [`FieldSelector::fields`] for operators).
    pub fn requirements(&self) -> impl Iterator<Item = (&str, &str)> {
        self.terms
            .iter()
            .map(|t| (t.field.as_str(), t.value.as_str()))
    }

    /// `RequiresExactMatch`: the value field `field` must have, if an `=`/`==` term says.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.operator != FieldOperator::NotEquals)
            .map(|t| t.value.as_str())
    }

    /// Whether the raw field set (field label → value; absent = `""`) satisfies every
    /// term, with no field label conversion.
    pub fn matches_set(&self, fields: &BTreeMap<String, String>) -> bool {
        self.terms
            .iter()
            .all(|t| t.matches_value(fields.get(&t.field).map(String::as_str).unwrap_or("")))
    }

    /// The field label conversion of the API server for every term (the first
    /// unsupported field is the error); returns the canonical labels.
    pub fn validate(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Vec<String>, FieldSelectorError> {
        self.terms
            .iter()
            .map(|t| convert_field_label(api_version, kind, &t.field))
            .collect()
    }

    /// Whether built-in object `obj` of `kind` matches, its API version taken from
    /// `obj.apiVersion` (or the kind's usual one). An unsupported field is an error even
    /// when nothing would match.
    pub fn matches(&self, obj: &Value, kind: &str) -> Result<bool, FieldSelectorError> {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| default_api_version(kind).to_string());
        self.matches_gvk(obj, &api_version, kind)
    }

    /// [`FieldSelector::matches`] with the API version given.
    pub fn matches_gvk(
        &self,
        obj: &Value,
        api_version: &str,
        kind: &str,
    ) -> Result<bool, FieldSelectorError> {
        let labels = self.validate(api_version, kind)?;
        let set = field_set(obj, api_version, kind);
        Ok(self
            .terms
            .iter()
            .zip(labels)
            .all(|(t, label)| t.matches_value(set.get(&label).map(String::as_str).unwrap_or(""))))
    }

    /// Whether custom resource `obj` matches: `metadata.name`, `metadata.namespace` (when
    /// `namespaced`), and the CRD version's `selectableFields` (given as JSON paths,
    /// `.spec.color` or `spec.color`) are supported; anything else is
    /// `field label not supported: X`.
    pub fn matches_custom(
        &self,
        obj: &Value,
        namespaced: bool,
        selectable_fields: &[&str],
    ) -> Result<bool, FieldSelectorError> {
        let selectable: Vec<&str> = selectable_fields
            .iter()
            .map(|p| p.strip_prefix('.').unwrap_or(p))
            .collect();
        for t in &self.terms {
            let ok = t.field == "metadata.name"
                || (namespaced && t.field == "metadata.namespace")
                || selectable.contains(&t.field.as_str());
            if !ok {
                return Err(not_supported(&t.field));
            }
        }
        Ok(self.terms.iter().all(|t| {
            let actual = lookup_path(obj, &t.field)
                .map(scalar_text)
                .unwrap_or_default();
            t.matches_value(&actual)
        }))
    }
}

impl fmt::Display for FieldSelector {
    /// `Selector.String()`: the terms joined by `,` (`==` shown as `=`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = FieldSelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// ---------------------------------------------------------------------------------------
// Field label conversion and selectable fields, per kind
// ---------------------------------------------------------------------------------------

fn not_supported(label: &str) -> FieldSelectorError {
    FieldSelectorError::Unsupported {
        field: label.to_string(),
        message: format!("field label not supported: {label}"),
    }
}

fn unsupported(label: &str, message: String) -> FieldSelectorError {
    FieldSelectorError::Unsupported {
        field: label.to_string(),
        message,
    }
}

/// The API version a built-in kind is usually served at (`v1` for unknown kinds).
pub fn default_api_version(kind: &str) -> &'static str {
    match kind {
        "Job" | "CronJob" => "batch/v1",
        "CertificateSigningRequest" => "certificates.k8s.io/v1",
        "ClusterTrustBundle" => "certificates.k8s.io/v1beta1",
        "ResourceSlice" => "resource.k8s.io/v1beta1",
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "ControllerRevision" => {
            "apps/v1"
        }
        _ => "v1",
    }
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map(|(g, _)| g).unwrap_or("")
}

const EVENTS_V1_LABELS: &[(&str, &str)] = &[
    ("reason", "reason"),
    ("regarding.kind", "involvedObject.kind"),
    ("regarding.namespace", "involvedObject.namespace"),
    ("regarding.name", "involvedObject.name"),
    ("regarding.uid", "involvedObject.uid"),
    ("regarding.apiVersion", "involvedObject.apiVersion"),
    (
        "regarding.resourceVersion",
        "involvedObject.resourceVersion",
    ),
    ("regarding.fieldPath", "involvedObject.fieldPath"),
    ("reportingController", "reportingComponent"),
    ("source", "source"),
    ("type", "type"),
    ("metadata.namespace", "metadata.namespace"),
    ("metadata.name", "metadata.name"),
];

/// `Scheme.ConvertFieldLabel` for a built-in kind: the canonical field label
/// (`spec.host` becomes `spec.nodeName`, events.k8s.io's `regarding.kind` becomes
/// `involvedObject.kind`), or the error Kubernetes gives for a field the kind does not
/// support. Kinds without a conversion of their own (Deployments, ConfigMaps,
/// ReplicaSets, ...) accept `metadata.name` and `metadata.namespace` only.
pub fn convert_field_label(
    api_version: &str,
    kind: &str,
    label: &str,
) -> Result<String, FieldSelectorError> {
    let group = group_of(api_version);
    let accepted: &[&str] = match (group, kind) {
        ("", "Pod") => {
            if label == "spec.host" {
                return Ok("spec.nodeName".to_string());
            }
            &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ]
        }
        ("", "Node") => &["metadata.name", "spec.unschedulable"],
        ("", "ReplicationController") => {
            &["metadata.name", "metadata.namespace", "status.replicas"]
        }
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        ],
        ("", "Namespace") => &["status.phase", "metadata.name"],
        ("", "Secret") => &["type", "metadata.namespace", "metadata.name"],
        ("", "Service") => &[
            "metadata.namespace",
            "metadata.name",
            "spec.clusterIP",
            "spec.type",
        ],
        ("events.k8s.io", "Event") => {
            return EVENTS_V1_LABELS
                .iter()
                .find(|(from, _)| *from == label)
                .map(|(_, to)| (*to).to_string())
                .ok_or_else(|| not_supported(label));
        }
        ("batch", "Job") => {
            return match label {
                "metadata.name" | "metadata.namespace" | "status.successful" => {
                    Ok(label.to_string())
                }
                _ => Err(unsupported(
                    label,
                    format!(
                        "field label {} not supported for batchv1.Job",
                        go_quote(label)
                    ),
                )),
            };
        }
        ("certificates.k8s.io", "CertificateSigningRequest" | "ClusterTrustBundle") => {
            &["metadata.name", "spec.signerName"]
        }
        ("resource.k8s.io", "ResourceSlice") => {
            return match label {
                "metadata.name" | "spec.nodeName" | "spec.driver" => Ok(label.to_string()),
                _ => {
                    let version = api_version.split_once('/').map(|(_, v)| v).unwrap_or("");
                    Err(unsupported(
                        label,
                        format!(
                            "field label not supported for resource.k8s.io/{version}, Kind=ResourceSlice: {label}"
                        ),
                    ))
                }
            };
        }
        _ => {
            // runtime.DefaultMetaV1FieldSelectorConversion
            return match label {
                "metadata.name" | "metadata.namespace" => Ok(label.to_string()),
                _ => Err(unsupported(
                    label,
                    format!(
                        "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                        go_quote(label)
                    ),
                )),
            };
        }
    };
    if accepted.contains(&label) {
        Ok(label.to_string())
    } else {
        Err(not_supported(label))
    }
}

/// Whether a field selector on `field` is accepted for built-in `kind` at its usual API
/// version (`Event` is core/v1's).
pub fn supported_field(kind: &str, field: &str) -> bool {
    convert_field_label(default_api_version(kind), kind, field).is_ok()
}

fn lookup_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, segment| v.get(segment))
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => go_json(other),
    }
}

fn str_at(obj: &Value, path: &str) -> String {
    lookup_path(obj, path)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn bool_at(obj: &Value, path: &str) -> String {
    lookup_path(obj, path)
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}

fn int_at(obj: &Value, path: &str) -> String {
    lookup_path(obj, path)
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .to_string()
}

/// The selectable fields of a built-in object (its `ToSelectableFields`), keyed by
/// canonical field label: what field selectors are matched against. A label the kind
/// accepts but does not set (Pods' `status.podIPs`) is absent, and so matches `""`.
pub fn field_set(obj: &Value, api_version: &str, kind: &str) -> BTreeMap<String, String> {
    let mut set = BTreeMap::new();
    let group = group_of(api_version);
    let mut put = |k: &str, v: String| {
        set.insert(k.to_string(), v);
    };
    put("metadata.name", str_at(obj, "metadata.name"));
    let cluster_scoped = matches!(
        (group, kind),
        ("", "Node" | "Namespace")
            | ("certificates.k8s.io", _)
            | ("resource.k8s.io", "ResourceSlice")
    );
    if !cluster_scoped {
        put("metadata.namespace", str_at(obj, "metadata.namespace"));
    }
    match (group, kind) {
        ("", "Pod") => {
            for f in [
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "status.phase",
                "status.nominatedNodeName",
            ] {
                put(f, str_at(obj, f));
            }
            put("spec.hostNetwork", bool_at(obj, "spec.hostNetwork"));
            let pod_ip = str_at(obj, "status.podIP");
            let pod_ip = if pod_ip.is_empty() {
                lookup_path(obj, "status.podIPs")
                    .and_then(Value::as_array)
                    .and_then(|ips| ips.first())
                    .and_then(|ip| ip.get("ip"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            } else {
                pod_ip
            };
            put("status.podIP", pod_ip);
        }
        ("", "Node") => put("spec.unschedulable", bool_at(obj, "spec.unschedulable")),
        ("", "ReplicationController") => put("status.replicas", int_at(obj, "status.replicas")),
        ("", "Namespace") => put("status.phase", str_at(obj, "status.phase")),
        ("", "Secret") => put("type", str_at(obj, "type")),
        ("", "Service") => {
            put("spec.clusterIP", str_at(obj, "spec.clusterIP"));
            put("spec.type", str_at(obj, "spec.type"));
        }
        ("", "Event") => {
            for f in [
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "type",
            ] {
                put(f, str_at(obj, f));
            }
            let mut source = str_at(obj, "source.component");
            if source.is_empty() {
                source = str_at(obj, "reportingComponent");
            }
            put("source", source);
        }
        ("events.k8s.io", "Event") => {
            for (label, path) in [
                ("involvedObject.kind", "regarding.kind"),
                ("involvedObject.namespace", "regarding.namespace"),
                ("involvedObject.name", "regarding.name"),
                ("involvedObject.uid", "regarding.uid"),
                ("involvedObject.apiVersion", "regarding.apiVersion"),
                (
                    "involvedObject.resourceVersion",
                    "regarding.resourceVersion",
                ),
                ("involvedObject.fieldPath", "regarding.fieldPath"),
                ("reason", "reason"),
                ("reportingComponent", "reportingController"),
                ("type", "type"),
            ] {
                put(label, str_at(obj, path));
            }
            let mut source = str_at(obj, "deprecatedSource.component");
            if source.is_empty() {
                source = str_at(obj, "reportingController");
            }
            put("source", source);
        }
        ("batch", "Job") => put("status.successful", int_at(obj, "status.succeeded")),
        ("certificates.k8s.io", "CertificateSigningRequest" | "ClusterTrustBundle") => {
            put("spec.signerName", str_at(obj, "spec.signerName"));
        }
        ("resource.k8s.io", "ResourceSlice") => {
            put("spec.nodeName", str_at(obj, "spec.nodeName"));
            put("spec.driver", str_at(obj, "spec.driver"));
        }
        _ => {}
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(parsed) => panic!("{s:?} parsed as {parsed}"),
            Err(e) => e.to_string(),
        }
    }

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn parses_every_operator() {
        let cases = [
            ("a=b", "a", Operator::Equals, vec!["b"]),
            ("a==b", "a", Operator::DoubleEquals, vec!["b"]),
            ("a!=b", "a", Operator::NotEquals, vec!["b"]),
            ("a in (y,x,x)", "a", Operator::In, vec!["x", "y"]),
            ("a notin (x)", "a", Operator::NotIn, vec!["x"]),
            ("a", "a", Operator::Exists, vec![]),
            ("!a", "a", Operator::DoesNotExist, vec![]),
            ("a>1", "a", Operator::GreaterThan, vec!["1"]),
            ("a<1", "a", Operator::LessThan, vec!["1"]),
            ("a=", "a", Operator::Equals, vec![""]),
            ("a!=", "a", Operator::NotEquals, vec![""]),
            ("a in ()", "a", Operator::In, vec![""]),
            (
                "example.com/a-b_c.d=x",
                "example.com/a-b_c.d",
                Operator::Equals,
                vec!["x"],
            ),
            ("in in (in,notin)", "in", Operator::In, vec!["in", "notin"]),
        ];
        for (input, key, op, values) in cases {
            let s = sel(input);
            let [r] = s.requirements() else {
                panic!("{input}: {s:?}");
            };
            assert_eq!(r.key(), key, "{input}");
            assert_eq!(r.operator(), op, "{input}");
            assert_eq!(r.values(), values.as_slice(), "{input}");
        }
    }

    #[test]
    fn parses_lists_whitespace_and_prints() {
        assert!(sel("").is_empty());
        assert!(sel("  \t ").is_empty());
        assert_eq!(sel("").to_string(), "");
        assert_eq!(
            sel("  a = b ,  c in ( x , y ) ").to_string(),
            "a=b,c in (x,y)"
        );
        assert_eq!(sel("z=1,a in (c,b),!m").to_string(), "a in (b,c),!m,z=1");
        assert_eq!(
            sel("x in (foo,,baz),y,z notin ()").to_string(),
            "x in (,baz,foo),y,z notin ()"
        );
        assert_eq!(sel("a in (,b)").requirements()[0].values(), ["", "b"]);
        assert_eq!(sel("a in (b,)").requirements()[0].values(), ["", "b"]);
        assert_eq!(sel("a=,b").to_string(), "a=,b");
        assert_eq!(sel("a==b,c>5,d<6").to_string(), "a==b,c>5,d<6");
        assert_eq!(sel("!a,b!=c").to_string(), "!a,b!=c");
        assert_eq!("k=v".parse::<LabelSelector>(), Ok(sel("k=v")));
        // A selector round-trips through its string form.
        for s in ["a in (x,y),!b,c!=d,e", "a>1,b<2", "x in (,y)"] {
            assert_eq!(sel(&sel(s).to_string()), sel(s));
        }
    }

    #[test]
    fn parse_errors() {
        let binary = "expected: in, notin, =, ==, !=, gt, lt";
        let cases = [
            ("a b", format!("unable to parse requirement: found 'b', {binary}")),
            ("a!b", format!("unable to parse requirement: found '!', {binary}")),
            ("a in b", "unable to parse requirement: found 'b' expected: '('".to_string()),
            ("a notin", "unable to parse requirement: found '' expected: '('".to_string()),
            ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'".to_string()),
            ("a in (b,c", "unable to parse requirement: found '', expected: ',' or ')'".to_string()),
            ("a in (b =)", "unable to parse requirement: found '=', expected: ',' or ')'".to_string()),
            ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".to_string()),
            ("a in (,=)", "unable to parse requirement: found '=', expected: ',', or identifier".to_string()),
            ("a in (b))", "found ')', expected: ',' or 'end of string'".to_string()),
            (",", "found ',', expected: !, identifier, or 'end of string'".to_string()),
            ("=a", "found '=', expected: !, identifier, or 'end of string'".to_string()),
            ("a,", "found '', expected: identifier after ','".to_string()),
            ("a,,b", "found ',', expected: identifier after ','".to_string()),
            ("a=b c", "found 'c', expected: ',' or 'end of string'".to_string()),
            ("a=b=c", "found '=', expected: ',' or 'end of string'".to_string()),
            ("!a=b", "found '=', expected: ',' or 'end of string'".to_string()),
            ("!", "unable to parse requirement: found '', expected: identifier".to_string()),
            ("!!a", "unable to parse requirement: found '!', expected: identifier".to_string()),
            ("a=(b", "unable to parse requirement: found '(', expected: identifier".to_string()),
            (
                "A_B-=x",
                format!("unable to parse requirement: <nil>: Invalid value: \"A_B-\": {NAME_PART_MSG}"),
            ),
            (
                "a=b@c",
                format!("unable to parse requirement: values[0][a]: Invalid value: \"b@c\": {LABEL_VALUE_MSG}"),
            ),
            (
                "a in (-x,-y)",
                format!(
                    "unable to parse requirement: [values[0][a]: Invalid value: \"-x\": {LABEL_VALUE_MSG}, values[1][a]: Invalid value: \"-y\": {LABEL_VALUE_MSG}]"
                ),
            ),
            (
                "a>x",
                "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer".to_string(),
            ),
            (
                // Negative numbers are not label values.
                "a<-1",
                format!("unable to parse requirement: values[0][a]: Invalid value: \"-1\": {LABEL_VALUE_MSG}"),
            ),
            (
                "a>",
                "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer".to_string(),
            ),
            (
                "a/b/c",
                "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string(),
            ),
            (
                "/a",
                "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty".to_string(),
            ),
            (
                "a/",
                format!("unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; {NAME_PART_MSG}"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(err(input), want, "{input:?}");
        }
    }

    #[test]
    fn matching() {
        let l = labels(json!({"a": "1", "b": "x", "n": 5}));
        for (s, want) in [
            ("", true),
            ("a", true),
            ("!a", false),
            ("c", false),
            ("!c", true),
            ("a=1", true),
            ("a==1", true),
            ("a=2", false),
            ("a!=1", false),
            ("c!=1", true),
            ("c=", false),
            ("c notin (x)", true),
            ("a notin (1)", false),
            ("a in (1,2)", true),
            ("c in (1)", false),
            ("a>0", true),
            ("a>1", false),
            ("a<2", true),
            ("b>0", false),
            ("c>0", false),
            ("c<0", false),
            ("n", false),
            ("a=1,b=x", true),
            ("a=1,b=y", false),
        ] {
            assert_eq!(sel(s).matches(&l), want, "{s:?}");
        }
        assert!(LabelSelector::everything().matches(&l));
        assert!(!LabelSelector::nothing().matches(&l));
        assert!(!LabelSelector::nothing().is_empty());
        assert!(LabelSelector::nothing().matches_nothing());
        let mut btree = BTreeMap::new();
        btree.insert("a".to_string(), "1".to_string());
        assert!(sel("a=1").matches(&btree));
        let hash: HashMap<String, String> = btree.clone().into_iter().collect();
        assert!(sel("a in (1)").matches(&hash));
        let obj = json!({"metadata": {"labels": {"app": "web"}}});
        assert!(sel("app=web").matches_object(&obj));
        assert!(sel("!app2").matches_object(&json!({})));
        assert!(!sel("app").matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn requirements_directly() {
        assert_eq!(
            Requirement::new("a", Operator::In, vec![])
                .unwrap_err()
                .to_string(),
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            Requirement::new("a", Operator::Exists, vec!["x".into()])
                .unwrap_err()
                .to_string(),
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist"
        );
        assert_eq!(
            Requirement::new("a", Operator::Equals, vec!["x".into(), "y".into()])
                .unwrap_err()
                .to_string(),
            "values: Invalid value: [\"x\",\"y\"]: exact-match compatibility requires one single value"
        );
        assert_eq!(
            Requirement::new("a", Operator::GreaterThan, vec![])
                .unwrap_err()
                .to_string(),
            "values: Invalid value: []: for 'Gt', 'Lt' operators, exactly one value is required"
        );
        assert_eq!(
            Requirement::new("a b", Operator::Exists, vec![])
                .unwrap_err()
                .to_string(),
            format!("key: Invalid value: \"a b\": {NAME_PART_MSG}")
        );
        let r = Requirement::new("k", Operator::NotIn, vec!["b".into(), "a".into()]).unwrap();
        assert_eq!(r.to_string(), "k notin (a,b)");
        assert_eq!(r.values(), ["b", "a"]);
        assert_eq!(Operator::GreaterThan.as_str(), "gt");
        assert_eq!(Operator::DoesNotExist.as_str(), "!");
    }

    #[test]
    fn structured_selectors() {
        let s = LabelSelector::from_label_selector_json(&json!({
            "matchLabels": {"tier": "x", "app": "web"},
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "team", "operator": "Exists", "values": []}
            ]
        }))
        .unwrap();
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env notin (prod),team,tier=x,zone in (a,b)"
        );
        assert!(s.matches(&labels(
            json!({"app": "web", "tier": "x", "zone": "a", "team": "t"})
        )));
        assert!(!s.matches(&labels(
            json!({"app": "web", "tier": "x", "zone": "a", "team": "t", "canary": ""})
        )));
        assert!(!s.matches(&labels(
            json!({"app": "web", "tier": "x", "zone": "c", "team": "t"})
        )));
        assert!(
            LabelSelector::from_label_selector_json(&json!({}))
                .unwrap()
                .is_empty()
        );
        assert!(
            LabelSelector::from_label_selector_json(
                &json!({"matchLabels": {}, "matchExpressions": []})
            )
            .unwrap()
            .is_empty()
        );
        let nothing = LabelSelector::from_label_selector_json(&Value::Null).unwrap();
        assert!(nothing.matches_nothing());
        assert!(!nothing.matches(&Map::new()));
        assert_eq!(
            LabelSelector::from_label_selector_json(
                &json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]})
            )
            .unwrap_err()
            .to_string(),
            "\"Foo\" is not a valid label selector operator"
        );
        assert_eq!(
            LabelSelector::from_label_selector_json(&json!({"matchExpressions": [{"key": "a"}]}))
                .unwrap_err()
                .to_string(),
            "\"\" is not a valid label selector operator"
        );
        assert_eq!(
            LabelSelector::from_label_selector_json(
                &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
            )
            .unwrap_err()
            .to_string(),
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            LabelSelector::from_label_selector_json(&json!({"matchLabels": {"a b": "c"}}))
                .unwrap_err()
                .to_string(),
            format!("key: Invalid value: \"a b\": {NAME_PART_MSG}")
        );
        assert!(LabelSelector::from_label_selector_json(&json!("app=web")).is_err());
        assert!(
            LabelSelector::from_label_selector_json(&json!({"matchLabels": {"a": 1}})).is_err()
        );
        let s = LabelSelector::from_set([("b", "2"), ("a", "1")]);
        assert_eq!(s.to_string(), "a=1,b=2");
        assert_eq!(s.requires_exact_match("b"), Some("2"));
        assert_eq!(sel("a in (x)").requires_exact_match("a"), Some("x"));
        assert_eq!(sel("a in (x,y)").requires_exact_match("a"), None);
        assert_eq!(sel("a!=x").requires_exact_match("a"), None);
        assert_eq!(sel("b=x").requires_exact_match("a"), None);
    }

    fn fsel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn ferr(s: &str) -> String {
        match FieldSelector::parse(s) {
            Ok(parsed) => panic!("{s:?} parsed as {parsed}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn field_selector_parsing() {
        let s = fsel("spec.nodeName!=y,metadata.name=x");
        let terms: Vec<(&str, FieldOperator, &str)> = s
            .fields()
            .map(|t| (t.field.as_str(), t.operator, t.value.as_str()))
            .collect();
        assert_eq!(
            terms,
            vec![
                ("metadata.name", FieldOperator::Equals, "x"),
                ("spec.nodeName", FieldOperator::NotEquals, "y")
            ]
        );
        assert_eq!(s.to_string(), "metadata.name=x,spec.nodeName!=y");
        assert_eq!(
            s.requirements().collect::<Vec<_>>(),
            vec![("metadata.name", "x"), ("spec.nodeName", "y")]
        );
        assert_eq!(fsel("a==b").to_string(), "a=b");
        assert_eq!(
            fsel("a==b").fields().next().map(|t| t.operator),
            Some(FieldOperator::DoubleEquals)
        );
        assert!(fsel("").is_empty());
        assert!(fsel(",,").is_empty());
        assert_eq!(fsel(",a=1,").to_string(), "a=1");
        assert_eq!(
            fsel("a=").fields().next().map(|t| t.value.as_str()),
            Some("")
        );
        assert_eq!(
            fsel("=x").fields().next().map(|t| t.field.as_str()),
            Some("")
        );
        assert_eq!(
            fsel("a=b\\,c").fields().next().map(|t| t.value.as_str()),
            Some("b,c")
        );
        assert_eq!(fsel("a=b\\,c").to_string(), "a=b\\,c");
        assert_eq!(
            fsel("a=x\\=y\\\\z")
                .fields()
                .next()
                .map(|t| t.value.as_str()),
            Some("x=y\\z")
        );
        assert_eq!(
            fsel("a!b=c").fields().next().map(|t| t.field.as_str()),
            Some("a!b")
        );
        assert_eq!(
            fsel("a=!b").fields().next().map(|t| t.value.as_str()),
            Some("!b")
        );
        assert_eq!(
            fsel(" a = b ")
                .fields()
                .next()
                .map(|t| (t.field.as_str(), t.value.as_str())),
            Some((" a ", " b "))
        );
        assert_eq!(fsel("b=2,a=1,a=0").to_string(), "a=0,a=1,b=2");
        assert_eq!(
            ferr("abc"),
            "invalid selector: 'abc'; can't understand 'abc'"
        );
        assert_eq!(
            ferr("a=b,c"),
            "invalid selector: 'a=b,c'; can't understand 'c'"
        );
        assert_eq!(
            ferr("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            ferr("a=b\\x"),
            "invalid field selector: invalid escape sequence: \\x"
        );
        assert_eq!(
            ferr("a=b\\"),
            "invalid field selector: invalid escape sequence: \\"
        );
        assert_eq!(escape_value("a\\b,c=d"), "a\\\\b\\,c\\=d");
        assert_eq!(
            unescape_value(&escape_value("x,=\\y")),
            Ok("x,=\\y".to_string())
        );
        assert_eq!(fsel("a=1").requires_exact_match("a"), Some("1"));
        assert_eq!(fsel("a!=1").requires_exact_match("a"), None);
        assert_eq!("a=1".parse::<FieldSelector>(), Ok(fsel("a=1")));
        let mut set = BTreeMap::new();
        set.insert("a".to_string(), "1".to_string());
        assert!(fsel("a=1,b=").matches_set(&set));
        assert!(!fsel("a!=1").matches_set(&set));
        assert!(FieldSelector::everything().matches_set(&set));
    }

    fn matches(s: &str, obj: &Value, kind: &str) -> Result<bool, String> {
        fsel(s).matches(obj, kind).map_err(|e| e.to_string())
    }

    #[test]
    fn pod_fields() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d"},
            "spec": {"nodeName": "n1", "hostNetwork": true, "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}
        });
        for (s, want) in [
            ("metadata.name=p", true),
            ("metadata.namespace!=d", false),
            ("spec.nodeName=n1", true),
            ("spec.host=n1", true),
            ("spec.host=n2", false),
            ("spec.hostNetwork=true", true),
            ("spec.restartPolicy=Always,status.phase=Running", true),
            ("spec.schedulerName=", true),
            ("spec.serviceAccountName=x", false),
            ("status.podIP=10.0.0.1", true),
            ("status.podIPs=10.0.0.1", false),
            ("status.podIPs=", true),
            ("status.nominatedNodeName!=", false),
        ] {
            assert_eq!(matches(s, &pod, "Pod"), Ok(want), "{s}");
        }
        let bare = json!({"metadata": {"name": "q"}, "status": {"podIP": "10.0.0.2"}});
        assert_eq!(matches("spec.hostNetwork=false", &bare, "Pod"), Ok(true));
        assert_eq!(matches("status.podIP=10.0.0.2", &bare, "Pod"), Ok(true));
        assert_eq!(
            matches("spec.foo=x", &pod, "Pod"),
            Err("field label not supported: spec.foo".to_string())
        );
        assert_eq!(
            matches(" metadata.name=p", &pod, "Pod"),
            Err("field label not supported:  metadata.name".to_string())
        );
        assert_eq!(
            fsel("spec.foo=x").matches(&pod, "Pod"),
            Err(FieldSelectorError::Unsupported {
                field: "spec.foo".into(),
                message: "field label not supported: spec.foo".into()
            })
        );
    }

    #[test]
    fn fields_per_kind() {
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        assert_eq!(matches("spec.unschedulable=false", &node, "Node"), Ok(true));
        assert_eq!(
            matches("metadata.namespace=", &node, "Node"),
            Err("field label not supported: metadata.namespace".to_string())
        );
        let ns = json!({"metadata": {"name": "n"}, "status": {"phase": "Active"}});
        assert_eq!(
            matches("status.phase=Active,metadata.name=n", &ns, "Namespace"),
            Ok(true)
        );
        let secret = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque"});
        assert_eq!(
            matches("type=Opaque,metadata.namespace=d", &secret, "Secret"),
            Ok(true)
        );
        let svc = json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1"}});
        assert_eq!(
            matches(
                "spec.type=ClusterIP,spec.clusterIP=10.96.0.1",
                &svc,
                "Service"
            ),
            Ok(true)
        );
        let rc = json!({"metadata": {"name": "r"}, "status": {"replicas": 3}});
        assert_eq!(
            matches("status.replicas=3", &rc, "ReplicationController"),
            Ok(true)
        );
        assert_eq!(
            matches("status.replicas=0", &json!({}), "ReplicationController"),
            Ok(true)
        );
        let job = json!({"apiVersion": "batch/v1", "metadata": {"name": "j"}, "status": {"succeeded": 2}});
        assert_eq!(matches("status.successful=2", &job, "Job"), Ok(true));
        assert_eq!(matches("status.successful=0", &json!({}), "Job"), Ok(true));
        assert_eq!(
            matches("status.succeeded=2", &job, "Job"),
            Err("field label \"status.succeeded\" not supported for batchv1.Job".to_string())
        );
        let deploy = json!({"apiVersion": "apps/v1", "metadata": {"name": "d", "namespace": "x"}});
        assert_eq!(
            matches("metadata.namespace=x", &deploy, "Deployment"),
            Ok(true)
        );
        let default_msg = "\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"";
        assert_eq!(
            matches("status.replicas=1", &deploy, "Deployment"),
            Err(default_msg.to_string())
        );
        assert_eq!(
            matches("status.replicas=1", &json!({}), "ReplicaSet"),
            Err(default_msg.to_string())
        );
        assert_eq!(matches("data.x=1", &json!({}), "ConfigMap"), Err("\"data.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"".to_string()));
        let csr = json!({"apiVersion": "certificates.k8s.io/v1", "metadata": {"name": "c"}, "spec": {"signerName": "kubernetes.io/kubelet-serving"}});
        assert_eq!(
            matches(
                "spec.signerName=kubernetes.io/kubelet-serving",
                &csr,
                "CertificateSigningRequest"
            ),
            Ok(true)
        );
        assert_eq!(
            matches("metadata.namespace=x", &csr, "CertificateSigningRequest"),
            Err("field label not supported: metadata.namespace".to_string())
        );
        let slice = json!({"apiVersion": "resource.k8s.io/v1beta2", "metadata": {"name": "s"}, "spec": {"driver": "d", "nodeName": "n"}});
        assert_eq!(
            matches("spec.driver=d,spec.nodeName=n", &slice, "ResourceSlice"),
            Ok(true)
        );
        assert_eq!(
            matches("spec.pool=x", &slice, "ResourceSlice"),
            Err("field label not supported for resource.k8s.io/v1beta2, Kind=ResourceSlice: spec.pool".to_string())
        );
    }

    #[test]
    fn event_fields() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "d"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "d", "uid": "u", "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec"},
            "reason": "Started", "type": "Normal", "reportingComponent": "kubelet"
        });
        assert_eq!(
            matches(
                "involvedObject.kind=Pod,involvedObject.name=p,involvedObject.namespace=d,involvedObject.uid=u,involvedObject.apiVersion=v1,involvedObject.resourceVersion=7,involvedObject.fieldPath=spec",
                &core,
                "Event"
            ),
            Ok(true)
        );
        assert_eq!(
            matches(
                "reason=Started,type=Normal,reportingComponent=kubelet",
                &core,
                "Event"
            ),
            Ok(true)
        );
        // source falls back to reportingComponent.
        assert_eq!(matches("source=kubelet", &core, "Event"), Ok(true));
        let mut with_source = core.clone();
        with_source["source"] = json!({"component": "scheduler"});
        assert_eq!(matches("source=scheduler", &with_source, "Event"), Ok(true));
        assert_eq!(
            matches("regarding.kind=Pod", &core, "Event"),
            Err("field label not supported: regarding.kind".to_string())
        );

        let events = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "d"},
            "regarding": {"kind": "Pod", "name": "p"},
            "reason": "Started", "type": "Normal", "reportingController": "kubelet"
        });
        assert_eq!(
            matches(
                "regarding.kind=Pod,regarding.name=p,reportingController=kubelet",
                &events,
                "Event"
            ),
            Ok(true)
        );
        assert_eq!(
            matches(
                "source=kubelet,reason=Started,type=Normal",
                &events,
                "Event"
            ),
            Ok(true)
        );
        assert_eq!(
            matches("involvedObject.kind=Pod", &events, "Event"),
            Err("field label not supported: involvedObject.kind".to_string())
        );
        assert_eq!(
            fsel("regarding.kind=Pod").validate("events.k8s.io/v1", "Event"),
            Ok(vec!["involvedObject.kind".to_string()])
        );
    }

    #[test]
    fn supported_fields_and_custom_resources() {
        for (kind, field, want) in [
            ("Pod", "spec.nodeName", true),
            ("Pod", "spec.host", true),
            ("Pod", "status.podIPs", true),
            ("Pod", "spec.foo", false),
            ("Node", "metadata.name", true),
            ("Node", "metadata.namespace", false),
            ("Namespace", "metadata.namespace", false),
            ("Deployment", "metadata.namespace", true),
            ("Deployment", "spec.replicas", false),
            ("ReplicaSet", "status.replicas", false),
            ("Event", "involvedObject.kind", true),
            ("Event", "regarding.kind", false),
            ("Job", "status.successful", true),
            ("Secret", "type", true),
            ("Service", "spec.clusterIP", true),
            ("CertificateSigningRequest", "spec.signerName", true),
        ] {
            assert_eq!(supported_field(kind, field), want, "{kind} {field}");
        }
        let cr = json!({"metadata": {"name": "w", "namespace": "d"}, "spec": {"color": "red", "size": 3, "on": true}});
        let sel_fields = [".spec.color", "spec.size", ".spec.on", ".spec.missing"];
        let m = |s: &str, namespaced: bool| {
            fsel(s)
                .matches_custom(&cr, namespaced, &sel_fields)
                .map_err(|e| e.to_string())
        };
        assert_eq!(m("spec.color=red,metadata.name=w", true), Ok(true));
        assert_eq!(m("spec.size=3,spec.on=true", true), Ok(true));
        assert_eq!(m("spec.missing=", true), Ok(true));
        assert_eq!(m("spec.color!=red", true), Ok(false));
        assert_eq!(m("metadata.namespace=d", true), Ok(true));
        assert_eq!(
            m("metadata.namespace=d", false),
            Err("field label not supported: metadata.namespace".to_string())
        );
        assert_eq!(
            m("spec.other=1", true),
            Err("field label not supported: spec.other".to_string())
        );
    }
}
