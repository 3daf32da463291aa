//! Half-open intervals of instants and the set operations availability and SLA clocks need.

/// Seconds since the Unix epoch (UTC), the unit of calendars and clocks.
pub type Secs = i64;

/// A half-open interval `[start, end)` of instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    /// First instant (included).
    pub start: Secs,
    /// End (excluded).
    pub end: Secs,
}

impl Span {
    /// The interval `[start, end)`.
    pub fn new(start: Secs, end: Secs) -> Self {
        Self { start, end }
    }

    /// Its length in seconds (0 when empty).
    pub fn len(&self) -> Secs {
        (self.end - self.start).max(0)
    }

    /// Whether it contains no instant.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Sorts spans and merges those that overlap or touch, dropping empty ones.
pub fn normalize(mut spans: Vec<Span>) -> Vec<Span> {
    spans.retain(|s| !s.is_empty());
    spans.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}

/// The instants of `a` not in `b` (both normalized).
pub fn subtract(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for s in a {
        let mut start = s.start;
        while j < b.len() && b[j].end <= start {
            j += 1;
        }
        let mut k = j;
        while k < b.len() && b[k].start < s.end {
            if b[k].start > start {
                out.push(Span::new(start, b[k].start));
            }
            start = start.max(b[k].end);
            k += 1;
        }
        if start < s.end {
            out.push(Span::new(start, s.end));
        }
    }
    out
}

/// The instants in both `a` and `b` (both normalized).
pub fn intersect(a: &[Span], b: &[Span]) -> Vec<Span> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let start = a[i].start.max(b[j].start);
        let end = a[i].end.min(b[j].end);
        if start < end {
            out.push(Span::new(start, end));
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Total length of normalized spans.
pub fn measure(spans: &[Span]) -> Secs {
    spans.iter().map(Span::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(list: &[(Secs, Secs)]) -> Vec<Span> {
        list.iter().map(|&(a, b)| Span::new(a, b)).collect()
    }

    #[test]
    fn normalize_merges_overlapping_and_touching_spans() {
        assert_eq!(
            normalize(spans(&[(5, 7), (0, 2), (2, 3), (6, 9), (10, 10)])),
            spans(&[(0, 3), (5, 9)])
        );
    }

    #[test]
    fn subtract_and_intersect_agree_with_pointwise_sets() {
        let a = normalize(spans(&[(0, 10), (12, 20), (25, 30)]));
        let b = normalize(spans(&[(2, 4), (8, 13), (19, 26), (29, 40)]));
        let member = |set: &[Span], t: Secs| set.iter().any(|s| (s.start..s.end).contains(&t));
        let minus = subtract(&a, &b);
        let both = intersect(&a, &b);
        for t in -1..45 {
            assert_eq!(member(&minus, t), member(&a, t) && !member(&b, t), "t={t}");
            assert_eq!(member(&both, t), member(&a, t) && member(&b, t), "t={t}");
        }
        assert_eq!(measure(&minus) + measure(&both), measure(&a));
    }
}
