//! Sets of completion indexes and their text form in `status.completedIndexes`
//! (`"1,3-5,7"`: ascending, consecutive runs of two or more as `first-last`).

use std::collections::BTreeSet;
use std::fmt;

/// A set of completion indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexes(BTreeSet<i64>);

impl Indexes {
    /// Parses `"1,3-5"`, keeping the indexes below `completions` (`parseIndexesFromString`:
    /// malformed parts are skipped).
    pub fn parse(text: &str, completions: i64) -> Self {
        let mut set = BTreeSet::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (a.trim().parse::<i64>(), b.trim().parse::<i64>()),
                None => (part.parse::<i64>(), part.parse::<i64>()),
            };
            let (Ok(first), Ok(last)) = (first, last) else {
                continue;
            };
            if first < 0 || last < first {
                continue;
            }
            for ix in first..=last.min(completions - 1) {
                set.insert(ix);
            }
        }
        Indexes(set)
    }

    pub fn insert(&mut self, ix: i64) {
        self.0.insert(ix);
    }

    pub fn contains(&self, ix: i64) -> bool {
        self.0.contains(&ix)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Indexes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for &ix in &self.0 {
            match runs.last_mut() {
                Some((_, last)) if *last + 1 == ix => *last = ix,
                _ => runs.push((ix, ix)),
            }
        }
        let parts: Vec<String> = runs
            .into_iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_clips() {
        let ix = Indexes::parse("0,2-4,7", 10);
        assert_eq!(ix.len(), 5);
        assert!(ix.contains(3) && !ix.contains(1));
        assert_eq!(ix.to_string(), "0,2-4,7");
        assert_eq!(Indexes::parse("0,2-4,7", 4).to_string(), "0,2-3");
        assert_eq!(Indexes::parse("", 3).to_string(), "");
        assert_eq!(Indexes::parse("x,1,3-2,5-6", 10).to_string(), "1,5-6");
        let mut two = Indexes::default();
        two.insert(1);
        two.insert(2);
        assert_eq!(two.to_string(), "1-2");
    }
}
