//! A circuit breaker per endpoint.
//!
//! After `failure_threshold` consecutive failures the circuit opens: nothing is sent to
//! the endpoint for `cool_down_ms` (the entries wait in the outbox, untouched). Then it
//! is half-open: exactly one probe goes out. A successful probe closes the circuit; a
//! failed one opens it for another cool-down. The breaker is a plain state machine over
//! explicit times (unix ms from the worker's clock), so it is tested without sleeping.

use serde::{Deserialize, Serialize};

/// When to open and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit; 0 disables the breaker.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe is allowed.
    pub cool_down_ms: u64,
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Sending normally; `consecutive_failures` so far.
    Closed { consecutive_failures: u32 },
    /// Not sending until `until_ms` (unix ms).
    Open { until_ms: i64 },
    /// Cool-down over: one probe may go out (`probe_in_flight` once it has).
    HalfOpen { probe_in_flight: bool },
}

/// What the caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Circuit closed: send.
    Send,
    /// Half-open: send this one request as the probe, then report its outcome.
    Probe,
    /// Do not send; ask again at `until_ms`.
    Wait { until_ms: i64 },
}

/// A state change worth logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { until_ms: i64 },
    HalfOpened,
    Closed,
}

/// One endpoint's breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    cfg: BreakerConfig,
    state: BreakerState,
}

impl CircuitBreaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        CircuitBreaker {
            cfg,
            state: BreakerState::Closed {
                consecutive_failures: 0,
            },
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn config(&self) -> BreakerConfig {
        self.cfg
    }

    /// Asks to send at `now_ms`. An open circuit whose cool-down is over turns
    /// half-open and hands out the probe (the returned transition says so).
    pub fn acquire(&mut self, now_ms: i64) -> (Permit, Option<Transition>) {
        match self.state {
            BreakerState::Closed { .. } => (Permit::Send, None),
            BreakerState::Open { until_ms } if now_ms < until_ms => {
                (Permit::Wait { until_ms }, None)
            }
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen {
                    probe_in_flight: true,
                };
                (Permit::Probe, Some(Transition::HalfOpened))
            }
            BreakerState::HalfOpen {
                probe_in_flight: false,
            } => {
                self.state = BreakerState::HalfOpen {
                    probe_in_flight: true,
                };
                (Permit::Probe, None)
            }
            BreakerState::HalfOpen {
                probe_in_flight: true,
            } => (
                Permit::Wait {
                    until_ms: self.reopen_at(now_ms),
                },
                None,
            ),
        }
    }

    /// The endpoint answered in a way that shows it works (including a rejection of
    /// one message): closes a half-open circuit, resets the failure count.
    pub fn on_success(&mut self) -> Option<Transition> {
        let was_closed = matches!(self.state, BreakerState::Closed { .. });
        self.state = BreakerState::Closed {
            consecutive_failures: 0,
        };
        (!was_closed).then_some(Transition::Closed)
    }

    /// The endpoint failed (transport error, 5xx, 429, authentication): counts towards
    /// opening; a failed probe reopens at once.
    pub fn on_failure(&mut self, now_ms: i64) -> Option<Transition> {
        match self.state {
            BreakerState::Closed {
                consecutive_failures,
            } => {
                let failures = consecutive_failures.saturating_add(1);
                if self.cfg.failure_threshold > 0 && failures >= self.cfg.failure_threshold {
                    Some(self.open(now_ms))
                } else {
                    self.state = BreakerState::Closed {
                        consecutive_failures: failures,
                    };
                    None
                }
            }
            BreakerState::HalfOpen { .. } => Some(self.open(now_ms)),
            // A late report from before the circuit opened: it is already open.
            BreakerState::Open { .. } => None,
        }
    }

    /// A permit was used without contacting the endpoint (the target skipped the
    /// entry): a half-open circuit gets its probe back.
    pub fn on_unused(&mut self) {
        if let BreakerState::HalfOpen {
            probe_in_flight: true,
        } = self.state
        {
            self.state = BreakerState::HalfOpen {
                probe_in_flight: false,
            };
        }
    }

    fn reopen_at(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(i64::try_from(self.cfg.cool_down_ms).unwrap_or(i64::MAX))
    }

    fn open(&mut self, now_ms: i64) -> Transition {
        let until_ms = self.reopen_at(now_ms);
        self.state = BreakerState::Open { until_ms };
        Transition::Opened { until_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, cool_down_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: threshold,
            cool_down_ms,
        })
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let mut b = breaker(3, 1000);
        assert_eq!(b.acquire(0).0, Permit::Send);
        assert_eq!(b.on_failure(0), None);
        assert_eq!(b.on_failure(1), None);
        assert_eq!(
            b.state(),
            BreakerState::Closed {
                consecutive_failures: 2
            }
        );
        assert_eq!(b.on_failure(2), Some(Transition::Opened { until_ms: 1002 }));
        assert_eq!(b.state(), BreakerState::Open { until_ms: 1002 });
        assert_eq!(b.acquire(500).0, Permit::Wait { until_ms: 1002 });
        assert_eq!(b.acquire(1001).0, Permit::Wait { until_ms: 1002 });
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut b = breaker(3, 1000);
        b.on_failure(0);
        b.on_failure(0);
        assert_eq!(b.on_success(), None, "closed stays closed: no transition");
        b.on_failure(0);
        b.on_failure(0);
        assert!(matches!(b.state(), BreakerState::Closed { .. }));
        assert!(b.on_failure(0).is_some());
    }

    #[test]
    fn half_open_allows_exactly_one_probe_then_closes_on_success() {
        let mut b = breaker(1, 100);
        b.on_failure(0);
        assert_eq!(
            b.acquire(100),
            (Permit::Probe, Some(Transition::HalfOpened))
        );
        // A second caller while the probe is out waits.
        assert_eq!(b.acquire(120).0, Permit::Wait { until_ms: 220 });
        assert_eq!(b.on_success(), Some(Transition::Closed));
        assert_eq!(
            b.state(),
            BreakerState::Closed {
                consecutive_failures: 0
            }
        );
        assert_eq!(b.acquire(130).0, Permit::Send);
    }

    #[test]
    fn failed_probe_reopens_for_a_new_cool_down() {
        let mut b = breaker(2, 100);
        b.on_failure(0);
        b.on_failure(10);
        assert_eq!(b.acquire(110).0, Permit::Probe);
        assert_eq!(
            b.on_failure(115),
            Some(Transition::Opened { until_ms: 215 })
        );
        assert_eq!(b.acquire(200).0, Permit::Wait { until_ms: 215 });
        assert_eq!(b.acquire(215).0, Permit::Probe);
    }

    #[test]
    fn unused_probe_is_handed_out_again() {
        let mut b = breaker(1, 100);
        b.on_failure(0);
        assert_eq!(b.acquire(100).0, Permit::Probe);
        b.on_unused();
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen {
                probe_in_flight: false
            }
        );
        assert_eq!(b.acquire(101), (Permit::Probe, None));
    }

    #[test]
    fn late_failure_reports_do_not_extend_an_open_circuit() {
        let mut b = breaker(1, 100);
        b.on_failure(0);
        assert_eq!(b.on_failure(50), None);
        assert_eq!(b.state(), BreakerState::Open { until_ms: 100 });
    }

    #[test]
    fn zero_threshold_never_opens() {
        let mut b = breaker(0, 100);
        for t in 0..100 {
            assert_eq!(b.on_failure(t), None);
            assert_eq!(b.acquire(t).0, Permit::Send);
        }
    }
}
