//! Config parsing and validation: every refusal names the problem and the value.

use mint_traffic::config::{
    self, ConfigError, Field, GenConfig, PacketKind, Pattern, parse_count, parse_interval_ns,
    parse_seed, parse_size,
};

fn msg(e: ConfigError) -> String {
    e.to_string()
}

#[test]
fn defaults() {
    let d = GenConfig::default();
    assert_eq!(
        (d.size, d.count, d.interval_ns, d.pattern, d.kind, d.seed),
        (1514, 1000, 10_000, Pattern::Fixed, PacketKind::Udp, 1)
    );
    assert_eq!(d.validate(), Ok(()));
    assert_eq!(GenConfig::from_kv(""), Ok(d));
    assert_eq!(GenConfig::from_kv("   "), Ok(d));
}

#[test]
fn size_bounds() {
    for bad in [0u32, 59, 16385] {
        let cfg = GenConfig {
            size: bad,
            ..GenConfig::default()
        };
        assert_eq!(cfg.validate(), Err(ConfigError::SizeOutOfRange(bad.into())));
        let e = parse_size(&bad.to_string()).unwrap_err();
        assert_eq!(e, ConfigError::SizeOutOfRange(bad.into()));
        let m = msg(e);
        assert!(
            m.contains(&bad.to_string()) && m.contains("60..=16384"),
            "{m}"
        );
    }
    for good in [60u32, 1514, 16384] {
        assert_eq!(parse_size(&good.to_string()), Ok(good));
        assert_eq!(
            GenConfig {
                size: good,
                ..GenConfig::default()
            }
            .validate(),
            Ok(())
        );
    }
    // Bigger than u32 is still reported with its real value.
    assert_eq!(
        parse_size("5000000000"),
        Err(ConfigError::SizeOutOfRange(5_000_000_000))
    );
}

#[test]
fn count_bounds() {
    assert_eq!(parse_count("0"), Err(ConfigError::CountOutOfRange(0)));
    assert_eq!(
        GenConfig {
            count: 0,
            ..GenConfig::default()
        }
        .validate(),
        Err(ConfigError::CountOutOfRange(0))
    );
    assert_eq!(
        parse_count("10000001"),
        Err(ConfigError::CountOutOfRange(10_000_001))
    );
    assert_eq!(parse_count("1"), Ok(1));
    assert_eq!(parse_count("10_000_000"), Ok(10_000_000));
    assert!(msg(ConfigError::CountOutOfRange(0)).contains("count 0"));
}

#[test]
fn interval_parsing() {
    assert_eq!(parse_interval_ns("0"), Ok(0));
    assert_eq!(parse_interval_ns("2000"), Ok(2000));
    assert_eq!(parse_interval_ns("2000ns"), Ok(2000));
    assert_eq!(parse_interval_ns("2us"), Ok(2000));
    assert_eq!(parse_interval_ns("3ms"), Ok(3_000_000));
    assert_eq!(parse_interval_ns("10s"), Ok(10_000_000_000));
    assert_eq!(parse_interval_ns("10000000000"), Ok(10_000_000_000));

    let neg = parse_interval_ns("-5").unwrap_err();
    assert!(matches!(
        neg,
        ConfigError::Negative {
            field: Field::Interval,
            ..
        }
    ));
    let m = msg(neg);
    assert!(m.contains("negative") && m.contains("-5"), "{m}");

    let abc = parse_interval_ns("abc").unwrap_err();
    assert!(matches!(
        abc,
        ConfigError::NotANumber {
            field: Field::Interval,
            ..
        }
    ));
    assert!(msg(abc).contains("\"abc\""));

    let huge = parse_interval_ns("100000000000").unwrap_err(); // 10^11
    assert_eq!(huge, ConfigError::IntervalTooLarge(100_000_000_000));
    let m = msg(huge);
    assert!(m.contains("100000000000") && m.contains("absurd"), "{m}");
    assert_eq!(
        parse_interval_ns("11s"),
        Err(ConfigError::IntervalTooLarge(11_000_000_000))
    );
    assert_eq!(
        GenConfig {
            interval_ns: 100_000_000_000,
            ..GenConfig::default()
        }
        .validate(),
        Err(ConfigError::IntervalTooLarge(100_000_000_000))
    );

    assert!(matches!(
        parse_interval_ns("5h"),
        Err(ConfigError::UnknownUnit(_))
    ));
    assert!(matches!(
        parse_interval_ns("1.5ms"),
        Err(ConfigError::NotANumber { .. })
    ));
    assert_eq!(
        parse_interval_ns(""),
        Err(ConfigError::Empty(Field::Interval))
    );
    assert!(matches!(
        parse_interval_ns("99999999999999999999"),
        Err(ConfigError::Overflow { .. })
    ));
    assert!(matches!(
        parse_interval_ns("99999999999s"),
        Err(ConfigError::Overflow { .. })
    ));
}

#[test]
fn garbage_and_negatives_everywhere() {
    assert!(matches!(
        parse_size("-60"),
        Err(ConfigError::Negative {
            field: Field::Size,
            ..
        })
    ));
    assert!(matches!(
        parse_count("-1"),
        Err(ConfigError::Negative {
            field: Field::Count,
            ..
        })
    ));
    assert!(matches!(
        parse_seed("-7"),
        Err(ConfigError::Negative {
            field: Field::Seed,
            ..
        })
    ));
    assert!(matches!(
        parse_size("1k"),
        Err(ConfigError::NotANumber { .. })
    ));
    assert!(matches!(
        parse_count("1e3"),
        Err(ConfigError::NotANumber { .. })
    ));
    assert!(matches!(
        parse_count(" "),
        Err(ConfigError::Empty(Field::Count))
    ));
    assert_eq!(parse_seed("0xff"), Ok(255));
    assert_eq!(parse_seed("18446744073709551615"), Ok(u64::MAX));
    assert!(matches!(
        parse_seed("18446744073709551616"),
        Err(ConfigError::Overflow { .. })
    ));
    assert!(matches!(
        parse_seed("0xg"),
        Err(ConfigError::NotANumber { .. })
    ));
}

#[test]
fn pattern_parsing() {
    assert_eq!("fixed".parse(), Ok(Pattern::Fixed));
    assert_eq!("poisson".parse(), Ok(Pattern::Poisson));
    assert_eq!("burst:1".parse(), Ok(Pattern::Burst(1)));
    assert_eq!("burst:4096".parse(), Ok(Pattern::Burst(4096)));
    assert_eq!(
        "burst:0".parse::<Pattern>(),
        Err(ConfigError::BurstOutOfRange(0))
    );
    assert_eq!(
        "burst:4097".parse::<Pattern>(),
        Err(ConfigError::BurstOutOfRange(4097))
    );
    assert_eq!(
        "burst".parse::<Pattern>(),
        Err(ConfigError::Empty(Field::Burst))
    );
    assert_eq!(
        "burst:".parse::<Pattern>(),
        Err(ConfigError::Empty(Field::Burst))
    );
    assert!(matches!(
        "burst:x".parse::<Pattern>(),
        Err(ConfigError::NotANumber { .. })
    ));
    assert!(matches!(
        "burst:-3".parse::<Pattern>(),
        Err(ConfigError::Negative { .. })
    ));
    let e = "uniform".parse::<Pattern>().unwrap_err();
    assert!(matches!(e, ConfigError::UnknownPattern(_)));
    assert!(msg(e).contains("\"uniform\""));
    assert!(matches!(
        "bursty:3".parse::<Pattern>(),
        Err(ConfigError::UnknownPattern(_))
    ));
    for p in [Pattern::Fixed, Pattern::Poisson, Pattern::Burst(17)] {
        assert_eq!(p.to_string().parse(), Ok(p));
    }
    assert_eq!(
        GenConfig {
            pattern: Pattern::Burst(0),
            ..GenConfig::default()
        }
        .validate(),
        Err(ConfigError::BurstOutOfRange(0))
    );
}

#[test]
fn kind_parsing() {
    assert_eq!("udp".parse(), Ok(PacketKind::Udp));
    assert_eq!("raw".parse(), Ok(PacketKind::Raw));
    assert_eq!("UDP".parse(), Ok(PacketKind::Udp));
    let e = "tcp".parse::<PacketKind>().unwrap_err();
    assert!(msg(e).contains("\"tcp\""));
}

#[test]
fn from_kv_full_line() {
    let cfg =
        GenConfig::from_kv("size=1500 count=5000 interval=2000 pattern=poisson seed=7 kind=udp")
            .unwrap();
    assert_eq!(
        cfg,
        GenConfig {
            size: 1500,
            count: 5000,
            interval_ns: 2000,
            pattern: Pattern::Poisson,
            kind: PacketKind::Udp,
            seed: 7,
            moderation: Default::default(),
            deliver: Default::default(),
        }
    );
    // Order-free, partial, extra whitespace, units, alias.
    let cfg = GenConfig::from_kv("  kind=raw\tpattern=burst:8   interval_ns=1us ").unwrap();
    assert_eq!(
        (cfg.kind, cfg.pattern, cfg.interval_ns),
        (PacketKind::Raw, Pattern::Burst(8), 1000)
    );
    assert_eq!((cfg.size, cfg.count, cfg.seed), (1514, 1000, 1));
    // Display round-trips.
    assert_eq!(GenConfig::from_kv(&cfg.to_string()), Ok(cfg));
}

#[test]
fn from_kv_errors() {
    let e = GenConfig::from_kv("size=1500 colour=blue").unwrap_err();
    assert!(matches!(e, ConfigError::UnknownKey(_)));
    assert!(msg(e).contains("\"colour\""), "{}", msg(e));
    let e = GenConfig::from_kv("size").unwrap_err();
    assert!(matches!(e, ConfigError::NotKeyValue(_)));
    let e = GenConfig::from_kv("size=100 size=200").unwrap_err();
    assert!(matches!(e, ConfigError::DuplicateKey(_)));
    assert_eq!(
        GenConfig::from_kv("size=59"),
        Err(ConfigError::SizeOutOfRange(59))
    );
    assert_eq!(
        GenConfig::from_kv("count=0"),
        Err(ConfigError::CountOutOfRange(0))
    );
    assert!(matches!(
        GenConfig::from_kv("interval=-5"),
        Err(ConfigError::Negative {
            field: Field::Interval,
            ..
        })
    ));
    assert_eq!(
        GenConfig::from_kv("size="),
        Err(ConfigError::Empty(Field::Size))
    );
    assert!(matches!(
        GenConfig::from_kv("pattern=burst:0"),
        Err(ConfigError::BurstOutOfRange(0))
    ));
}

#[test]
fn long_garbage_is_truncated_in_messages() {
    let long = "x".repeat(200);
    let e = GenConfig::from_kv(&format!("{long}=1")).unwrap_err();
    let m = msg(e);
    assert!(m.contains('…') && m.len() < 150, "{m}");
    // Still a Copy value with no borrowed input.
    let _copy: ConfigError = e;
}

#[test]
fn every_error_displays_something() {
    let t = config::Text::new("v");
    let all = [
        ConfigError::SizeOutOfRange(1),
        ConfigError::CountOutOfRange(0),
        ConfigError::IntervalTooLarge(u64::MAX),
        ConfigError::BurstOutOfRange(0),
        ConfigError::Empty(Field::Seed),
        ConfigError::Negative {
            field: Field::Size,
            text: t,
        },
        ConfigError::NotANumber {
            field: Field::Count,
            text: t,
        },
        ConfigError::Overflow {
            field: Field::Seed,
            text: t,
        },
        ConfigError::UnknownUnit(t),
        ConfigError::UnknownPattern(t),
        ConfigError::UnknownKind(t),
        ConfigError::UnknownKey(t),
        ConfigError::NotKeyValue(t),
        ConfigError::DuplicateKey(t),
        ConfigError::BufferTooSmall {
            needed: 60,
            got: 10,
        },
    ];
    for e in all {
        assert!(!msg(e).is_empty());
    }
}

#[test]
fn nominal_duration() {
    let cfg = GenConfig {
        count: 10_000_000,
        interval_ns: 10_000_000_000,
        ..GenConfig::default()
    };
    assert_eq!(cfg.nominal_duration_ns(), 100_000_000_000_000_000);
}

#[test]
fn moderation_and_delivery_parse_print_and_refuse() {
    use mint_traffic::{Delivery, Moderation};
    let cfg = GenConfig::from_kv("moderation=itr:4096 deliver=driver").expect("valid");
    assert_eq!(cfg.moderation, Moderation::Itr { ns: 4096 });
    assert_eq!(cfg.moderation.itr_register(), 16);
    assert_eq!(cfg.deliver, Delivery::Driver);
    // Display round-trips, with units accepted on the way in.
    assert_eq!(GenConfig::from_kv(&cfg.to_string()), Ok(cfg));
    let napi = GenConfig::from_kv("moderation=napi").expect("valid");
    assert_eq!(
        (napi.moderation, napi.deliver),
        (Moderation::Napi, Delivery::App)
    );
    // 8 us is not a whole number of the register's 256 ns units.
    assert_eq!(
        GenConfig::from_kv("moderation=itr:8us"),
        Err(mint_traffic::ConfigError::ItrOutOfRange(8000))
    );
    assert_eq!(
        GenConfig::from_kv("moderation=itr:8192ns").map(|c| c.moderation),
        Ok(Moderation::Itr { ns: 8192 })
    );
    for (bad, says) in [
        ("moderation=itr:100", "multiple of 256"),
        ("moderation=itr:0", "multiple of 256"),
        ("moderation=fast", "unknown moderation"),
        ("deliver=nowhere", "unknown delivery"),
    ] {
        let e = GenConfig::from_kv(bad).expect_err(bad).to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
