//! Layer operations another node asks for over the mailbox
//! (`IrqRequest` / `IrqReply`), run by node 0 as the asking node.

use super::*;

/// What an operation did, as the asking node learns it.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    pub reply: Reply,
    /// The layer's error, when node 0 ran it itself (for its console).
    pub error: Option<LayerError>,
}

#[derive(Clone, Copy, Debug)]
pub enum LayerError {
    Register(RegisterError),
    Op(OpError),
}

impl core::fmt::Display for LayerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayerError::Register(e) => write!(f, "{e}"),
            LayerError::Op(e) => write!(f, "{e}"),
        }
    }
}

fn pin_of(layer: &IrqLayer, device: DeviceId, op: Op) -> Option<mint_irq::Pin> {
    match layer.device(device).and_then(|d| d.binding) {
        Some(Binding::Pin { pin, .. }) => Some(pin),
        Some(Binding::Msi { .. }) => None,
        None => match op {
            Op::Register(mint_irq::IrqSource::Gsi { gsi, .. }) => {
                let base = layer.config().gsi_base.0;
                let p = gsi.0.checked_sub(base)?;
                (p < u32::from(layer.config().pins)).then_some(mint_irq::Pin(p as u8))
            }
            _ => None,
        },
    }
}

/// Runs `request` for `by` on node 0's layer.
fn apply(by: NodeId, request: Request) -> Outcome {
    with_layer(|l| {
        let pin = pin_of(&l.layer, request.device, request.op);
        let before = pin.map_or(0, |p| l.hw.read_entry(p).to_raw());
        let result = match request.op {
            Op::Register(source) => l
                .layer
                .register(&mut l.hw, request.device, by, source)
                .map(|_| ())
                .map_err(LayerError::Register),
            Op::Unmask => l
                .layer
                .unmask(&mut l.hw, request.device, by)
                .map_err(LayerError::Op),
            Op::Mask => l
                .layer
                .mask(&mut l.hw, request.device, by)
                .map_err(LayerError::Op),
            Op::Route(apic_id) => l
                .layer
                .route(&mut l.hw, request.device, by, mint_abi::ApicId(apic_id))
                .map(|_| ())
                .map_err(LayerError::Op),
        };
        let pin = pin_of(&l.layer, request.device, request.op);
        let after = pin.map_or(0, |p| l.hw.read_entry(p).to_raw());
        let info = l.layer.device(request.device);
        let status = match result {
            Ok(()) => Status::Ok,
            Err(LayerError::Register(RegisterError::NotOwner(_)))
            | Err(LayerError::Op(OpError::NotOwner(_))) => Status::NotOwner,
            Err(_) => Status::Refused,
        };
        Outcome {
            reply: Reply {
                status,
                vector: info.and_then(|d| d.vector),
                gsi: info.and_then(|d| d.binding).map(|b| b.gsi()),
                before,
                after,
            },
            error: result.err(),
        }
    })
    .unwrap_or(Outcome {
        reply: Reply {
            status: Status::Refused,
            vector: None,
            gsi: None,
            before: 0,
            after: 0,
        },
        error: None,
    })
}

/// Requests refused as malformed (node 0: garbage from a peer).
pub(super) static MALFORMED: AtomicU32 = AtomicU32::new(0);

/// Node 0's mailbox handler: `from` asks for an operation.
pub fn on_request(from: NodeId, msg: Message) {
    let reply = match Request::decode(msg.args) {
        Ok(request) => apply(from, request).reply,
        Err(_) => {
            MALFORMED.fetch_add(1, Ordering::Relaxed);
            Reply {
                status: Status::Malformed,
                vector: None,
                gsi: None,
                before: 0,
                after: 0,
            }
        }
    };
    let _ = node::send(
        from,
        Message::new(MessageKind::IrqReply as u32, msg.seq, reply.encode()),
    );
}

/// The last reply this node got from node 0: its sequence number, then
/// its three arguments (written by this node's mailbox handler).
static REPLY_SEQ: AtomicU32 = AtomicU32::new(0);
static REPLY_ARGS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
pub(super) static NEXT_SEQ: AtomicU32 = AtomicU32::new(1);

/// This node's mailbox handler: node 0 answered.
pub fn on_reply(msg: Message) {
    for (slot, v) in REPLY_ARGS.iter().zip(msg.args) {
        slot.store(v, Ordering::Relaxed);
    }
    REPLY_SEQ.store(msg.seq, Ordering::Release);
}

/// How long a node waits for node 0's answer: node 0 may be busy with
/// interrupts off for a while (a TSC sync with another node takes up to
/// 500 ms, longer rounds on a loaded host), and a request that timed out
/// cannot simply be repeated (a second registration is refused).
const REPLY_TIMEOUT_MS: u64 = 10_000;

/// Asks the layer for `op` on `device` as this node: on node 0 directly,
/// elsewhere over the mailbox (waiting, bounded, for the answer).
pub fn request(device: DeviceId, op: Op) -> Result<Outcome, String> {
    let request = Request { device, op };
    let me = node::me();
    if me == NodeId(0) {
        return Ok(apply(me, request));
    }
    let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    node::send(
        NodeId(0),
        Message::new(MessageKind::IrqRequest as u32, seq, request.encode()),
    )
    .map_err(|e| alloc::format!("asking node 0's interrupt layer: {e}"))?;
    let deadline = cpu::rdtsc() + node::ms_to_ticks(REPLY_TIMEOUT_MS);
    while REPLY_SEQ.load(Ordering::Acquire) != seq {
        if cpu::rdtsc() > deadline {
            return Err(alloc::format!(
                "node 0's interrupt layer did not answer {} within {REPLY_TIMEOUT_MS} ms",
                op.as_str()
            ));
        }
        // The reply comes with an IPI, and the timer wakes this every
        // 10 ms: halt rather than spin (a spinning virtual CPU takes host
        // time node 0's needs to answer).
        if x86_64::instructions::interrupts::are_enabled() {
            x86_64::instructions::hlt();
        } else {
            core::hint::spin_loop();
        }
    }
    let args = [0, 1, 2].map(|i| REPLY_ARGS[i].load(Ordering::Relaxed));
    let reply = Reply::decode(args).ok_or("node 0 sent a reply this node cannot read")?;
    Ok(Outcome { reply, error: None })
}
