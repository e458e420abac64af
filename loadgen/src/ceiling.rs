//! How `ceiling` searches for the highest rate that holds: the rate doubles
//! while steps hold and halves while they fail until one step holds and one
//! fails, then bisects between them until the two are within
//! [`Search::precision`] of each other. Sans-IO: the caller runs each step.

/// The search's state.
#[derive(Debug, Clone)]
pub struct Search {
    /// The highest rate that held so far.
    held: Option<f64>,
    /// The lowest rate that failed so far.
    failed: Option<f64>,
    /// The first rate tried.
    start: f64,
    /// Below this rate the search gives up (the server holds nothing).
    floor: f64,
    /// Stop when `failed / held <= 1 + precision`.
    precision: f64,
    /// Steps left.
    steps_left: usize,
}

impl Search {
    /// A search from `start` msg/s with at most `max_steps` steps, to within `precision` (0.1: 10%).
    pub fn new(start: f64, max_steps: usize, precision: f64) -> Search {
        Search { held: None, failed: None, start, floor: 100.0, precision, steps_left: max_steps }
    }

    /// The rate of the next step, or `None` when the search is done.
    pub fn next_rate(&self) -> Option<f64> {
        if self.steps_left == 0 {
            return None;
        }
        let rate = match (self.held, self.failed) {
            (None, None) => self.start,
            (Some(h), None) => h * 2.0,
            (None, Some(f)) => f / 2.0,
            (Some(h), Some(f)) if f / h <= 1.0 + self.precision => return None,
            (Some(h), Some(f)) => (h + f) / 2.0,
        };
        (rate >= self.floor).then_some(rate.round())
    }

    /// Records whether the step at `rate` held.
    pub fn record(&mut self, rate: f64, held: bool) {
        self.steps_left = self.steps_left.saturating_sub(1);
        if held {
            self.held = Some(self.held.map_or(rate, |h| h.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
    }

    /// The highest rate that held, and the lowest above it that failed.
    pub fn bracket(&self) -> (Option<f64>, Option<f64>) {
        (self.held, self.failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a server that holds up to `limit` msg/s.
    fn run(start: f64, limit: f64, max_steps: usize) -> (Search, Vec<f64>) {
        let mut s = Search::new(start, max_steps, 0.1);
        let mut tried = Vec::new();
        while let Some(rate) = s.next_rate() {
            tried.push(rate);
            s.record(rate, rate <= limit);
        }
        (s, tried)
    }

    #[test]
    fn halves_down_then_bisects_to_within_ten_percent() {
        let (s, tried) = run(10_000.0, 6_300.0, 12);
        assert_eq!(&tried[..2], &[10_000.0, 5_000.0]);
        let (Some(h), Some(f)) = s.bracket() else { panic!("{s:?}") };
        assert!(h <= 6_300.0 && f > 6_300.0 && f / h <= 1.1, "{h} {f} {tried:?}");
    }

    #[test]
    fn doubles_up_while_steps_hold() {
        let (s, tried) = run(1_000.0, 9_000.0, 12);
        assert_eq!(&tried[..5], &[1_000.0, 2_000.0, 4_000.0, 8_000.0, 16_000.0]);
        let (Some(h), Some(f)) = s.bracket() else { panic!("{s:?}") };
        assert!(h <= 9_000.0 && f > 9_000.0 && f / h <= 1.1, "{h} {f}");
    }

    #[test]
    fn stops_at_the_step_budget_or_the_floor() {
        let (s, tried) = run(10_000.0, 7_000.0, 3);
        assert_eq!(tried, vec![10_000.0, 5_000.0, 7_500.0]);
        assert_eq!(s.bracket(), (Some(5_000.0), Some(7_500.0)), "the bracket so far is reported");
        let (s, tried) = run(1_000.0, 10.0, 20);
        assert_eq!(tried, vec![1_000.0, 500.0, 250.0, 125.0], "nothing below the floor is tried");
        assert_eq!(s.bracket(), (None, Some(125.0)));
    }
}
