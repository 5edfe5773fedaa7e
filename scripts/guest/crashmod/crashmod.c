// SPDX-License-Identifier: GPL-2.0
/*
 * crashmod: a test module that crashes the kernel in a chosen way, for the crash-kind interop
 * tests (test/interop/crash-kinds.test.ts, scripts/guest/crash-kinds.sh).
 *
 *   insmod crashmod.ko mode=workqueue|bug|softlockup|timer
 *   echo 1 > /proc/crashmod        # the crash happens here
 *
 * mode=workqueue   the write queues a work item whose function writes through a NULL pointer
 *                  (an oops in a kworker: "BUG: kernel NULL pointer dereference")
 * mode=bug         the write handler itself hits BUG() ("kernel BUG at ...", invalid opcode)
 * mode=softlockup  the write handler spins with preemption disabled; the watchdog's hrtimer
 *                  reports "watchdog: BUG: soft lockup" with the spinning task's pt_regs
 *                  (panics with softlockup_panic=1 on the kernel command line)
 * mode=timer       the write arms a hard-interrupt hrtimer whose callback writes through a NULL
 *                  pointer: a fault in interrupt context, on the IRQ stack
 * The oops kinds panic with oops=panic on the kernel command line.
 * The crashing functions are noinline so that each is its own frame in the backtrace.
 */
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/workqueue.h>
#include <linux/hrtimer.h>
#include <linux/preempt.h>
#include <linux/uaccess.h>

static char *mode = "bug";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "workqueue, bug, softlockup or timer");

struct crashmod_target {
	unsigned long pad[2];
	unsigned long value;
};

/* Always NULL; read through READ_ONCE so that the compiler keeps the access. */
static struct crashmod_target *crashmod_null;
static struct work_struct crashmod_work;
static struct hrtimer crashmod_timer;

static noinline void crashmod_work_fn(struct work_struct *work)
{
	struct crashmod_target *t = READ_ONCE(crashmod_null);

	t->value = (unsigned long)work;
}

static noinline enum hrtimer_restart crashmod_timer_fn(struct hrtimer *timer)
{
	struct crashmod_target *t = READ_ONCE(crashmod_null);

	t->value = (unsigned long)timer;
	return HRTIMER_NORESTART;
}

static noinline void crashmod_spin(void)
{
	preempt_disable();
	for (;;)
		cpu_relax();
}

static noinline ssize_t crashmod_write(struct file *file, const char __user *buf, size_t count, loff_t *ppos)
{
	pr_info("crashmod: crashing (%s)\n", mode);
	if (!strcmp(mode, "workqueue")) {
		schedule_work(&crashmod_work);
	} else if (!strcmp(mode, "bug")) {
		BUG();
	} else if (!strcmp(mode, "softlockup")) {
		crashmod_spin();
	} else if (!strcmp(mode, "timer")) {
		hrtimer_start(&crashmod_timer, ns_to_ktime(1000000), HRTIMER_MODE_REL_HARD);
	} else {
		return -EINVAL;
	}
	return count;
}

static const struct proc_ops crashmod_ops = {
	.proc_write = crashmod_write,
};

static int __init crashmod_init(void)
{
	INIT_WORK(&crashmod_work, crashmod_work_fn);
	hrtimer_init(&crashmod_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	crashmod_timer.function = crashmod_timer_fn;
	if (!proc_create("crashmod", 0200, NULL, &crashmod_ops))
		return -ENOMEM;
	pr_info("crashmod: loaded, mode=%s\n", mode);
	return 0;
}

static void __exit crashmod_exit(void)
{
	remove_proc_entry("crashmod", NULL);
	hrtimer_cancel(&crashmod_timer);
	cancel_work_sync(&crashmod_work);
}

module_init(crashmod_init);
module_exit(crashmod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Crashes the kernel in a chosen way (vmcore's crash-kind tests)");
