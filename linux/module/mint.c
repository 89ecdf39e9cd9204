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
 *  - on a panic marks its slot Crashed with the panic's message (and
 *    panics, after its ping round, when node 0 asks it to inject that
 *    fault: `mint boot --fault K:panic`).
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
	/* `mint boot --fault K:panic`: instead of finishing the round, panic
	 * (the notifier marks the slot Crashed). */
	if (READ_ONCE(*U32(MINT_HEADER_INJECT_FAULT + node * 4)) == MINT_FAULT_PANIC)
		panic("mint: fault injected: panic");
	smp_store_release(U32(SLOT(node, PINGS_DONE)), 1);
}

static int on_panic(struct notifier_block *nb, unsigned long event, void *msg)
{
	char why[MINT_REASON_LEN];

	snprintf(why, sizeof(why), "linux panic: %s", msg ? (const char *)msg : "?");
	write_reason(why);
	set_state(MINT_STATE_CRASHED);
	return NOTIFY_DONE;
}

static struct notifier_block panic_nb = {
	.notifier_call = on_panic,
	.priority = INT_MAX,
};

/* A vector of Linux's own for the mailbox IPI, on this (only) CPU. */
static int take_vector(void)
{
	struct irq_alloc_info info;
	struct irq_cfg *cfg;
	int ret;

	memset(&info, 0, sizeof(info));
	virq = __irq_domain_alloc_irqs(x86_vector_domain, -1, 1, NUMA_NO_NODE, &info, false, NULL);
	if (virq < 0)
		return virq;
	irq_set_handler(virq, handle_edge_irq);
	ret = request_irq(virq, on_mailbox, 0, "mint-mailbox", NULL);
	if (ret)
		return ret;
	cfg = irqd_cfg(irq_get_irq_data(virq));
	if (!cfg || cfg->vector < 0x20 || cfg->vector > 0xef)
		return -ERANGE;
	vector = cfg->vector;
	return 0;
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
	ret = take_vector();
	if (ret) {
		/* The vector cannot be given back; the module stays out. */
		pr_err("mint: refusing to load: no mailbox vector (%d)\n", ret);
		memunmap(shm);
		return ret;
	}
	smp_store_release(U32(SLOT(node, MAILBOX_VECTOR)), vector);
	atomic_notifier_chain_register(&panic_notifier_list, &panic_nb);
	hrtimer_init(&beat, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
	beat.function = on_beat;
	hrtimer_start(&beat, ms_to_ktime(1000 / MINT_TIMER_HZ), HRTIMER_MODE_REL);
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
