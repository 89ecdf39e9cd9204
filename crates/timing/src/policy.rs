//! Which TSC rate a run uses, and what happens when its sources disagree.
//!
//! Sources, by rank (the first one present and usable wins):
//!
//! 1. [`Source::Hypervisor`]: CPUID leaf 0x40000010 EAX (TSC kHz), set by
//!    a hypervisor that exposes it (KVM with `tsc-frequency`, VMware). Exact
//!    by construction: the hypervisor programs the guest TSC's rate.
//! 2. [`Source::Cpuid15`]: CPUID leaf 0x15, crystal Hz × EBX / EAX, when
//!    the crystal frequency (ECX) is given. Exact by architecture.
//! 3. [`Source::Pit`]: node 0's own measurement against PIT channel 2
//!    (several windows, see [`crate::rate`]), when consistent: a majority
//!    of windows within [`crate::rate::OUTLIER_PPM`] of the median, spread
//!    at most [`AGREE_PPM`].
//! 4. [`Source::Host`]: the host tool's measurement of its own TSC against
//!    `CLOCK_MONOTONIC_RAW`, passed on the kernel command line. The guest
//!    TSC is the host's under TCG (and under KVM without TSC scaling);
//!    that is an assumption about the emulator, hence last.
//!
//! [`Source::Cpuid16`] (leaf 0x16, the processor's base MHz) is nominal,
//! not the TSC's rate on every CPU: it is compared, never chosen.
//!
//! Every other present source is compared with the chosen one. The run's
//! [`Status`]:
//!
//! - [`Status::Agree`]: every source within [`AGREE_PPM`] (2 %) of the
//!   chosen one, and the PIT windows consistent.
//! - [`Status::Warn`]: the run goes on with the chosen rate, loudly: a
//!   measurement disagrees with an exact source (the exact one wins: the
//!   measurement was disturbed), the nominal base frequency disagrees, or
//!   the PIT windows are inconsistent while another source was chosen.
//! - [`Status::Refuse`]: no usable source, or the chosen source and
//!   another rate source disagree where nothing says which is right (two
//!   measurements, or two exact sources). Every ns figure would be off by
//!   the disagreement. With `allow_mismatch` this becomes [`Status::Warn`].

use crate::deviation_ppm;
use crate::rate::RateEstimate;

/// Sources may differ by this much (parts per million) and still agree.
pub const AGREE_PPM: u32 = 20_000;

/// Where a TSC rate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// CPUID 0x40000010 EAX (kHz).
    Hypervisor,
    /// CPUID 0x15 (crystal × ratio).
    Cpuid15,
    /// Node 0's PIT channel 2 windows.
    Pit,
    /// The host tool's TSC against `CLOCK_MONOTONIC_RAW`.
    Host,
    /// CPUID 0x16 EAX (base MHz): nominal.
    Cpuid16,
}

impl Source {
    /// Every source, in rank order (the nominal one last).
    pub const ALL: [Source; 5] = [
        Source::Hypervisor,
        Source::Cpuid15,
        Source::Pit,
        Source::Host,
        Source::Cpuid16,
    ];

    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Hypervisor => "cpuid_0x40000010",
            Source::Cpuid15 => "cpuid_0x15",
            Source::Pit => "pit",
            Source::Host => "host",
            Source::Cpuid16 => "cpuid_0x16",
        }
    }

    /// Its name parsed back.
    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Exact by construction or architecture (not a measurement).
    pub fn is_exact(self) -> bool {
        matches!(self, Source::Hypervisor | Source::Cpuid15)
    }

    /// May be the run's rate (everything but the nominal base frequency).
    pub fn may_be_chosen(self) -> bool {
        self != Source::Cpuid16
    }
}

/// What each source said, in ticks per second (`None`: absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    /// CPUID 0x40000010.
    pub hypervisor: Option<u64>,
    /// CPUID 0x15.
    pub cpuid15: Option<u64>,
    /// CPUID 0x16 (base frequency).
    pub cpuid16: Option<u64>,
    /// The PIT windows.
    pub pit: Option<RateEstimate>,
    /// The host's measurement.
    pub host: Option<u64>,
}

impl Sources {
    /// The rate `source` gave, if present.
    pub fn get(&self, source: Source) -> Option<u64> {
        match source {
            Source::Hypervisor => self.hypervisor,
            Source::Cpuid15 => self.cpuid15,
            Source::Cpuid16 => self.cpuid16,
            Source::Pit => self.pit.map(|p| p.hz),
            Source::Host => self.host,
        }
        .filter(|&hz| hz > 0)
    }

    /// Whether `source` is present and good enough to be chosen.
    fn usable(&self, source: Source) -> bool {
        source.may_be_chosen()
            && self.get(source).is_some()
            && (source != Source::Pit || self.pit.is_some_and(|p| p.is_consistent(AGREE_PPM)))
    }
}

/// The outcome of the cross-check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every source agrees.
    Agree,
    /// The run goes on with the chosen rate; say so loudly.
    Warn,
    /// The run must not report ns figures: stop it.
    Refuse,
}

impl Status {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Agree => "agree",
            Status::Warn => "warn",
            Status::Refuse => "refuse",
        }
    }
}

/// Which rate a run uses and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The winning source and its rate (`None`: nothing usable).
    pub chosen: Option<(Source, u64)>,
    /// The source farthest from the chosen one, and how far (ppm).
    pub worst: Option<(Source, u32)>,
    /// The outcome.
    pub status: Status,
    /// One line for people: why this status.
    pub reason: &'static str,
}

impl Decision {
    /// The rate to use, or `None` when there is none.
    pub fn hz(&self) -> Option<u64> {
        self.chosen.map(|c| c.1)
    }
}

/// Applies the policy (see the module docs) to `sources`.
pub fn decide(sources: &Sources, allow_mismatch: bool) -> Decision {
    let Some(chosen) = Source::ALL.into_iter().find(|&s| sources.usable(s)) else {
        return Decision {
            chosen: None,
            worst: None,
            status: Status::Refuse,
            reason: "no usable TSC rate source (no CPUID leaf, PIT windows inconsistent or absent, no host figure)",
        };
    };
    let hz = sources.get(chosen).unwrap_or(0);
    let mut worst: Option<(Source, u32)> = None;
    let mut refuse = false;
    let mut warn_reason: Option<&'static str> = None;
    for other in Source::ALL.into_iter().filter(|&s| s != chosen) {
        let Some(v) = sources.get(other) else {
            continue;
        };
        let ppm = deviation_ppm(v, hz);
        if worst.is_none_or(|w| ppm > w.1) {
            worst = Some((other, ppm));
        }
        if ppm <= AGREE_PPM {
            continue;
        }
        let pit_disturbed = other == Source::Pit && !sources.usable(Source::Pit);
        if other == Source::Cpuid16 {
            warn_reason.get_or_insert(
                "the processor's nominal base frequency (CPUID 0x16) differs from the TSC rate",
            );
        } else if pit_disturbed {
            warn_reason
                .get_or_insert("the PIT windows disagree among themselves (host load?); not used");
        } else if chosen.is_exact() && !other.is_exact() {
            warn_reason
                .get_or_insert("a measurement disagrees with the exact CPUID rate, which wins");
        } else {
            refuse = true;
        }
    }
    if chosen != Source::Pit && sources.pit.is_some_and(|p| !p.is_consistent(AGREE_PPM)) {
        warn_reason
            .get_or_insert("the PIT windows disagree among themselves (host load?); not used");
    }
    let (status, reason) = if refuse {
        if allow_mismatch {
            (
                Status::Warn,
                "TSC rate sources disagree; going on as asked, every ns figure is in doubt",
            )
        } else {
            (
                Status::Refuse,
                "TSC rate sources disagree and none is exact: every ns figure would be wrong by the difference",
            )
        }
    } else if let Some(r) = warn_reason {
        (Status::Warn, r)
    } else {
        (Status::Agree, "every TSC rate source agrees within 2 %")
    };
    Decision {
        chosen: Some((chosen, hz)),
        worst,
        status,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSC: u64 = 2_596_000_000;

    fn pit(hz: u64, kept: u8, spread_ppm: u32) -> Option<RateEstimate> {
        Some(RateEstimate {
            hz,
            windows: 5,
            kept,
            spread_ppm,
        })
    }

    #[test]
    fn pit_and_host_agreeing_choose_the_pit() {
        let s = Sources {
            pit: pit(TSC + 1_000_000, 5, 300),
            host: Some(TSC),
            ..Sources::default()
        };
        let d = decide(&s, false);
        assert_eq!(d.chosen, Some((Source::Pit, TSC + 1_000_000)));
        assert_eq!(d.status, Status::Agree);
        assert_eq!(d.worst.map(|w| w.0), Some(Source::Host));
    }

    #[test]
    fn a_wrong_host_figure_refuses_unless_allowed() {
        let s = Sources {
            pit: pit(TSC, 5, 300),
            host: Some(5_200_000_000),
            ..Sources::default()
        };
        let d = decide(&s, false);
        assert_eq!(d.status, Status::Refuse);
        assert_eq!(d.chosen, Some((Source::Pit, TSC)));
        assert_eq!(d.worst.map(|w| w.0), Some(Source::Host));
        assert!(d.worst.unwrap().1 > 1_000_000);
        let d = decide(&s, true);
        assert_eq!(d.status, Status::Warn);
        assert_eq!(d.hz(), Some(TSC), "the PIT still wins");
    }

    #[test]
    fn an_inconsistent_pit_gives_way_to_the_host_with_a_warning() {
        let s = Sources {
            pit: pit(5_600_000_000, 2, 400_000),
            host: Some(TSC),
            ..Sources::default()
        };
        let d = decide(&s, false);
        assert_eq!(d.chosen, Some((Source::Host, TSC)));
        assert_eq!(d.status, Status::Warn);
    }

    #[test]
    fn an_inconsistent_pit_alone_refuses() {
        let s = Sources {
            pit: pit(5_600_000_000, 2, 400_000),
            ..Sources::default()
        };
        let d = decide(&s, false);
        assert_eq!(d.chosen, None);
        assert_eq!(d.status, Status::Refuse);
        assert_eq!(decide(&Sources::default(), true).status, Status::Refuse);
    }

    #[test]
    fn exact_sources_win_and_a_disturbed_measurement_only_warns() {
        let s = Sources {
            cpuid15: Some(TSC),
            pit: pit(3_300_000_000, 5, 100),
            host: Some(TSC),
            ..Sources::default()
        };
        let d = decide(&s, false);
        assert_eq!(d.chosen, Some((Source::Cpuid15, TSC)));
        assert_eq!(d.status, Status::Warn);
        assert_eq!(d.worst.map(|w| w.0), Some(Source::Pit));
        let hv = Sources {
            hypervisor: Some(TSC),
            ..s
        };
        assert_eq!(decide(&hv, false).chosen, Some((Source::Hypervisor, TSC)));
    }

    #[test]
    fn two_exact_sources_disagreeing_refuse() {
        let s = Sources {
            hypervisor: Some(TSC),
            cpuid15: Some(2 * TSC),
            ..Sources::default()
        };
        assert_eq!(decide(&s, false).status, Status::Refuse);
    }

    #[test]
    fn the_nominal_base_frequency_is_compared_never_chosen() {
        let s = Sources {
            cpuid16: Some(3_000_000_000),
            pit: pit(TSC, 5, 100),
            ..Sources::default()
        };
        let d = decide(&s, false);
        assert_eq!(d.chosen, Some((Source::Pit, TSC)));
        assert_eq!(d.status, Status::Warn);
        let only = Sources {
            cpuid16: Some(TSC),
            ..Sources::default()
        };
        assert_eq!(decide(&only, false).chosen, None);
    }

    #[test]
    fn within_two_percent_agrees() {
        let s = Sources {
            pit: pit(TSC, 5, 100),
            host: Some(TSC + TSC / 51),
            cpuid16: Some(TSC - TSC / 51),
            ..Sources::default()
        };
        assert_eq!(decide(&s, false).status, Status::Agree);
        let s = Sources {
            host: Some(TSC + TSC / 49),
            ..s
        };
        assert_eq!(decide(&s, false).status, Status::Refuse);
    }

    #[test]
    fn names_round_trip() {
        for s in Source::ALL {
            assert_eq!(Source::parse(s.as_str()), Some(s));
        }
        assert_eq!(Source::parse("sundial"), None);
    }
}
