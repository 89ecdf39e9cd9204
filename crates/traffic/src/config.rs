//! Generator configuration: what to send, how many, how fast — parsed and validated without allocation.
//!
//! A run is described by a [`GenConfig`], usually parsed from the arguments
//! of a shell line with [`GenConfig::from_kv`]:
//!
//! ```
//! use mint_traffic::{GenConfig, Pattern, PacketKind};
//! let cfg = GenConfig::from_kv("size=1500 count=5000 interval=2000 pattern=poisson seed=7 kind=udp")?;
//! assert_eq!(cfg.pattern, Pattern::Poisson);
//! assert_eq!(cfg.kind, PacketKind::Udp);
//! // Display gives back a line that parses to the same config (handy in logs).
//! assert_eq!(GenConfig::from_kv(&format!("{cfg}"))?, cfg);
//! # Ok::<(), mint_traffic::ConfigError>(())
//! ```
//!
//! Errors are values of [`ConfigError`]; the kernel shell prints their
//! `Display`, so each one names the offending key or value and the accepted
//! range. Offending text is copied into a small inline [`Text`] (no
//! allocation, no borrowed lifetime to thread through the shell).

use core::fmt;
use core::str::FromStr;

/// Smallest frame size in bytes (Ethernet minimum without FCS).
pub const MIN_SIZE: u32 = 60;
/// Largest frame size in bytes (without FCS); the e1000 handles up to 16 KiB jumbo frames.
pub const MAX_SIZE: u32 = 16384;
/// Largest packet count of one run; keeps runs (and receiver counters) bounded.
pub const MAX_COUNT: u32 = 10_000_000;
/// Largest mean interval between packets: 10 s. Anything longer is a typo, not a test.
pub const MAX_INTERVAL_NS: u64 = 10_000_000_000;
/// Largest burst length K of [`Pattern::Burst`].
pub const MAX_BURST: u32 = 4096;

/// Default frame size: a full standard Ethernet frame without FCS.
pub const DEFAULT_SIZE: u32 = 1514;
/// Default packet count.
pub const DEFAULT_COUNT: u32 = 1000;
/// Default mean interval: 10 µs (100k packets/s).
pub const DEFAULT_INTERVAL_NS: u64 = 10_000;
/// Default seed.
pub const DEFAULT_SEED: u64 = 1;

/// What kind of frame carries the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PacketKind {
    /// Ethernet II + IPv4 + UDP: exercises the target's smoltcp stack.
    #[default]
    Udp,
    /// Ethernet II with the local experimental ethertype 0x88B5: driver only.
    Raw,
}

impl PacketKind {
    /// The name used on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            PacketKind::Udp => "udp",
            PacketKind::Raw => "raw",
        }
    }
}

impl fmt::Display for PacketKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PacketKind {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("udp") {
            Ok(PacketKind::Udp)
        } else if s.eq_ignore_ascii_case("raw") {
            Ok(PacketKind::Raw)
        } else {
            Err(ConfigError::UnknownKind(Text::new(s)))
        }
    }
}

/// How send times are spread; every pattern has the same mean rate, 1/interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Pattern {
    /// Exactly one packet every interval.
    #[default]
    Fixed,
    /// Exponential inter-arrival times with mean = interval (a Poisson process).
    Poisson,
    /// Groups of K back-to-back packets, groups K·interval apart (K in 1..=4096).
    Burst(u32),
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Fixed => f.write_str("fixed"),
            Pattern::Poisson => f.write_str("poisson"),
            Pattern::Burst(k) => write!(f, "burst:{k}"),
        }
    }
}

impl FromStr for Pattern {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("fixed") {
            return Ok(Pattern::Fixed);
        }
        if s.eq_ignore_ascii_case("poisson") {
            return Ok(Pattern::Poisson);
        }
        let (name, k) = s.split_once(':').unwrap_or((s, ""));
        if !name.eq_ignore_ascii_case("burst") {
            return Err(ConfigError::UnknownPattern(Text::new(s)));
        }
        let k = parse_u64(Field::Burst, k)?;
        if !(1..=u64::from(MAX_BURST)).contains(&k) {
            return Err(ConfigError::BurstOutOfRange(k));
        }
        Ok(Pattern::Burst(k as u32))
    }
}

/// How the target's driver takes the NIC's interrupts during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Moderation {
    /// One interrupt per posted edge (the device raises whenever a cause
    /// is unmasked and none is pending).
    #[default]
    None,
    /// The e1000's interrupt throttling: the driver programs ITR, and the
    /// device raises at most one interrupt per `ns` (a multiple of 256,
    /// the register's unit, 256..=16_776_960).
    Itr {
        /// The minimum interval between two interrupts.
        ns: u32,
    },
    /// NAPI: the handler masks the device's causes and schedules a poll;
    /// the receive loop polls the ring in budgets and unmasks when it is
    /// empty.
    Napi,
}

/// Where the target takes a frame after its driver cleaned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Delivery {
    /// Through the stack (UDP) or past it (raw) to the application's
    /// payload check: every frame checked, sequenced, timed.
    #[default]
    App,
    /// Counted at the driver and released: no stack, no check (the
    /// driver's own capacity).
    Driver,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Delivery::App => "app",
            Delivery::Driver => "driver",
        })
    }
}

impl FromStr for Delivery {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim() {
            t if t.eq_ignore_ascii_case("app") => Ok(Delivery::App),
            t if t.eq_ignore_ascii_case("driver") => Ok(Delivery::Driver),
            t => Err(ConfigError::UnknownDelivery(Text::new(t))),
        }
    }
}

/// The e1000's ITR unit (ns) and the register's largest value.
pub const ITR_UNIT_NS: u32 = 256;
/// The largest ITR interval: 65535 units.
pub const MAX_ITR_NS: u32 = 65_535 * ITR_UNIT_NS;

impl Moderation {
    /// The value the driver writes into ITR (0: no throttling).
    pub fn itr_register(&self) -> u32 {
        match self {
            Moderation::Itr { ns } => ns / ITR_UNIT_NS,
            _ => 0,
        }
    }
}

impl fmt::Display for Moderation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moderation::None => f.write_str("none"),
            Moderation::Itr { ns } => write!(f, "itr:{ns}"),
            Moderation::Napi => f.write_str("napi"),
        }
    }
}

impl FromStr for Moderation {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("none") {
            return Ok(Moderation::None);
        }
        if s.eq_ignore_ascii_case("napi") {
            return Ok(Moderation::Napi);
        }
        let (name, ns) = s.split_once(':').unwrap_or((s, ""));
        if !name.eq_ignore_ascii_case("itr") {
            return Err(ConfigError::UnknownModeration(Text::new(s)));
        }
        let ns = parse_interval_ns(ns)?;
        if !(u64::from(ITR_UNIT_NS)..=u64::from(MAX_ITR_NS)).contains(&ns)
            || !ns.is_multiple_of(u64::from(ITR_UNIT_NS))
        {
            return Err(ConfigError::ItrOutOfRange(ns));
        }
        Ok(Moderation::Itr { ns: ns as u32 })
    }
}

/// Which setting a parse error is about (used in messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// Frame size.
    Size,
    /// Packet count.
    Count,
    /// Mean interval.
    Interval,
    /// PRNG seed.
    Seed,
    /// Burst length K of `burst:K`.
    Burst,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Size => "size",
            Field::Count => "count",
            Field::Interval => "interval",
            Field::Seed => "seed",
            Field::Burst => "burst length",
        })
    }
}

/// A short inline copy of offending input, so errors own their evidence
/// without allocating. Longer input is cut (at a char boundary) and shown
/// with a trailing `…`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Text {
    buf: [u8; Text::CAP],
    len: u8,
    truncated: bool,
}

impl Text {
    /// How many bytes of the offending input are kept.
    pub const CAP: usize = 32;

    /// Copies (a prefix of) `s`.
    pub fn new(s: &str) -> Self {
        let mut end = s.len().min(Self::CAP);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut buf = [0u8; Self::CAP];
        buf[..end].copy_from_slice(&s.as_bytes()[..end]);
        Text {
            buf,
            len: end as u8,
            truncated: end < s.len(),
        }
    }

    /// The kept text (without the `…` marker).
    pub fn as_str(&self) -> &str {
        // Always a char-boundary prefix of a `str`, so this cannot fail.
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }

    /// Whether the original input was longer than what is kept.
    pub const fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.truncated {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Everything that can be wrong with a configuration; `Display` names the
/// problem, the offending value and what would be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigError {
    /// Frame size outside 60..=16384.
    SizeOutOfRange(u64),
    /// Packet count outside 1..=10_000_000.
    CountOutOfRange(u64),
    /// Interval above 10 s.
    IntervalTooLarge(u64),
    /// Burst length outside 1..=4096.
    BurstOutOfRange(u64),
    /// A value was empty (`size=`).
    Empty(Field),
    /// A value was negative (`interval=-5`).
    Negative {
        /// Which setting.
        field: Field,
        /// The offending text.
        text: Text,
    },
    /// A value was not a number (`count=abc`).
    NotANumber {
        /// Which setting.
        field: Field,
        /// The offending text.
        text: Text,
    },
    /// A number does not even fit in 64 bits.
    Overflow {
        /// Which setting.
        field: Field,
        /// The offending text.
        text: Text,
    },
    /// An interval with an unknown unit suffix (`interval=5h`).
    UnknownUnit(Text),
    /// A pattern other than fixed, poisson, burst:K.
    UnknownPattern(Text),
    /// A packet kind other than udp, raw.
    UnknownKind(Text),
    /// A moderation other than none, napi, itr:NS.
    UnknownModeration(Text),
    /// A delivery other than app, driver.
    UnknownDelivery(Text),
    /// An ITR interval that is not a multiple of 256 ns in 256..=16_776_960.
    ItrOutOfRange(u64),
    /// A key other than size, count, interval, pattern, kind, seed.
    UnknownKey(Text),
    /// An argument without `=`.
    NotKeyValue(Text),
    /// The same key given twice on one line (ambiguous: refuse, don't guess).
    DuplicateKey(Text),
    /// A caller-provided frame buffer cannot hold the frame.
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes the buffer has.
        got: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::SizeOutOfRange(v) => write!(
                f,
                "frame size {v} out of range: must be {MIN_SIZE}..={MAX_SIZE} bytes (Ethernet frame without FCS)"
            ),
            ConfigError::CountOutOfRange(v) => {
                write!(f, "packet count {v} out of range: must be 1..={MAX_COUNT}")
            }
            ConfigError::IntervalTooLarge(v) => write!(
                f,
                "interval {v} ns is absurd: at most {MAX_INTERVAL_NS} ns (10 s) between packets"
            ),
            ConfigError::BurstOutOfRange(v) => {
                write!(f, "burst length {v} out of range: must be 1..={MAX_BURST}")
            }
            ConfigError::Empty(field) => write!(f, "{field}: empty value"),
            ConfigError::Negative { field, text } => {
                write!(f, "{field}: negative value \"{text}\" not allowed")
            }
            ConfigError::NotANumber { field, text } => {
                write!(f, "{field}: \"{text}\" is not a number")?;
                if *field == Field::Interval {
                    f.write_str(" (expected digits with an optional unit: ns, us, ms, s)")?;
                }
                Ok(())
            }
            ConfigError::Overflow { field, text } => {
                write!(f, "{field}: \"{text}\" is too large")
            }
            ConfigError::UnknownUnit(text) => write!(
                f,
                "interval: unknown unit in \"{text}\" (use ns, us, ms or s; plain numbers are ns)"
            ),
            ConfigError::UnknownPattern(text) => write!(
                f,
                "unknown pattern \"{text}\": expected fixed, poisson or burst:K (K in 1..={MAX_BURST})"
            ),
            ConfigError::UnknownKind(text) => {
                write!(f, "unknown packet kind \"{text}\": expected udp or raw")
            }
            ConfigError::UnknownModeration(text) => write!(
                f,
                "unknown moderation \"{text}\": expected none, napi or itr:NS (NS a multiple of {ITR_UNIT_NS} ns up to {MAX_ITR_NS})"
            ),
            ConfigError::UnknownDelivery(text) => {
                write!(f, "unknown delivery \"{text}\": expected app or driver")
            }
            ConfigError::ItrOutOfRange(ns) => write!(
                f,
                "itr: {ns} ns is not a multiple of {ITR_UNIT_NS} ns in {ITR_UNIT_NS}..={MAX_ITR_NS} (the e1000's ITR register)"
            ),
            ConfigError::UnknownKey(text) => write!(
                f,
                "unknown key \"{text}\": expected size, count, interval, pattern, kind, seed, moderation or deliver"
            ),
            ConfigError::NotKeyValue(text) => {
                write!(f, "argument \"{text}\" is not key=value")
            }
            ConfigError::DuplicateKey(text) => write!(f, "key \"{text}\" given more than once"),
            ConfigError::BufferTooSmall { needed, got } => write!(
                f,
                "frame buffer of {got} bytes is too small for a {needed}-byte frame"
            ),
        }
    }
}

impl core::error::Error for ConfigError {}

/// One generator run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GenConfig {
    /// Frame size in bytes, without FCS (60..=16384).
    pub size: u32,
    /// Number of packets (1..=10_000_000).
    pub count: u32,
    /// Mean interval between packets in ns (0 = back to back, at most 10 s).
    pub interval_ns: u64,
    /// How send times are spread.
    pub pattern: Pattern,
    /// Frame kind.
    pub kind: PacketKind,
    /// Seed for the schedule and the payload body; same seed, same run.
    pub seed: u64,
    /// How the target's driver takes the NIC's interrupts.
    pub moderation: Moderation,
    /// Where the target takes each frame.
    pub deliver: Delivery,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            size: DEFAULT_SIZE,
            count: DEFAULT_COUNT,
            interval_ns: DEFAULT_INTERVAL_NS,
            pattern: Pattern::Fixed,
            kind: PacketKind::Udp,
            seed: DEFAULT_SEED,
            moderation: Moderation::None,
            deliver: Delivery::App,
        }
    }
}

impl GenConfig {
    /// Checks every field's range; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_size(u64::from(self.size))?;
        check_count(u64::from(self.count))?;
        check_interval(self.interval_ns)?;
        if let Pattern::Burst(k) = self.pattern
            && !(1..=MAX_BURST).contains(&k)
        {
            return Err(ConfigError::BurstOutOfRange(u64::from(k)));
        }
        Ok(())
    }

    /// Parses shell arguments like
    /// `size=1500 count=5000 interval=2000 pattern=poisson seed=7 kind=udp`.
    ///
    /// Keys may come in any order and may be omitted (defaults: size 1514,
    /// count 1000, interval 10000 ns, pattern fixed, kind udp, seed 1). Each
    /// key at most once; unknown keys are errors naming the key. The result
    /// is validated.
    pub fn from_kv(line: &str) -> Result<GenConfig, ConfigError> {
        const KEYS: [&str; 8] = [
            "size",
            "count",
            "interval",
            "pattern",
            "kind",
            "seed",
            "moderation",
            "deliver",
        ];
        let mut cfg = GenConfig::default();
        let mut seen = [false; KEYS.len()];
        for arg in line.split_ascii_whitespace() {
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| ConfigError::NotKeyValue(Text::new(arg)))?;
            // `interval_ns` is accepted as an alias because the field is called that.
            let canonical = if key == "interval_ns" {
                "interval"
            } else {
                key
            };
            let slot = KEYS
                .iter()
                .position(|k| *k == canonical)
                .ok_or_else(|| ConfigError::UnknownKey(Text::new(key)))?;
            if core::mem::replace(&mut seen[slot], true) {
                return Err(ConfigError::DuplicateKey(Text::new(canonical)));
            }
            match canonical {
                "size" => cfg.size = parse_size(value)?,
                "count" => cfg.count = parse_count(value)?,
                "interval" => cfg.interval_ns = parse_interval_ns(value)?,
                "pattern" => cfg.pattern = value.parse()?,
                "kind" => cfg.kind = value.parse()?,
                "moderation" => cfg.moderation = value.parse()?,
                "deliver" => cfg.deliver = value.parse()?,
                _ => cfg.seed = parse_seed(value)?,
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Nominal run length: `count × interval` (the schedule's mean span).
    pub const fn nominal_duration_ns(&self) -> u64 {
        (self.count as u64).saturating_mul(self.interval_ns)
    }
}

/// Prints the config as a `from_kv` line (round-trips).
impl fmt::Display for GenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "size={} count={} interval={} pattern={} kind={} seed={} moderation={} deliver={}",
            self.size,
            self.count,
            self.interval_ns,
            self.pattern,
            self.kind,
            self.seed,
            self.moderation,
            self.deliver
        )
    }
}

fn check_size(v: u64) -> Result<u32, ConfigError> {
    if (u64::from(MIN_SIZE)..=u64::from(MAX_SIZE)).contains(&v) {
        Ok(v as u32)
    } else {
        Err(ConfigError::SizeOutOfRange(v))
    }
}

fn check_count(v: u64) -> Result<u32, ConfigError> {
    if (1..=u64::from(MAX_COUNT)).contains(&v) {
        Ok(v as u32)
    } else {
        Err(ConfigError::CountOutOfRange(v))
    }
}

fn check_interval(v: u64) -> Result<u64, ConfigError> {
    if v <= MAX_INTERVAL_NS {
        Ok(v)
    } else {
        Err(ConfigError::IntervalTooLarge(v))
    }
}

/// Parses a frame size: decimal digits (`_` separators allowed), 60..=16384.
pub fn parse_size(s: &str) -> Result<u32, ConfigError> {
    check_size(parse_u64(Field::Size, s)?)
}

/// Parses a packet count: decimal digits (`_` separators allowed), 1..=10_000_000.
pub fn parse_count(s: &str) -> Result<u32, ConfigError> {
    check_count(parse_u64(Field::Count, s)?)
}

/// Parses an interval in ns, at most 10 s. Plain digits are nanoseconds; a
/// unit suffix `ns`, `us`, `ms` or `s` is accepted (`2us` = 2000).
pub fn parse_interval_ns(s: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '_' || c == '-' || c == '+'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let scale: u64 = match unit {
        "" | "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        // Letters right after digits look like a unit; anything else
        // (`1.5`, `abc`, `12x!`) is plain garbage.
        _ if !number.is_empty() && unit.bytes().all(|b| b.is_ascii_alphabetic()) => {
            return Err(ConfigError::UnknownUnit(Text::new(t)));
        }
        _ => {
            return Err(ConfigError::NotANumber {
                field: Field::Interval,
                text: Text::new(t),
            });
        }
    };
    let n = parse_u64(Field::Interval, number)?;
    let ns = n.checked_mul(scale).ok_or(ConfigError::Overflow {
        field: Field::Interval,
        text: Text::new(t),
    })?;
    check_interval(ns)
}

/// Parses a seed: decimal, or hexadecimal with a `0x` prefix; any `u64`.
pub fn parse_seed(s: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => parse_digits(Field::Seed, t, hex, 16),
        None => parse_u64(Field::Seed, t),
    }
}

/// Strict unsigned decimal parsing with errors that say *why* a value was
/// refused (empty / negative / garbage / overflow), which `u64::from_str`
/// lumps together.
fn parse_u64(field: Field, s: &str) -> Result<u64, ConfigError> {
    let t = s.trim();
    parse_digits(field, t, t, 10)
}

fn parse_digits(field: Field, whole: &str, digits: &str, radix: u32) -> Result<u64, ConfigError> {
    if whole.is_empty() {
        return Err(ConfigError::Empty(field));
    }
    if let Some(rest) = whole.strip_prefix('-')
        && rest.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(ConfigError::Negative {
            field,
            text: Text::new(whole),
        });
    }
    let garbage = || ConfigError::NotANumber {
        field,
        text: Text::new(whole),
    };
    // A separator may not lead (`_5`) and there must be at least one digit.
    if digits.is_empty() || digits.starts_with('_') {
        return Err(garbage());
    }
    let mut value: u64 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(radix).ok_or_else(garbage)?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(ConfigError::Overflow {
                field,
                text: Text::new(whole),
            })?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn text_truncates_at_char_boundary() {
        let long = "ééééééééééééééééééééé"; // 2 bytes each, 42 bytes
        let t = Text::new(long);
        assert!(t.is_truncated());
        assert_eq!(t.as_str().len(), 32);
        assert!(t.to_string().ends_with('…'));
        assert_eq!(Text::new("abc").to_string(), "abc");
    }

    #[test]
    fn digits_with_separators() {
        assert_eq!(parse_u64(Field::Count, "10_000_000"), Ok(10_000_000));
        assert!(parse_u64(Field::Count, "_1").is_err());
        assert!(parse_u64(Field::Count, "+1").is_err());
        assert_eq!(
            parse_u64(Field::Count, "99999999999999999999"),
            Err(ConfigError::Overflow {
                field: Field::Count,
                text: Text::new("99999999999999999999")
            })
        );
    }
}
