//! The layer's part of node 0's report and its shell's `devices` and
//! `route` tables.

use super::*;

/// The layer's state as JSON for node 0's report: the I/O APIC, each
/// device's row and counters, the routing table. `null` on other nodes.
pub fn report_json(s: &mut String) {
    let written = with_layer(|l| {
        let v = l.hw.version();
        let c = l.layer.config();
        let _ = write!(
            s,
            "{{\"ioapic\":{{\"version\":{},\"pins\":{},\"managed_pins\":{},\"eoi_register\":{}}},\"eoi\":\"{}\",\"lapic_directed_eoi\":{{\"advertised\":{},\"sticks\":{}}},\"malformed_requests\":{},\"refused_unknown\":{},\"devices\":[",
            v.version,
            v.pins(),
            c.pins,
            v.has_eoi_register(),
            if c.eoi_register {
                "ioapic_register"
            } else {
                "lapic_broadcast"
            },
            l.facts.directed_eoi.advertised,
            match l.facts.directed_eoi.sticks {
                Some(true) => "true",
                Some(false) => "false",
                None => "null",
            },
            requests::MALFORMED.load(Ordering::Relaxed),
            l.layer.counters().refused_unknown,
        );
        for (i, d) in l.layer.devices().enumerate() {
            let entry = match d.binding {
                Some(Binding::Pin { pin, .. }) => Some(l.hw.read_entry(pin)),
                _ => None,
            };
            let _ = write!(
                s,
                "{}{{\"device\":\"nic{}\",\"owner\":{},\"state\":\"{}\",\"gsi\":{},\"vector\":{},\"trigger\":{},\"masked\":{},\"entry\":{},\"refused\":{},\"misrouted\":{},\"storm_pauses\":{},\"default_owner\":{},\"crash_resets\":{}}}",
                if i > 0 { "," } else { "" },
                d.id.0,
                d.owner
                    .map_or(String::from("null"), |o| alloc::format!("{}", o.0)),
                d.state.as_str(),
                d.binding
                    .map_or(String::from("null"), |b| alloc::format!("{}", b.gsi().0)),
                d.vector
                    .map_or(String::from("null"), |v| alloc::format!("{}", v.0)),
                d.binding.map_or("null", |b| if b.is_level() {
                    "\"level\""
                } else {
                    "\"edge\""
                }),
                d.masked,
                entry.map_or(String::from("null"), entry_json),
                d.counters.refused,
                d.counters.misrouted,
                d.counters.storm_pauses,
                d.default_owner.0,
                d.counters.crash_resets,
            );
        }
        let _ = write!(
            s,
            "],\"generation\":{},\"routes\":[",
            l.layer.routes().generation()
        );
        for (i, r) in l.layer.routes().iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"gsi\":{},\"device\":\"nic{}\",\"destination_apic\":{},\"vector\":{}}}",
                if i > 0 { "," } else { "" },
                r.gsi.0,
                r.device.0,
                r.destination.0,
                r.vector.0
            );
        }
        s.push_str("],\"published\":");
    });
    if written.is_none() {
        s.push_str("null");
    } else {
        published_json(s);
        s.push('}');
    }
}

/// A redirection entry as JSON.
pub fn entry_json(e: RedirectionEntry) -> String {
    alloc::format!(
        "{{\"raw\":{},\"vector\":{},\"destination\":{},\"masked\":{},\"level\":{},\"active_low\":{},\"remote_irr\":{}}}",
        e.to_raw(),
        e.vector.0,
        e.destination,
        e.masked,
        e.trigger == mint_irq::TriggerMode::Level,
        e.polarity == mint_irq::Polarity::ActiveLow,
        e.remote_irr
    )
}

/// The management table for node 0's shell (`devices`).
pub fn devices_table() -> String {
    let mut s = String::from(
        "device  owner  state         gsi  vector  trigger  pin      interrupts  refused  handovers  crash-resets",
    );
    let written = with_layer(|l| {
        for d in l.layer.devices() {
            let pin = match d.binding {
                Some(Binding::Pin { pin, .. }) => {
                    let e = l.hw.read_entry(pin);
                    if e.masked { "masked" } else { "unmasked" }
                }
                Some(Binding::Msi { .. }) => "msi",
                None => "-",
            };
            // Interrupts the owner's handler serviced (its own count).
            let serviced = d.owner.map_or(0, |o| {
                crate::shared::region().real_nic.irq[o.index()]
                    .serviced
                    .load(Ordering::Relaxed)
            });
            let _ = write!(
                s,
                "\nnic{:<4} {:<6} {:<13} {:<4} {:<7} {:<8} {:<8} {:<11} {:<8} {:<10} {}",
                d.id.0,
                d.owner
                    .map_or(String::from("-"), |o| alloc::format!("{}", o.0)),
                d.state.as_str(),
                d.binding
                    .map_or(String::from("-"), |b| alloc::format!("{}", b.gsi().0)),
                d.vector
                    .map_or(String::from("-"), |v| alloc::format!("{:#04x}", v.0)),
                d.binding
                    .map_or("-", |b| if b.is_level() { "level" } else { "edge" }),
                pin,
                serviced,
                d.counters.refused,
                d.counters.handovers,
                d.counters.crash_resets,
            );
        }
    });
    if written.is_none() {
        return String::from("this node does not run the interrupt layer");
    }
    s
}

/// The routing table for node 0's shell (`route`).
pub fn routes_table() -> String {
    with_layer(|l| {
        let mut s = alloc::format!(
            "routing table, generation {}\ngsi  device  destination-apic  vector",
            l.layer.routes().generation()
        );
        for r in l.layer.routes().iter() {
            let _ = write!(
                s,
                "\n{:<4} nic{:<4} {:<17} {:#04x}",
                r.gsi.0, r.device.0, r.destination.0, r.vector.0
            );
        }
        s
    })
    .unwrap_or_else(|| String::from("this node does not run the interrupt layer"))
}
