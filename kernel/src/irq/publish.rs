//! What node 0 publishes of the layer for every node: routes, device
//! rows and counters, every pin's entry, in the shared header under one
//! sequence lock (node 0 its only writer), and the readers' side.

use super::*;

/// The layer generation last published.
static PUBLISHED: AtomicU64 = AtomicU64::new(u64::MAX);

/// Node 0: copies the routing table and the management table's rows into
/// the shared header when either changed (a sequence lock; node 0 is its
/// only writer, every node reads it: `published_route`,
/// `published_device`).
pub(super) fn publish(layer: &IrqLayer, hw: &mut IoApicMmio) {
    use mint_abi::shared::{
        PUBLISHED_DEVICES, PUBLISHED_ROUTES, PublishedDevice, PublishedRoute, pack_device,
        pack_route,
    };
    let generation = layer.routes().generation();
    let mut rows = [0u64; PUBLISHED_DEVICES];
    let mut k = 0;
    for (row, d) in rows.iter_mut().zip(layer.devices()) {
        *row = pack_device(PublishedDevice {
            device: d.id.0 as u8,
            owner: d.owner.map(|o| o.0),
            state: match d.state {
                mint_irq::DeviceState::Declared => 0,
                mint_irq::DeviceState::Attached => 1,
                mint_irq::DeviceState::HandingOver => 2,
                mint_irq::DeviceState::Orphaned => 3,
            },
            vector: d.vector.map(|v| v.0),
            gsi: d.binding.map(|b| b.gsi().0 as u16),
            masked: d.masked,
        });
        k += 1;
    }
    // A device's row or counters change without a route change too (a
    // mask, a hand-over starting, a refusal): publish when anything moved.
    let mut counters = [0u64; PUBLISHED_DEVICES];
    for (c, d) in counters.iter_mut().zip(layer.devices()) {
        let k = d.counters;
        *c = k.refused ^ k.handovers << 16 ^ k.crash_resets << 32 ^ k.storm_pauses << 48;
    }
    let same_devices = {
        let mut seen = PUBLISHED_DEVICES_SEEN.lock();
        let same = *seen == (rows, counters);
        *seen = (rows, counters);
        same
    };
    if PUBLISHED.swap(generation, Ordering::Relaxed) == generation && same_devices {
        return;
    }
    let p = &crate::shared::header().routes;
    let seq = p.generation.load(Ordering::Relaxed);
    p.generation.store(seq | 1, Ordering::Relaxed);
    core::sync::atomic::fence(Ordering::Release);
    let mut n = 0;
    for r in layer.routes().iter().take(PUBLISHED_ROUTES) {
        p.entries[n].store(
            pack_route(PublishedRoute {
                gsi: r.gsi.0,
                device: r.device.0 as u8,
                destination: r.destination.0 as u8,
                vector: r.vector.0,
            }),
            Ordering::Relaxed,
        );
        n += 1;
    }
    p.count.store(n as u32, Ordering::Relaxed);
    for (slot, row) in p.devices.iter().zip(rows) {
        slot.store(row, Ordering::Relaxed);
    }
    p.device_count.store(k as u32, Ordering::Relaxed);
    for (slot, d) in p.device_counters.iter().zip(layer.devices()) {
        let c = d.counters;
        for (word, v) in slot
            .iter()
            .zip([c.refused, c.handovers, c.crash_resets, c.storm_pauses])
        {
            word.store(v.min(u64::from(u32::MAX)) as u32, Ordering::Relaxed);
        }
    }
    let pins = usize::from(layer.config().pins).min(PUBLISHED_ROUTES);
    for (pin, slot) in p.pins.iter().enumerate().take(pins) {
        slot.store(
            hw.read_entry(mint_irq::Pin(pin as u8)).to_raw(),
            Ordering::Relaxed,
        );
    }
    p.pin_count.store(pins as u32, Ordering::Relaxed);
    p.generation.store((seq | 1) + 1, Ordering::Release);
}

/// The device rows and a digest of their counters `publish` last wrote.
type PublishedRows = (
    [u64; mint_abi::shared::PUBLISHED_DEVICES],
    [u64; mint_abi::shared::PUBLISHED_DEVICES],
);
static PUBLISHED_DEVICES_SEEN: spin::Mutex<PublishedRows> = spin::Mutex::new((
    [0; mint_abi::shared::PUBLISHED_DEVICES],
    [0; mint_abi::shared::PUBLISHED_DEVICES],
));

/// Any node: `device`'s row as node 0 last published it.
pub fn published_device(device: DeviceId) -> Option<mint_abi::shared::PublishedDevice> {
    use mint_abi::shared::{PUBLISHED_DEVICES, unpack_device};
    let p = &crate::shared::header().routes;
    let (_, found) = mint_irq::route::read_consistent(
        || p.generation.load(Ordering::Acquire),
        || {
            let n = (p.device_count.load(Ordering::Relaxed) as usize).min(PUBLISHED_DEVICES);
            let found = p.devices[..n]
                .iter()
                .map(|e| unpack_device(e.load(Ordering::Relaxed)))
                .find(|d| u16::from(d.device) == device.0);
            core::sync::atomic::fence(Ordering::Acquire);
            found
        },
        64,
    )?;
    found
}

/// Any node: the published route of `device`, read consistently (a
/// sequence lock against node 0's `publish`); `None` when it has none or
/// every try raced a rewrite.
pub fn published_route(device: DeviceId) -> Option<mint_abi::shared::PublishedRoute> {
    use mint_abi::shared::{PUBLISHED_ROUTES, unpack_route};
    let p = &crate::shared::header().routes;
    let (_, found) = mint_irq::route::read_consistent(
        || p.generation.load(Ordering::Acquire),
        || {
            let n = (p.count.load(Ordering::Relaxed) as usize).min(PUBLISHED_ROUTES);
            let found = p.entries[..n]
                .iter()
                .map(|e| unpack_route(e.load(Ordering::Relaxed)))
                .find(|r| u16::from(r.device) == device.0);
            core::sync::atomic::fence(Ordering::Acquire);
            found
        },
        64,
    )?;
    found
}

/// The layer's state as any node reads it from the shared header (the
/// sequence-lock reader other nodes use), as JSON: `null` when every try
/// raced a rewrite.
pub fn published_json(s: &mut String) {
    use mint_abi::shared::{PUBLISHED_DEVICES, PUBLISHED_ROUTES, unpack_device, unpack_route};
    let p = &crate::shared::header().routes;
    let read = mint_irq::route::read_consistent(
        || p.generation.load(Ordering::Acquire),
        || {
            let mut out = String::new();
            let n = (p.count.load(Ordering::Relaxed) as usize).min(PUBLISHED_ROUTES);
            out.push_str("\"routes\":[");
            for (i, e) in p.entries[..n].iter().enumerate() {
                let r = unpack_route(e.load(Ordering::Relaxed));
                let _ = write!(
                    out,
                    "{}{{\"gsi\":{},\"device\":\"nic{}\",\"destination_apic\":{},\"vector\":{}}}",
                    if i > 0 { "," } else { "" },
                    r.gsi,
                    r.device,
                    r.destination,
                    r.vector
                );
            }
            out.push_str("],\"devices\":[");
            let k = (p.device_count.load(Ordering::Relaxed) as usize).min(PUBLISHED_DEVICES);
            for i in 0..k {
                let d = unpack_device(p.devices[i].load(Ordering::Relaxed));
                let c = &p.device_counters[i];
                let opt = |v: Option<u8>| v.map_or(String::from("null"), |v| alloc::format!("{v}"));
                let _ = write!(
                    out,
                    "{}{{\"device\":\"nic{}\",\"owner\":{},\"state\":{},\"vector\":{},\"gsi\":{},\"masked\":{},\"refused\":{},\"handovers\":{},\"crash_resets\":{},\"storm_pauses\":{}}}",
                    if i > 0 { "," } else { "" },
                    d.device,
                    opt(d.owner),
                    d.state,
                    opt(d.vector),
                    d.gsi
                        .map_or(String::from("null"), |g| alloc::format!("{g}")),
                    d.masked,
                    c[0].load(Ordering::Relaxed),
                    c[1].load(Ordering::Relaxed),
                    c[2].load(Ordering::Relaxed),
                    c[3].load(Ordering::Relaxed),
                );
            }
            out.push_str("],\"pins\":[");
            let pins = (p.pin_count.load(Ordering::Relaxed) as usize).min(PUBLISHED_ROUTES);
            for (i, e) in p.pins[..pins].iter().enumerate() {
                let _ = write!(
                    out,
                    "{}{}",
                    if i > 0 { "," } else { "" },
                    e.load(Ordering::Relaxed)
                );
            }
            out.push(']');
            core::sync::atomic::fence(Ordering::Acquire);
            out
        },
        64,
    );
    match read {
        Some((generation, body)) => {
            let _ = write!(s, "{{\"generation\":{generation},{body}}}");
        }
        None => s.push_str("null"),
    }
}
