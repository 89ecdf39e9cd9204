// SPDX-License-Identifier: GPL-2.0
/*
 * mint's module for a Linux node: makes a stock Linux kernel a node of
 * mint's machine. It
 *  - maps the shared region (mint_shared=PHYS,SIZE and mint_node=K on the
 *    kernel command line, passed here by mint's /init as the parameters
 *    shared_phys, shared_size and node) and refuses to load unless its
 *    header has mint's magic and this module's ABI version;
 *  - takes a vector from Linux for mint's mailbox IPI (0xF0, the vector
 *    mint's own nodes use, is Linux's POSTED_INTR_NESTED system vector)
 *    and publishes it in its node slot, so peers send to that one;
 *  - beats its slot's heartbeat at 100 Hz (an hrtimer) and enters Running,
 *    so node 0's monitor watches it like any node;
 *  - answers Ping with Pong (arguments echoed) and pings every running
 *    peer PINGS_PER_PEER times once, recording the round trips in its slot;
 *  - on Halt from node 0 stops its heartbeat and says Halted;
 *  - on a restart, halt or power-off (a reboot notifier) says Halted and
 *    halts its core, so the kernel never resets the shared machine;
 *  - on a panic marks its slot Crashed with the panic's message and the
 *    oops before it, if any (a die notifier); after its ping round
 *    injects the fault node 0 asks for (`mint boot --fault K:KIND`: panic,
 *    page-fault, invalid-opcode, hang);
 *  - when node 0 made this node the debug NIC's target: `mint0`, a network
 *    device that is that NIC (the e1000 register page and legacy RX ring in
 *    the shared region, programmed and cleaned as mint's Rust driver does),
 *    its interrupt the support node's IPI on a second vector of Linux's
 *    own (published as the slot's nic_vector), NAPI polling, frames into
 *    Linux's stack; every frame it refuses counted in the run accounting.
 *    And /dev/mint: its mmap is the shared region (the target application
 *    in mint's /init reads and writes the run accounting there), its read
 *    the run's interrupt samples, its ioctls MINT_IOC_RESET_SAMPLES,
 *    MINT_IOC_DRIVER_COUNTS (a driver-only run's frames, counted here) and
 *    MINT_IOC_ARM (an abandoned run's frames left in the ring discarded,
 *    the run's delivery, stack or driver only,
 *    the run's interrupt moderation programmed).
 * The layout comes from mint_abi.h, generated from crates/abi by the CLI.
 * The vector cannot be given back (irq_domain_free_irqs is not exported):
 * the module cannot be unloaded.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/io.h>
#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/irqdomain.h>
#include <linux/hrtimer.h>
#include <linux/panic_notifier.h>
#include <linux/workqueue.h>
#include <linux/spinlock.h>
#include <linux/delay.h>
#include <linux/netdevice.h>
#include <linux/etherdevice.h>
#include <linux/ethtool.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/uaccess.h>
#include <linux/reboot.h>
#include <linux/kdebug.h>
#include <asm/apic.h>
#include <asm/hw_irq.h>
#include <asm/irqdomain.h>
#include <asm/msr.h>
#include "mint_abi.h"

static unsigned long shared_phys;
module_param(shared_phys, ulong, 0444);
MODULE_PARM_DESC(shared_phys, "physical address of mint's shared region");
static unsigned long shared_size;
module_param(shared_size, ulong, 0444);
MODULE_PARM_DESC(shared_size, "bytes of mint's shared region");
static unsigned int node = MINT_MAX_NODES;
module_param(node, uint, 0444);
MODULE_PARM_DESC(node, "this node's id");
static unsigned int user_fault;
module_param(user_fault, uint, 0444);
MODULE_PARM_DESC(user_fault, "non-zero: /init injects a fault from user space after loading (the ping round's end is withheld, so node 0 waits for the node until it crashes or halts)");
static unsigned int abi = MINT_ABI_VERSION;
module_param(abi, uint, 0444);
MODULE_PARM_DESC(abi, "the ABI version this module claims (tests of the version check)");

static u8 *shm;
static u32 node_count;
static int virq = -1;
static u8 vector;
static struct hrtimer beat;
static DEFINE_SPINLOCK(send_lock);
static struct work_struct ping_work;
static bool halted;

/* The pong being waited for. */
static u32 pending_peer = MINT_MAX_NODES;
static u32 pending_seq = ~0u;
static u64 reply_tsc;
static bool replied;

static void nic_watch(void);

#define U32(off) ((u32 *)(shm + (off)))
#define U64(off) ((u64 *)(shm + (off)))
#define SLOT(i, field) (MINT_SLOT_OFFSET(i) + MINT_SLOT_##field)

static void set_state(u32 state)
{
	smp_store_release(U32(SLOT(node, STATE)), state);
}

static void write_reason(const char *why)
{
	size_t n = min_t(size_t, strlen(why), MINT_REASON_LEN);

	memcpy(shm + SLOT(node, REASON), why, n);
	smp_store_release(U32(SLOT(node, REASON_LEN)), (u32)n);
}

/* The mailbox from this node to `to`: its producer index and slots are in
 * this node's outboxes, its consumer index in `to`'s slot. */
static size_t outbox(u32 from, u32 to)
{
	return MINT_OUTBOXES_OFFSET(from) + to * MINT_OUTBOX_SIZE;
}

static size_t inbox(u32 to, u32 from)
{
	return SLOT(to, INBOX) + from * MINT_CONSUMER_INDEX_SIZE;
}

/* The peer's published vector if it is a device vector, else 0xF0. */
static u8 vector_of(u32 peer)
{
	u32 v = smp_load_acquire(U32(SLOT(peer, MAILBOX_VECTOR)));

	return (v >= 0x20 && v <= 0xef) ? v : MINT_DEFAULT_MAILBOX_VECTOR;
}

static int send(u32 to, u32 kind, u32 seq, const u64 args[3])
{
	size_t out = outbox(node, to);
	u32 tail, head, apic_id;
	u64 *slot;
	unsigned long flags;
	int ret = 0;

	spin_lock_irqsave(&send_lock, flags);
	tail = READ_ONCE(*U32(out + MINT_OUTBOX_TAIL));
	head = smp_load_acquire(U32(inbox(to, node)));
	if (tail - head >= MINT_MAILBOX_SLOTS) {
		ret = -ENOSPC;
		goto out;
	}
	slot = U64(out + MINT_OUTBOX_SLOTS + (tail % MINT_MAILBOX_SLOTS) * MINT_MESSAGE_SIZE);
	WRITE_ONCE(slot[0], (u64)kind | (u64)seq << 32);
	WRITE_ONCE(slot[1], args[0]);
	WRITE_ONCE(slot[2], args[1]);
	WRITE_ONCE(slot[3], args[2]);
	smp_store_release(U32(out + MINT_OUTBOX_TAIL), tail + 1);
	apic_id = READ_ONCE(*U32(MINT_HEADER_APIC_IDS + to * 4));
	/* The peer is not a CPU of this kernel: a fixed IPI by physical APIC
	 * ID, whatever mode this kernel runs its APIC in. */
	apic->wait_icr_idle();
	apic->icr_write(APIC_DM_FIXED | APIC_DEST_PHYSICAL | vector_of(to), apic_id);
out:
	spin_unlock_irqrestore(&send_lock, flags);
	return ret;
}

static void handle(u32 from, u64 w[4])
{
	u32 kind = (u32)w[0], seq = (u32)(w[0] >> 32);

	switch (kind) {
	case MINT_MSG_PING:
		send(from, MINT_MSG_PONG, seq, &w[1]);
		break;
	case MINT_MSG_PONG:
		if (from == READ_ONCE(pending_peer) && seq == READ_ONCE(pending_seq)) {
			WRITE_ONCE(reply_tsc, rdtsc_ordered());
			smp_store_release(&replied, true);
		}
		break;
	case MINT_MSG_HALT:
		/* Only node 0 may halt a node. */
		if (from == 0 && !halted) {
			halted = true;
			hrtimer_try_to_cancel(&beat);
			pr_info("mint: node %u halted at node 0's request\n", node);
			set_state(MINT_STATE_HALTED);
		}
		break;
	default:
		break;
	}
}

/* Drains every peer's mailbox, each at most one capacity's worth. */
static irqreturn_t on_mailbox(int irq, void *data)
{
	u32 from, n;

	for (from = 0; from < node_count; from++) {
		size_t out = outbox(from, node);
		u32 *headp = U32(inbox(node, from));

		if (from == node)
			continue;
		for (n = 0; n < MINT_MAILBOX_SLOTS; n++) {
			u32 head = READ_ONCE(*headp);
			u32 tail = smp_load_acquire(U32(out + MINT_OUTBOX_TAIL));
			u64 w[4], *slot;
			int i;

			if (tail == head)
				break;
			if (tail - head > MINT_MAILBOX_SLOTS) {
				pr_warn_ratelimited("mint: mailbox from node %u corrupt (head %u tail %u); ignored\n",
						    from, head, tail);
				break;
			}
			slot = U64(out + MINT_OUTBOX_SLOTS + (head % MINT_MAILBOX_SLOTS) * MINT_MESSAGE_SIZE);
			for (i = 0; i < 4; i++)
				w[i] = READ_ONCE(slot[i]);
			smp_store_release(headp, head + 1);
			handle(from, w);
		}
	}
	return IRQ_HANDLED;
}

static enum hrtimer_restart on_beat(struct hrtimer *t)
{
	u64 *hb = U64(SLOT(node, HEARTBEAT));

	if (READ_ONCE(halted))
		return HRTIMER_NORESTART;
	WRITE_ONCE(*hb, READ_ONCE(*hb) + 1);
	nic_watch();
	hrtimer_forward_now(t, ms_to_ktime(1000 / MINT_TIMER_HZ));
	return HRTIMER_RESTART;
}

/* One round trip to `peer` in TSC ticks, 0 when unanswered within 1 s. */
static u64 ping_once(u32 peer, u32 seq)
{
	u64 args[3] = { 0, 0, 0 };
	u64 t0, deadline;

	smp_store_release(&replied, false);
	WRITE_ONCE(pending_peer, peer);
	WRITE_ONCE(pending_seq, seq);
	t0 = rdtsc_ordered();
	args[0] = t0;
	deadline = t0 + READ_ONCE(*U64(MINT_HEADER_TSC_HZ));
	if (send(peer, MINT_MSG_PING, seq, args))
		return 0;
	while (!smp_load_acquire(&replied)) {
		if (rdtsc_ordered() > deadline) {
			WRITE_ONCE(pending_seq, ~0u);
			return 0;
		}
		cpu_relax();
	}
	WRITE_ONCE(pending_seq, ~0u);
	return READ_ONCE(reply_tsc) - t0;
}

/* Read through by the page-fault injection: volatile, so the compiler
 * emits the load of address 0 as written. */
static u64 *volatile nowhere;

/* The fault node 0 asked this node to inject (`mint boot --fault`), in
 * the ping round's work: a panic (the notifier marks the slot Crashed);
 * an oops, made a panic by the node's `oops=panic` (the die notifier puts
 * the oops in the reason); or a hang with interrupts off, which stops the
 * heartbeat too, so node 0's watch declares the node crashed. */
static void inject_fault(u32 kind)
{
	switch (kind) {
	case MINT_FAULT_PANIC:
		panic("mint: fault injected: panic");
	case MINT_FAULT_PAGE_FAULT:
		pr_emerg("mint: fault injected: page fault (a read of address 0)\n");
		(void)READ_ONCE(*nowhere);
		break;
	case MINT_FAULT_INVALID_OPCODE:
		pr_emerg("mint: fault injected: invalid opcode (BUG)\n");
		BUG();
	case MINT_FAULT_HANG:
		pr_emerg("mint: fault injected: hang with interrupts off\n");
		local_irq_disable();
		for (;;)
			cpu_relax();
	default:
		break;
	}
}

/* Pings every running peer PINGS_PER_PEER times, as mint's nodes do. */
static void ping_round(struct work_struct *w)
{
	u32 peer, i;

	for (peer = 0; peer < node_count; peer++) {
		if (peer == node ||
		    smp_load_acquire(U32(SLOT(peer, STATE))) != MINT_STATE_RUNNING)
			continue;
		for (i = 0; i < MINT_PINGS_PER_PEER; i++) {
			u64 rtt = ping_once(peer, i);

			if (!rtt)
				break;
			WRITE_ONCE(*U64(SLOT(node, PING_RTT) + (peer * MINT_PINGS_PER_PEER + i) * 8), rtt);
			smp_store_release(U32(SLOT(node, PING_COUNT) + peer * 4), i + 1);
		}
		pr_info("mint: pinged node %u: %u round trips\n", peer,
			READ_ONCE(*U32(SLOT(node, PING_COUNT) + peer * 4)));
	}
	/* `mint boot --fault K:KIND`: instead of finishing the round. */
	inject_fault(READ_ONCE(*U32(MINT_HEADER_INJECT_FAULT + node * 4)));
	/* A fault /init injects (`mint_user_fault=`): node 0 keeps waiting
	 * for this round's end, and sees the node crash or halt instead. */
	if (user_fault) {
		pr_info("mint: ping round over; its end withheld for the fault /init injects\n");
		return;
	}
	smp_store_release(U32(SLOT(node, PINGS_DONE)), 1);
}

/* The oops a panic follows (`oops=panic`), for the crash's reason. */
static char oops_what[64];

static int on_die(struct notifier_block *nb, unsigned long event, void *data)
{
	struct die_args *args = data;

	if (event == DIE_OOPS && !oops_what[0])
		/* Not args->trapnr: a kernel page fault leaves it 0. */
		snprintf(oops_what, sizeof(oops_what), "%s at %pS",
			 args->str ? args->str : "?", (void *)args->regs->ip);
	return NOTIFY_DONE;
}

static struct notifier_block die_nb = {
	.notifier_call = on_die,
};

static int on_panic(struct notifier_block *nb, unsigned long event, void *msg)
{
	char why[MINT_REASON_LEN];

	if (oops_what[0])
		snprintf(why, sizeof(why), "linux panic: %s (after an oops: %s)",
			 msg ? (const char *)msg : "?", oops_what);
	else
		snprintf(why, sizeof(why), "linux panic: %s", msg ? (const char *)msg : "?");
	write_reason(why);
	set_state(MINT_STATE_CRASHED);
	return NOTIFY_DONE;
}

static struct notifier_block panic_nb = {
	.notifier_call = on_panic,
	.priority = INT_MAX,
};

/* A restart, halt or power-off of this kernel: the machine is not this
 * node's to reset (port 0xCF9, the 8042 or a triple fault would reset
 * every node). Say Halted and halt this core for good, interrupts off. */
static int on_reboot(struct notifier_block *nb, unsigned long event, void *cmd)
{
	char why[MINT_REASON_LEN];

	snprintf(why, sizeof(why), "linux %s: mint's reboot notifier halted the core",
		 event == SYS_RESTART ? "restart" : event == SYS_HALT ? "halt" : "power off");
	WRITE_ONCE(halted, true);
	hrtimer_cancel(&beat);
	write_reason(why);
	set_state(MINT_STATE_HALTED);
	pr_emerg("mint: node %u: %s\n", node, why);
	local_irq_disable();
	for (;;)
		halt();
	return NOTIFY_DONE;
}

static struct notifier_block reboot_nb = {
	.notifier_call = on_reboot,
	/* Last: after every other notifier has had its say. */
	.priority = INT_MIN,
};

/* A vector of Linux's own on this (only) CPU, its interrupt handled by
 * `handler`: for the mailbox IPI and for the debug NIC's. */
static int take_vector(irq_handler_t handler, const char *name, int *irq, u8 *vec)
{
	struct irq_alloc_info info;
	struct irq_cfg *cfg;
	int ret;

	memset(&info, 0, sizeof(info));
	*irq = __irq_domain_alloc_irqs(x86_vector_domain, -1, 1, NUMA_NO_NODE, &info, false, NULL);
	if (*irq < 0)
		return *irq;
	irq_set_handler(*irq, handle_edge_irq);
	ret = request_irq(*irq, handler, 0, name, NULL);
	if (ret)
		return ret;
	cfg = irqd_cfg(irq_get_irq_data(*irq));
	if (!cfg || cfg->vector < 0x20 || cfg->vector > 0xef)
		return -ERANGE;
	*vec = cfg->vector;
	return 0;
}

/* ---- mint0: the debug NIC ----
 * The layout is crates/abi's `DebugNic`; the register semantics those of
 * the e1000 crate's `RegisterFile` over the shared page (ICR read clears
 * with one exchange, IMS/IMC set and clear mask bits); the ring is
 * `RxRing::init`'s: RING_SLOTS legacy descriptors at the start of the DMA
 * window, buffer i at the next page + i * BUFFER_SIZE, RDT kept at
 * next_to_clean - 1. A completed descriptor is trusted for nothing: its
 * buffer address must be the one placed, no error bits, EOP, a length in
 * 1..=BUFFER_SIZE, else it is counted (bad_descriptor) and recycled. */
#define DNIC(off) (MINT_DNIC_OFFSET + (off))
#define NIC_REG(r) U32(DNIC(MINT_DNIC_REGS) + MINT_REG_##r * MINT_DNIC_REG_STRIDE)
#define RUN(off) U64(DNIC(MINT_DNIC_RUN) + (off))
#define RUN_DROP(r) RUN(MINT_RUN_DROPS + MINT_DROP_##r * 8)
#define MINT_IOC_RESET_SAMPLES _IO('M', 1)
#define MINT_IOC_ARM _IO('M', 2)
/* MINT_IOC_ARM's argument: ITR in bits 0-15, driver-only delivery, and
 * the run's payload offset (the headers a driver-only count leaves out). */
#define MINT_ARM_ITR(arg) ((arg) & 0xffff)
#define MINT_ARM_DRIVER (1ul << 16)
#define MINT_ARM_PAYLOAD_OFFSET(arg) (((arg) >> 24) & 0xff)
/* What a driver-only run's frames came to, as struct mint_driver_counts. */
#define MINT_IOC_DRIVER_COUNTS _IOR('M', 3, struct mint_driver_counts)
/* Interrupt samples kept per run (mint's Rust target keeps 1 << 20). */
#define MAX_SAMPLES (1 << 18)

struct mint0 {
	struct net_device *dev;
	struct napi_struct napi;
	u64 *ring;		/* RING_SLOTS x 2 words, in the shared region */
	u64 buffers_phys;
	u16 next_to_clean;
	bool up;
	/* Written by the poll only; read by ndo_get_stats64 (64-bit words). */
	u64 rx_packets, rx_bytes, bad_descriptor, no_skb, tx_dropped;
	/* Interrupts taken (the IPI handler), and the lost-IPI watch (the
	 * heartbeat's hrtimer): both hard interrupt context on one CPU. */
	u64 taken, watch_taken;
	u32 watch_ticks;
	bool watching;
	/* MINT_IOC_ARM: the next poll recycles what completed without
	 * delivering or counting it (an abandoned run's leftovers). */
	bool discard;
	u64 discarded;
	/* A driver-only run (MINT_IOC_ARM): each frame is copied into an skb
	 * as always, counted here and freed, never handed to the stack. */
	bool driver_only;
	u32 payload_offset;
	u64 driver_frames, driver_bytes, driver_last_tsc;
};

struct mint_driver_counts {
	u64 frames;		/* frames the driver consumed this run */
	u64 payload_bytes;	/* their bytes less the run's headers */
	u64 last_tsc;		/* the TSC at the last one */
};

static struct net_device *nic_dev;
static int nic_irq = -1;
static u8 nic_vector;

/* The run's interrupt samples (TSC ticks): handler entry to entry, and
 * the support node's IPI stamp to entry. Appended by the IPI handler,
 * frozen by a read, emptied by MINT_IOC_RESET_SAMPLES. */
static DEFINE_SPINLOCK(samples_lock);
static u64 *intervals, *ipi_latency;
static u32 n_intervals, n_ipi;
static u64 last_entry;
static bool samples_frozen;

static void nic_write(u32 *reg, u32 v)
{
	smp_store_release(reg, v);
}

static u32 nic_ack(void)
{
	return xchg(NIC_REG(ICR), 0);
}

static u64 buffer_phys(struct mint0 *m, u16 i)
{
	return m->buffers_phys + (u64)i * MINT_BUFFER_SIZE;
}

/* RxRing::init: quiesce, fill the ring, program it, enable, unmask. */
static void ring_init(struct mint0 *m)
{
	u64 ring_phys = shared_phys + MINT_DMA_WINDOW_OFFSET;
	u16 i;

	atomic_andnot(~0u, (atomic_t *)NIC_REG(IMS));
	nic_ack();
	nic_write(NIC_REG(RCTL), 0);
	for (i = 0; i < MINT_RING_SLOTS; i++) {
		WRITE_ONCE(m->ring[2 * i], buffer_phys(m, i));
		smp_store_release(&m->ring[2 * i + 1], 0);
	}
	nic_write(NIC_REG(RDBAL), (u32)ring_phys);
	nic_write(NIC_REG(RDBAH), (u32)(ring_phys >> 32));
	nic_write(NIC_REG(RDLEN), MINT_RING_SLOTS * 16);
	nic_write(NIC_REG(RDH), 0);
	nic_write(NIC_REG(RDT), MINT_RING_SLOTS - 1);
	nic_write(NIC_REG(RCTL), MINT_RCTL_VALUE);
	atomic_or(MINT_RX_INTERRUPTS, (atomic_t *)NIC_REG(IMS));
	m->next_to_clean = 0;
}

static bool ring_done(struct mint0 *m, u16 i)
{
	return (smp_load_acquire(&m->ring[2 * i + 1]) >> 32) & MINT_RX_STATUS_DD;
}

/* Cleans at most `budget` completed descriptors (never more than the
 * device can own, so a peer that keeps setting DD cannot hold it), gives
 * them back with one RDT write; returns how many it cleaned. */
static int ring_clean(struct mint0 *m, int budget)
{
	int limit = min_t(int, budget, MINT_RING_SLOTS - 1), cleaned = 0;
	u16 i = m->next_to_clean;

	while (cleaned < limit) {
		u64 *d = &m->ring[2 * i];
		u64 w1 = smp_load_acquire(&d[1]);
		u64 addr = READ_ONCE(d[0]);
		u64 expected = buffer_phys(m, i);
		u32 len = w1 & 0xffff;
		u8 status = (w1 >> 32) & 0xff, errors = (w1 >> 40) & 0xff;
		struct sk_buff *skb;

		if (!(status & MINT_RX_STATUS_DD))
			break;
		if (READ_ONCE(m->discard)) {
			WRITE_ONCE(m->discarded, m->discarded + 1);
		} else if (addr != expected || errors || !(status & MINT_RX_STATUS_EOP) ||
		    len < ETH_HLEN || len > MINT_BUFFER_SIZE) {
			WRITE_ONCE(m->bad_descriptor, m->bad_descriptor + 1);
			atomic64_inc((atomic64_t *)RUN_DROP(BAD_DESCRIPTOR));
		} else if (!(skb = napi_alloc_skb(&m->napi, len))) {
			WRITE_ONCE(m->no_skb, m->no_skb + 1);
			atomic64_inc((atomic64_t *)RUN_DROP(SOCKET_BUFFER_FULL));
		} else {
			/* From the driver's own address, not the descriptor's. */
			skb_put_data(skb, shm + (expected - shared_phys), len);
			if (m->driver_only) {
				/* Counted here, as mint's Rust driver counts a
				 * driver-only run (mint_target::App::count_unchecked). */
				WRITE_ONCE(m->driver_frames, m->driver_frames + 1);
				WRITE_ONCE(m->driver_bytes, m->driver_bytes +
					   (len > m->payload_offset ? len - m->payload_offset : 0));
				WRITE_ONCE(m->driver_last_tsc, rdtsc());
				napi_consume_skb(skb, budget);
			} else {
				skb->protocol = eth_type_trans(skb, m->dev);
				WRITE_ONCE(m->rx_packets, m->rx_packets + 1);
				WRITE_ONCE(m->rx_bytes, m->rx_bytes + len);
				netif_receive_skb(skb);
			}
		}
		/* Re-arm: our buffer back, the write-back cleared. */
		WRITE_ONCE(d[0], expected);
		smp_store_release(&d[1], 0);
		cleaned++;
		i = (i + 1) % MINT_RING_SLOTS;
	}
	if (cleaned) {
		m->next_to_clean = i;
		nic_write(NIC_REG(RDT), (i + MINT_RING_SLOTS - 1) % MINT_RING_SLOTS);
	}
	return cleaned;
}

static int mint0_poll(struct napi_struct *napi, int budget)
{
	struct mint0 *m = container_of(napi, struct mint0, napi);
	int done;

	/* Acknowledge the causes, as the Rust driver's service does. */
	nic_ack();
	done = ring_clean(m, budget);
	if (READ_ONCE(m->discard) && done < budget)
		smp_store_release(&m->discard, false);
	/* Done: complete, then look once more (a completion that landed
	 * after the last look and whose IPI came while this poll ran). */
	if (done < budget && napi_complete_done(napi, done) &&
	    ring_done(m, m->next_to_clean))
		napi_schedule(napi);
	return done;
}

/* The support node's IPI: clear the posted flag first (anything raised
 * afterwards sends a new IPI), count, time, and poll. */
static irqreturn_t on_nic(int irq, void *data)
{
	u64 entry = rdtsc_ordered(), sent;
	struct mint0 *m;

	xchg(U32(DNIC(MINT_DNIC_IRQ_PENDING)), 0);
	if (!nic_dev)
		return IRQ_HANDLED;
	m = netdev_priv(nic_dev);
	WRITE_ONCE(m->taken, m->taken + 1);
	atomic64_inc((atomic64_t *)RUN(MINT_RUN_INTERRUPTS));
	spin_lock(&samples_lock);
	if (!samples_frozen) {
		if (last_entry && n_intervals < MAX_SAMPLES)
			intervals[n_intervals++] = entry - last_entry;
		last_entry = entry;
		/* Each IPI's stamp is taken once; one from after this entry
		 * belongs to an IPI still in flight. */
		sent = xchg(U64(DNIC(MINT_DNIC_IPI_SENT_TSC)), 0);
		if (sent > entry)
			/* Put back only if no newer stamp came meanwhile. */
			cmpxchg(U64(DNIC(MINT_DNIC_IPI_SENT_TSC)), 0, sent);
		else if (sent && n_ipi < MAX_SAMPLES)
			ipi_latency[n_ipi++] = entry - sent;
	}
	spin_unlock(&samples_lock);
	if (READ_ONCE(m->up))
		napi_schedule(&m->napi);
	return IRQ_HANDLED;
}

/* From the heartbeat (100 Hz): a posted flag set at LOST_IPI_TICKS ticks
 * in a row with no interrupt taken is a lost IPI: clear it, count a
 * recovery, poll (as the Rust target's timer tick does). */
static void nic_watch(void)
{
	struct mint0 *m;

	if (!nic_dev)
		return;
	m = netdev_priv(nic_dev);
	if (!READ_ONCE(m->up) || !smp_load_acquire(U32(DNIC(MINT_DNIC_IRQ_PENDING)))) {
		m->watching = false;
		return;
	}
	if (m->watching && m->watch_taken == READ_ONCE(m->taken)) {
		if (++m->watch_ticks < MINT_LOST_IPI_TICKS)
			return;
		m->watching = false;
		xchg(U32(DNIC(MINT_DNIC_IRQ_PENDING)), 0);
		atomic64_inc((atomic64_t *)RUN(MINT_RUN_RECOVERIES));
		napi_schedule(&m->napi);
		return;
	}
	m->watching = true;
	m->watch_taken = READ_ONCE(m->taken);
	m->watch_ticks = 0;
}

/* The ring is programmed at load (the driver attached, as mint's own
 * target attaches at boot): up, the poll runs; down, frames stay in the
 * ring (once it is full the device counts them as ring_full) and the
 * support node refuses runs (no driver ready). */
static int mint0_open(struct net_device *dev)
{
	struct mint0 *m = netdev_priv(dev);

	napi_enable(&m->napi);
	WRITE_ONCE(m->up, true);
	netif_carrier_on(dev);
	netif_start_queue(dev);
	smp_store_release(U32(DNIC(MINT_DNIC_DRIVER_READY)), node + 1);
	/* Whatever completed while it was down. */
	napi_schedule(&m->napi);
	return 0;
}

static int mint0_stop(struct net_device *dev)
{
	struct mint0 *m = netdev_priv(dev);

	smp_store_release(U32(DNIC(MINT_DNIC_DRIVER_READY)), 0);
	WRITE_ONCE(m->up, false);
	netif_stop_queue(dev);
	netif_carrier_off(dev);
	napi_disable(&m->napi);
	return 0;
}

/* The debug NIC has no transmit path: what Linux sends is counted and
 * dropped. */
static netdev_tx_t mint0_xmit(struct sk_buff *skb, struct net_device *dev)
{
	struct mint0 *m = netdev_priv(dev);

	WRITE_ONCE(m->tx_dropped, m->tx_dropped + 1);
	dev_kfree_skb_any(skb);
	return NETDEV_TX_OK;
}

static void mint0_stats(struct net_device *dev, struct rtnl_link_stats64 *s)
{
	struct mint0 *m = netdev_priv(dev);

	s->rx_packets = READ_ONCE(m->rx_packets);
	s->rx_bytes = READ_ONCE(m->rx_bytes);
	s->rx_errors = READ_ONCE(m->bad_descriptor);
	s->rx_dropped = READ_ONCE(m->bad_descriptor) + READ_ONCE(m->no_skb);
	s->tx_dropped = READ_ONCE(m->tx_dropped);
}

static const struct net_device_ops mint0_ops = {
	.ndo_open = mint0_open,
	.ndo_stop = mint0_stop,
	.ndo_start_xmit = mint0_xmit,
	.ndo_get_stats64 = mint0_stats,
	.ndo_set_mac_address = eth_mac_addr,
	.ndo_validate_addr = eth_validate_addr,
};

static const char mint0_stat_names[][ETH_GSTRING_LEN] = {
	"rx_packets", "rx_bytes", "rx_bad_descriptor", "rx_no_skb", "interrupts", "tx_dropped",
	"rx_driver_only",
};

static int mint0_sset_count(struct net_device *dev, int set)
{
	return set == ETH_SS_STATS ? ARRAY_SIZE(mint0_stat_names) : -EOPNOTSUPP;
}

static void mint0_strings(struct net_device *dev, u32 set, u8 *buf)
{
	if (set == ETH_SS_STATS)
		memcpy(buf, mint0_stat_names, sizeof(mint0_stat_names));
}

static void mint0_ethtool_stats(struct net_device *dev, struct ethtool_stats *st, u64 *v)
{
	struct mint0 *m = netdev_priv(dev);

	v[0] = READ_ONCE(m->rx_packets);
	v[1] = READ_ONCE(m->rx_bytes);
	v[2] = READ_ONCE(m->bad_descriptor);
	v[3] = READ_ONCE(m->no_skb);
	v[4] = READ_ONCE(m->taken);
	v[5] = READ_ONCE(m->tx_dropped);
	v[6] = READ_ONCE(m->driver_frames);
}

static const struct ethtool_ops mint0_ethtool = {
	.get_sset_count = mint0_sset_count,
	.get_strings = mint0_strings,
	.get_ethtool_stats = mint0_ethtool_stats,
	.get_link = ethtool_op_get_link,
};

/* /dev/mint: the shared region for the target application. */
static int mintdev_mmap(struct file *f, struct vm_area_struct *vma)
{
	unsigned long size = vma->vm_end - vma->vm_start;
	unsigned long off = vma->vm_pgoff << PAGE_SHIFT;

	if (off >= shared_size || size > shared_size - off)
		return -EINVAL;
	return remap_pfn_range(vma, vma->vm_start, (shared_phys + off) >> PAGE_SHIFT, size,
			       vma->vm_page_prot);
}

/* The run's interrupt samples: u64 intervals count, u64 IPI latency
 * count, then both arrays. Frozen from here to the next reset. Every
 * read returns the whole set (the application reads once per run on
 * the one file it keeps open), so `cat` would not end: not a file. */
static ssize_t mintdev_read(struct file *f, char __user *buf, size_t len, loff_t *pos)
{
	u64 counts[2];
	size_t need;
	unsigned long flags;

	spin_lock_irqsave(&samples_lock, flags);
	samples_frozen = true;
	counts[0] = n_intervals;
	counts[1] = n_ipi;
	spin_unlock_irqrestore(&samples_lock, flags);
	need = sizeof(counts) + (counts[0] + counts[1]) * sizeof(u64);
	if (len < need)
		return -ENOSPC;
	if (copy_to_user(buf, counts, sizeof(counts)) ||
	    copy_to_user(buf + sizeof(counts), intervals, counts[0] * sizeof(u64)) ||
	    copy_to_user(buf + sizeof(counts) + counts[0] * sizeof(u64), ipi_latency,
			 counts[1] * sizeof(u64)))
		return -EFAULT;
	return need;
}

/* MINT_IOC_ARM (a run is being configured): cleans the ring of whatever
 * completed, delivering and counting none of it (nothing in the ring is
 * the new run's: the support node sends only once it is armed), then
 * programs ITR (the run's interrupt moderation, in the register's 256 ns
 * units; 0 = none) and the run's delivery (MINT_ARM_*). Returns the
 * frames discarded, or -ETIMEDOUT when the poll did not finish within
 * 1 s. */
static long arm(unsigned long arg)
{
	struct mint0 *m = netdev_priv(nic_dev);
	u64 before = READ_ONCE(m->discarded);
	int waited;

	if (!READ_ONCE(m->up))
		return -ENETDOWN;
	if (arg & ~(0xfful << 24 | MINT_ARM_DRIVER | 0xffff))
		return -EINVAL;
	nic_write(NIC_REG(ITR), MINT_ARM_ITR(arg));
	/* With softirqs off no poll runs on this one CPU meanwhile: the run's
	 * delivery and the discard take effect together. */
	local_bh_disable();
	m->driver_only = arg & MINT_ARM_DRIVER;
	m->payload_offset = MINT_ARM_PAYLOAD_OFFSET(arg);
	WRITE_ONCE(m->driver_frames, 0);
	WRITE_ONCE(m->driver_bytes, 0);
	WRITE_ONCE(m->driver_last_tsc, 0);
	smp_store_release(&m->discard, true);
	napi_schedule(&m->napi);
	local_bh_enable();
	for (waited = 0; smp_load_acquire(&m->discard); waited++) {
		if (waited >= 1000) {
			/* Never left set: it would discard the run's frames
			 * uncounted. */
			smp_store_release(&m->discard, false);
			return -ETIMEDOUT;
		}
		usleep_range(1000, 2000);
	}
	return READ_ONCE(m->discarded) - before;
}

static long mintdev_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	unsigned long flags;

	if (cmd == MINT_IOC_ARM)
		return arm(arg);
	if (cmd == MINT_IOC_DRIVER_COUNTS) {
		struct mint0 *m = netdev_priv(nic_dev);
		struct mint_driver_counts c;

		/* The poll runs in softirq context on this one CPU: keep it
		 * out so the three words are of one moment. */
		local_bh_disable();
		c.frames = READ_ONCE(m->driver_frames);
		c.payload_bytes = READ_ONCE(m->driver_bytes);
		c.last_tsc = READ_ONCE(m->driver_last_tsc);
		local_bh_enable();
		return copy_to_user((void __user *)arg, &c, sizeof(c)) ? -EFAULT : 0;
	}
	if (cmd != MINT_IOC_RESET_SAMPLES)
		return -ENOTTY;
	spin_lock_irqsave(&samples_lock, flags);
	n_intervals = 0;
	n_ipi = 0;
	last_entry = 0;
	samples_frozen = false;
	spin_unlock_irqrestore(&samples_lock, flags);
	return 0;
}

static const struct file_operations mintdev_fops = {
	.owner = THIS_MODULE,
	.mmap = mintdev_mmap,
	.read = mintdev_read,
	.unlocked_ioctl = mintdev_ioctl,
};

static struct miscdevice mintdev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "mint",
	.fops = &mintdev_fops,
};

/* mint0 and /dev/mint, when node 0 made this node the debug NIC's target. */
static int nic_init(void)
{
	static const u8 mac[ETH_ALEN] = MINT_TARGET_MAC;
	struct net_device *dev;
	struct mint0 *m;
	int ret;

	if (smp_load_acquire(U32(MINT_HEADER_DEBUG_NIC_TARGET)) != node + 1)
		return 0;
	if (MINT_DMA_WINDOW_OFFSET + MINT_DMA_BYTES_NEEDED > shared_size) {
		pr_err("mint: no mint0: the shared region (%#lx bytes) has no room for the debug NIC's ring\n",
		       shared_size);
		return -ENOSPC;
	}
	intervals = vmalloc(MAX_SAMPLES * sizeof(u64));
	ipi_latency = vmalloc(MAX_SAMPLES * sizeof(u64));
	dev = alloc_etherdev(sizeof(struct mint0));
	if (!intervals || !ipi_latency || !dev) {
		ret = -ENOMEM;
		goto undo;
	}
	strscpy(dev->name, "mint0", IFNAMSIZ);
	dev->netdev_ops = &mint0_ops;
	dev->ethtool_ops = &mint0_ethtool;
	dev->max_mtu = MINT_BUFFER_SIZE - ETH_HLEN;
	eth_hw_addr_set(dev, mac);
	m = netdev_priv(dev);
	m->dev = dev;
	m->ring = (u64 *)(shm + MINT_DMA_WINDOW_OFFSET);
	m->buffers_phys = shared_phys + MINT_DMA_WINDOW_OFFSET +
			  ALIGN(MINT_RING_SLOTS * 16, 4096);
	netif_napi_add(dev, &m->napi, mint0_poll);
	netif_carrier_off(dev);
	ring_init(m);
	/* The vector first: the support node reads it once the driver says
	 * ready (on open). */
	ret = take_vector(on_nic, "mint0", &nic_irq, &nic_vector);
	if (ret) {
		/* (The vector, if allocated, cannot be given back.) */
		pr_err("mint: no mint0: no vector for the debug NIC (%d)\n", ret);
		goto undo;
	}
	smp_store_release(U32(SLOT(node, NIC_VECTOR)), nic_vector);
	ret = register_netdev(dev);
	if (ret) {
		pr_err("mint: no mint0: register_netdev failed (%d)\n", ret);
		goto undo;
	}
	WRITE_ONCE(nic_dev, dev);
	ret = misc_register(&mintdev);
	if (ret) {
		pr_err("mint: no /dev/mint: misc_register failed (%d)\n", ret);
		return ret;
	}
	/* Attached: the support node may configure a run (the target
	 * application arms it once it has brought mint0 up). */
	smp_store_release(U32(DNIC(MINT_DNIC_DRIVER_READY)), node + 1);
	pr_info("mint: mint0: the debug NIC (%u descriptors of %u bytes in the shared region), interrupt vector %#x (irq %d), /dev/mint minor %d\n",
		(unsigned int)MINT_RING_SLOTS, (unsigned int)MINT_BUFFER_SIZE, nic_vector, nic_irq,
		mintdev.minor);
	return 0;
undo:
	/* The receiver stays off: the device refuses (and counts) frames. */
	nic_write(NIC_REG(RCTL), 0);
	if (dev)
		free_netdev(dev);
	vfree(intervals);
	vfree(ipi_latency);
	intervals = NULL;
	ipi_latency = NULL;
	return ret;
}

static int __init mint_init(void)
{
	u64 magic;
	u32 version;
	int ret;

	if (!shared_phys || shared_size < MINT_SHARED_FIXED_SIZE || node == 0 ||
	    node >= MINT_MAX_NODES) {
		pr_err("mint: refusing to load: shared_phys=%#lx shared_size=%#lx node=%u (need mint_shared=PHYS,SIZE and mint_node=K from node 0)\n",
		       shared_phys, shared_size, node);
		return -EINVAL;
	}
	shm = memremap(shared_phys, shared_size, MEMREMAP_WB);
	if (!shm) {
		pr_err("mint: refusing to load: cannot map the shared region %#lx+%#lx\n",
		       shared_phys, shared_size);
		return -ENOMEM;
	}
	magic = smp_load_acquire(U64(MINT_HEADER_MAGIC));
	version = READ_ONCE(*U32(MINT_HEADER_VERSION));
	if (magic != MINT_SHARED_MAGIC || version != abi) {
		pr_err("mint: refusing to load: the shared region at %#lx has magic %#llx ABI version %u; this module speaks magic %#llx ABI version %u\n",
		       shared_phys, magic, version, (u64)MINT_SHARED_MAGIC, abi);
		memunmap(shm);
		return -EPROTO;
	}
	node_count = min_t(u32, READ_ONCE(*U32(MINT_HEADER_NODE_COUNT)), MINT_MAX_NODES);
	if (node >= node_count) {
		pr_err("mint: refusing to load: node %u but the region describes %u nodes\n",
		       node, node_count);
		memunmap(shm);
		return -EINVAL;
	}
	ret = take_vector(on_mailbox, "mint-mailbox", &virq, &vector);
	if (ret) {
		/* The vector cannot be given back; the module stays out. */
		pr_err("mint: refusing to load: no mailbox vector (%d)\n", ret);
		memunmap(shm);
		return ret;
	}
	smp_store_release(U32(SLOT(node, MAILBOX_VECTOR)), vector);
	/* The debug NIC is the node's; without it the node still runs. */
	ret = nic_init();
	if (ret)
		pr_err("mint: node %u runs without mint0 (%d)\n", node, ret);
	atomic_notifier_chain_register(&panic_notifier_list, &panic_nb);
	register_die_notifier(&die_nb);
	hrtimer_init(&beat, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
	beat.function = on_beat;
	hrtimer_start(&beat, ms_to_ktime(1000 / MINT_TIMER_HZ), HRTIMER_MODE_REL);
	/* After the heartbeat exists: the notifier stops it. */
	register_reboot_notifier(&reboot_nb);
	WRITE_ONCE(*U64(SLOT(node, RUNNING_TSC)), rdtsc_ordered());
	set_state(MINT_STATE_RUNNING);
	pr_info("mint: node %u running: shared region %#lx+%#lx ABI %u, mailbox vector %#x (irq %d), apic id %u, heartbeat %u Hz\n",
		node, shared_phys, shared_size, version, vector, virq,
		READ_ONCE(*U32(MINT_HEADER_APIC_IDS + node * 4)), (unsigned int)MINT_TIMER_HZ);
	INIT_WORK(&ping_work, ping_round);
	schedule_work(&ping_work);
	return 0;
}
module_init(mint_init);
/* No exit: the vector cannot be freed (irq_domain_free_irqs is not exported). */

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mint: a Linux kernel as a node of mint's machine");
