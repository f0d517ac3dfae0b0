//! Cron schedules as Kubernetes reads them (robfig/cron v3 `ParseStandard`): five fields
//! — minute, hour, day of month, month, day of week — with `*`, `?`, lists (`1,5`),
//! ranges (`1-5`), steps (`*/15`, `3/10`, `1-30/5`), month and day names (`jan`, `MON`),
//! or a descriptor (`@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`,
//! `@hourly`, `@every <duration>`). An optional `TZ=`/`CRON_TZ=` prefix is accepted for
//! `UTC` only. Times are milliseconds since the Unix epoch, in UTC.
//!
//! As in robfig/cron, when both day fields are restricted a day matches if *either* does;
//! a field written `*` (or `?`, or a `*` range with step 1) counts as unrestricted.

use std::fmt;

const MINUTE: u64 = 60_000;
const DAY: u64 = 86_400_000;
/// robfig/cron gives up after five years without a match.
const SEARCH_YEARS: i64 = 5;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// The five fields, as bit sets.
    Fields(Fields),
    /// `@every <duration>`: a constant delay in whole seconds (at least one).
    Every(u64),
}

/// The five fields as bit sets; `*_star` records an unrestricted day field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    minutes: u64,
    hours: u64,
    dom: u64,
    months: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
}

/// Why a schedule does not parse (robfig/cron's messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Whether a time zone name means UTC (the only zone supported).
pub fn is_utc(zone: &str) -> bool {
    matches!(
        zone,
        "" | "UTC"
            | "Etc/UTC"
            | "Etc/UCT"
            | "UCT"
            | "Etc/Universal"
            | "Universal"
            | "Zulu"
            | "Etc/Zulu"
            | "GMT"
            | "Etc/GMT"
            | "Etc/GMT0"
            | "Etc/GMT+0"
            | "Etc/GMT-0"
            | "GMT0"
            | "GMT+0"
            | "GMT-0"
            | "Etc/Greenwich"
            | "Greenwich"
    )
}

impl Schedule {
    /// Parses a schedule.
    pub fn parse(spec: &str) -> Result<Schedule, ParseError> {
        let mut spec = spec.trim();
        if spec.is_empty() {
            return err("empty spec string");
        }
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let eq = spec.find('=').unwrap_or(0);
            let Some(space) = spec.find(' ') else {
                return err(format!("provided bad location {}", &spec[eq + 1..]));
            };
            let zone = &spec[eq + 1..space];
            if !is_utc(zone) {
                return err(format!(
                    "unsupported time zone {zone}: only UTC is supported"
                ));
            }
            spec = spec[space..].trim();
        }
        if let Some(descriptor) = spec.strip_prefix('@') {
            return parse_descriptor(descriptor, spec);
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
        let (minutes, _) = parse_field(fields[0], 0, 59, &[], 0)?;
        let (hours, _) = parse_field(fields[1], 0, 23, &[], 0)?;
        let (dom, dom_star) = parse_field(fields[2], 1, 31, &[], 0)?;
        let (months, _) = parse_field(fields[3], 1, 12, MONTHS, 1)?;
        let (dow, dow_star) = parse_field(fields[4], 0, 6, DAYS, 0)?;
        Ok(Schedule::Fields(Fields {
            minutes,
            hours,
            dom,
            months,
            dow,
            dom_star,
            dow_star,
        }))
    }

    /// The first activation strictly after `after` (milliseconds since the epoch), or
    /// `None` when there is none within five years (e.g. `0 0 30 2 *`).
    pub fn next(&self, after: u64) -> Option<u64> {
        match self {
            // ConstantDelaySchedule: from the start of the second, plus the delay.
            Schedule::Every(secs) => Some(after - after % 1000 + secs * 1000),
            Schedule::Fields(f) => f.next(after),
        }
    }
}

fn parse_descriptor(descriptor: &str, spec: &str) -> Result<Schedule, ParseError> {
    let fields = match descriptor {
        "yearly" | "annually" => "0 0 1 1 *",
        "monthly" => "0 0 1 * *",
        "weekly" => "0 0 * * 0",
        "daily" | "midnight" => "0 0 * * *",
        "hourly" => "0 * * * *",
        _ => {
            let Some(duration) = descriptor.strip_prefix("every ") else {
                return err(format!("unrecognized descriptor: {spec}"));
            };
            let nanos = parse_go_duration(duration.trim())
                .map_err(|e| ParseError(format!("failed to parse duration {spec}: {e}")))?;
            // robfig/cron: `Every` rounds down to the second, at least one second.
            let secs = (nanos / 1_000_000_000).max(1);
            return Ok(Schedule::Every(secs as u64));
        }
    };
    Schedule::parse(fields)
}

/// One field: a comma list of ranges. Returns the bits and whether it is unrestricted.
fn parse_field(
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    first: u32,
) -> Result<(u64, bool), ParseError> {
    let mut bits = 0u64;
    let mut star = false;
    for expr in field.split(',') {
        let (b, s) = parse_range(expr, min, max, names, first)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

/// robfig/cron `getRange`: `*`, `?`, `n`, `a-b`, each optionally `/step`.
fn parse_range(
    expr: &str,
    min: u32,
    max: u32,
    names: &[&str],
    first: u32,
) -> Result<(u64, bool), ParseError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let mut star = false;
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        star = true;
        (min, max)
    } else {
        let start = parse_int_or_name(low_and_high[0], names, first)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], names, first)?,
            _ => return err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return err(format!("step of range should be a positive number: {expr}"));
    }
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v += step;
    }
    Ok((bits, star))
}

fn parse_int_or_name(expr: &str, names: &[&str], first: u32) -> Result<u32, ParseError> {
    let lower = expr.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(first + i as u32);
    }
    parse_int(expr)
}

fn parse_int(expr: &str) -> Result<u32, ParseError> {
    let n: i64 = expr
        .parse()
        .map_err(|_| ParseError(format!("failed to parse int from {expr}")))?;
    if n < 0 {
        return err(format!("negative number ({n}) not allowed: {expr}"));
    }
    u32::try_from(n).map_err(|_| ParseError(format!("failed to parse int from {expr}")))
}

impl Fields {
    fn day_matches(&self, days: i64) -> bool {
        let (_, _, d) = civil_from_days(days);
        let weekday = (days + 4).rem_euclid(7) as u32;
        let dom = self.dom & (1 << d) != 0;
        let dow = self.dow & (1 << weekday) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn next(&self, after: u64) -> Option<u64> {
        // Whole minutes strictly after `after`.
        let start = (after / MINUTE + 1) * MINUTE;
        let start_day = (start / DAY) as i64;
        let mut minute_of_day = ((start % DAY) / MINUTE) as u32;
        let (start_year, _, _) = civil_from_days(start_day);
        let mut day = start_day;
        loop {
            let (y, m, _) = civil_from_days(day);
            if y > start_year + SEARCH_YEARS {
                return None;
            }
            if self.months & (1 << m) != 0 && self.day_matches(day) {
                for hm in minute_of_day..24 * 60 {
                    let (h, mi) = (hm / 60, hm % 60);
                    if self.hours & (1 << h) != 0 && self.minutes & (1 << mi) != 0 {
                        return Some(day as u64 * DAY + u64::from(hm) * MINUTE);
                    }
                }
            }
            day += 1;
            minute_of_day = 0;
        }
    }
}

/// (year, month 1-12, day 1-31) of a day number since the epoch (Howard Hinnant's
/// algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Go's `time.ParseDuration`, in nanoseconds (negative durations are refused: a schedule
/// needs a positive delay).
pub fn parse_go_duration(text: &str) -> Result<u128, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let mut s = text.strip_prefix('+').unwrap_or(text);
    if s.starts_with('-') {
        return Err(invalid());
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let num_len = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let num = &s[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        s = &s[num_len..];
        let unit_len = s
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {text:?}")),
        };
        let value: f64 = num.parse().map_err(|_| invalid())?;
        total += value * scale;
    }
    Ok(total.round() as u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC date-time.
    fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
        let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:00Z");
        tugboat_plugin_sdk::cluster::parse_rfc3339(&text).unwrap()
    }

    fn next(spec: &str, after: u64) -> Option<u64> {
        Schedule::parse(spec).unwrap().next(after)
    }

    #[test]
    fn every_minute_and_fixed_times() {
        let t = at(2026, 3, 4, 10, 17);
        assert_eq!(next("* * * * *", t), Some(at(2026, 3, 4, 10, 18)));
        // Strictly after, even mid-minute.
        assert_eq!(next("* * * * *", t + 30_000), Some(at(2026, 3, 4, 10, 18)));
        assert_eq!(next("30 * * * *", t), Some(at(2026, 3, 4, 10, 30)));
        assert_eq!(next("15 * * * *", t), Some(at(2026, 3, 4, 11, 15)));
        assert_eq!(next("0 0 * * *", t), Some(at(2026, 3, 5, 0, 0)));
        assert_eq!(next("0 9 1 * *", t), Some(at(2026, 4, 1, 9, 0)));
        // Year wrap.
        assert_eq!(next("0 0 1 1 *", t), Some(at(2027, 1, 1, 0, 0)));
    }

    #[test]
    fn steps_ranges_and_lists() {
        let t = at(2026, 3, 4, 10, 17);
        assert_eq!(next("*/15 * * * *", t), Some(at(2026, 3, 4, 10, 30)));
        assert_eq!(next("5/20 * * * *", t), Some(at(2026, 3, 4, 10, 25)));
        assert_eq!(next("0 8-10 * * *", t), Some(at(2026, 3, 5, 8, 0)));
        assert_eq!(next("0,20,40 * * * *", t), Some(at(2026, 3, 4, 10, 20)));
        assert_eq!(next("10-50/20 * * * *", t), Some(at(2026, 3, 4, 10, 30)));
        assert_eq!(next("0 0 * 1,7 *", t), Some(at(2026, 7, 1, 0, 0)));
        let fields = Schedule::parse("0-59/1 0-23 1-31 1-12 0-6").unwrap();
        assert_eq!(fields.next(t), Some(at(2026, 3, 4, 10, 18)));
    }

    #[test]
    fn names_of_months_and_days() {
        // 2026-03-04 is a Wednesday.
        let t = at(2026, 3, 4, 10, 17);
        assert_eq!(next("0 12 * * MON", t), Some(at(2026, 3, 9, 12, 0)));
        assert_eq!(next("0 12 * * wed", t), Some(at(2026, 3, 4, 12, 0)));
        assert_eq!(next("0 12 * * sun,SAT", t), Some(at(2026, 3, 7, 12, 0)));
        assert!(Schedule::parse("0 12 * * sat-sun").is_err());
        assert_eq!(next("0 0 1 Jun *", t), Some(at(2026, 6, 1, 0, 0)));
        assert_eq!(next("0 0 1 jan-feb *", t), Some(at(2027, 1, 1, 0, 0)));
        assert_eq!(next("0 12 * * 0", t), Some(at(2026, 3, 8, 12, 0)));
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        let t = at(2026, 3, 4, 10, 17);
        // Both restricted: either matches (the 13th, or a Friday — 2026-03-06).
        assert_eq!(next("0 0 13 * 5", t), Some(at(2026, 3, 6, 0, 0)));
        // Day of week unrestricted: only the 13th.
        assert_eq!(next("0 0 13 * *", t), Some(at(2026, 3, 13, 0, 0)));
        assert_eq!(next("0 0 13 * ?", t), Some(at(2026, 3, 13, 0, 0)));
        // "*/2" with a step is a restriction: days 1,3,5,... or Fridays.
        assert_eq!(next("0 0 */2 * 5", t), Some(at(2026, 3, 5, 0, 0)));
    }

    #[test]
    fn descriptors() {
        let t = at(2026, 3, 4, 10, 17);
        assert_eq!(next("@hourly", t), Some(at(2026, 3, 4, 11, 0)));
        assert_eq!(next("@daily", t), Some(at(2026, 3, 5, 0, 0)));
        assert_eq!(next("@midnight", t), Some(at(2026, 3, 5, 0, 0)));
        assert_eq!(next("@weekly", t), Some(at(2026, 3, 8, 0, 0)));
        assert_eq!(next("@monthly", t), Some(at(2026, 4, 1, 0, 0)));
        assert_eq!(next("@yearly", t), Some(at(2027, 1, 1, 0, 0)));
        assert_eq!(next("@annually", t), Some(at(2027, 1, 1, 0, 0)));
        assert_eq!(next("@every 90s", t + 500), Some(t + 90_000));
        assert_eq!(next("@every 1h30m", t), Some(t + 5_400_000));
        assert_eq!(next("@every 1.5s", t), Some(t + 1000));
        assert_eq!(next("@every 10ms", t), Some(t + 1000));
    }

    #[test]
    fn leap_days_and_impossible_dates() {
        let t = at(2026, 3, 4, 10, 17);
        assert_eq!(next("0 0 29 2 *", t), Some(at(2028, 2, 29, 0, 0)));
        assert_eq!(next("0 0 30 2 *", t), None);
        assert_eq!(next("0 0 31 4 *", t), None);
    }

    #[test]
    fn utc_prefixes() {
        let t = at(2026, 3, 4, 10, 17);
        assert_eq!(next("TZ=UTC 0 12 * * *", t), Some(at(2026, 3, 4, 12, 0)));
        assert_eq!(
            next("CRON_TZ=Etc/UTC 0 12 * * *", t),
            Some(at(2026, 3, 4, 12, 0))
        );
        assert!(Schedule::parse("TZ=Europe/Paris 0 12 * * *").is_err());
    }

    #[test]
    fn errors_like_robfig() {
        let e = |s: &str| Schedule::parse(s).unwrap_err().0;
        assert_eq!(e(""), "empty spec string");
        assert_eq!(
            e("* * * *"),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        assert_eq!(e("60 * * * *"), "end of range (60) above maximum (59): 60");
        assert_eq!(
            e("* * 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            e("5-1 * * * *"),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(
            e("*/0 * * * *"),
            "step of range should be a positive number: */0"
        );
        assert_eq!(e("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(e("1/2/3 * * * *"), "too many slashes: 1/2/3");
        assert_eq!(e("x * * * *"), "failed to parse int from x");
        assert_eq!(e("* * * * 7"), "end of range (7) above maximum (6): 7");
        assert_eq!(e("@often"), "unrecognized descriptor: @often");
        assert!(e("@every 5").contains("missing unit"));
        assert!(e("@every").contains("unrecognized descriptor"));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h2m3s"), Ok(3_723_000_000_000));
        assert_eq!(parse_go_duration("2.5h"), Ok(9_000_000_000_000));
        assert_eq!(parse_go_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert!(parse_go_duration("1x").is_err());
        assert!(parse_go_duration("-1s").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
