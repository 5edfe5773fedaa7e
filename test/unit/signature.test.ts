/**
 * The crash signature (README "Crash signature") and `info`'s panic backtrace on the sample.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bareFunction, crashSignature, maskReason, oopsKind, signatureChain } from '../../src/core/kernel/signature.js';
import { faultingContext, type TaskBacktrace } from '../../src/core/kernel/backtrace.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');

const f = (name: string, reliable = true, module: string | null = null) => ({ function: name, reliable, module });

test('signature rules: masking, clone suffixes, machinery prefix, modules, version prefix', () => {
  assert.equal(maskReason('BUG: kernel NULL pointer dereference, address: 0000000000000008'), 'BUG: kernel NULL pointer dereference, address: X');
  assert.equal(maskReason('watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [kworker/1:1:45]'), 'watchdog: BUG: soft lockup - CPU#N stuck for N! [X]');
  assert.equal(maskReason('general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI'), 'general protection fault, probably for non-canonical address X: N [X] PREEMPT SMP NOPTI');
  assert.equal(bareFunction('__handle_sysrq.cold'), '__handle_sysrq');
  assert.equal(bareFunction('do_execveat_common.isra.0'), 'do_execveat_common');
  assert.equal(bareFunction('arch_exit_to_user_mode_prepare.constprop.0'), 'arch_exit_to_user_mode_prepare');
  const chain = signatureChain([
    f('delay_tsc'), f('panic'), f('?guess', false), f('crash_work', true, 'crashmod'), f('process_one_work.cold'), f('worker_thread'), f('kthread'), f('ret_from_fork'), f('ret_from_fork_asm'),
  ]);
  assert.deepEqual(chain, ['crash_work [crashmod]', 'process_one_work', 'worker_thread', 'kthread', 'ret_from_fork']);
  const a = crashSignature('Kernel panic - not syncing: sysrq triggered crash', ['sysrq_handle_crash', '__handle_sysrq']);
  assert.match(a, /^v1:[0-9a-f]{16}$/);
  assert.equal(a, crashSignature('Kernel panic - not syncing: sysrq triggered crash', ['sysrq_handle_crash', '__handle_sysrq']));
  assert.notEqual(a, crashSignature('Kernel panic - not syncing: sysrq triggered crash', ['sysrq_handle_crash', 'write_sysrq_trigger']));
  assert.notEqual(a, crashSignature('Kernel panic - not syncing: Fatal exception', ['sysrq_handle_crash', '__handle_sysrq']));
  // addresses and numbers do not change it
  assert.equal(
    crashSignature('BUG: unable to handle page fault for address: ffffa1b2c3d4e5f6', ['x']),
    crashSignature('BUG: unable to handle page fault for address: ffff9999c3d4e000', ['x']),
  );
});

test('info on the sample: panic.backtrace, no oops, the sysrq signature', () => {
  const r = spawnSync(process.execPath, [CLI, 'info', SAMPLE, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  const p = (JSON.parse(r.stdout) as { panic: { backtrace: { pid: number; frames: { function: string }[] }; oops: string | null; signature: string; signatureReason: string; signatureChain: string[] } }).panic;
  assert.equal(p.backtrace.pid, 1);
  assert.equal(p.backtrace.frames[2]!.function, 'sysrq_handle_crash');
  assert.equal(p.oops, null);
  assert.equal(p.signatureReason, 'Kernel panic - not syncing: sysrq triggered crash');
  assert.deepEqual(p.signatureChain, ['sysrq_handle_crash', '__handle_sysrq', 'write_sysrq_trigger', 'proc_reg_write', 'vfs_write']);
  assert.equal(p.signature, crashSignature(p.signatureReason, p.signatureChain));
  const t = spawnSync(process.execPath, [CLI, 'info', SAMPLE], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.match(t.stdout, /\nBacktrace +pid 1 \(init\), 10 frames\n/);
  assert.match(t.stdout, /\nSignature +v1:[0-9a-f]{16} {2}\(sysrq_handle_crash < __handle_sysrq < /);
});

test('oopsKind names the kernel\'s oops lines', () => {
  assert.equal(oopsKind('kernel BUG at crashmod/crashmod.c:69!'), 'BUG');
  assert.equal(oopsKind('BUG: kernel NULL pointer dereference, address: 0000000000000010'), 'NULL pointer dereference');
  assert.equal(oopsKind('BUG: unable to handle page fault for address: ffffa1b2c3d4e5f6'), 'page fault');
  assert.equal(oopsKind('watchdog: BUG: soft lockup - CPU#1 stuck for 13s! [init:1]'), 'soft lockup');
  assert.equal(oopsKind('general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI'), 'general protection fault');
  assert.equal(oopsKind('BUG: scheduling while atomic: swapper/0/0/0x00000002'), 'scheduling while atomic');
  assert.equal(oopsKind('Oops: 0002 [#1] PREEMPT SMP NOPTI'), 'Oops');
  assert.equal(oopsKind('Kernel panic - not syncing: sysrq triggered crash'), null);
});

test('faultingContext: the first reliable frame after the first kernel-mode pt_regs, and its stack', () => {
  const fr = (level: number, fn: string | null, stack: 'task' | 'irq', reliable = true, module: string | null = null) =>
    ({ level, sp: 0x1000n + BigInt(level) * 8n, pc: 0xffffffffc0000000n + BigInt(level), function: fn, offset: 1, size: 16, module, reliable, method: 'orc' as const, stack });
  // the timer kind: panic on the IRQ stack, the page fault's pt_regs, the module's callback, the
  // hrtimer code, the interrupt's pt_regs, then the interrupted task
  const b = {
    task: {} as TaskBacktrace['task'],
    frames: [fr(0, 'delay_tsc', 'irq'), fr(1, 'panic', 'irq'), fr(2, 'asm_exc_page_fault', 'irq'), fr(3, null, 'irq', false), fr(3, 'crashmod_timer_fn', 'irq', true, 'crashmod'), fr(4, '__hrtimer_run_queues', 'irq'), fr(5, 'asm_sysvec_apic_timer_interrupt', 'task'), fr(6, 'default_idle', 'task')],
    exceptionFrames: [
      { level: 3, address: 0xffffc900000d0e78n, user: false, partial: false, regs: {} },
      { level: 6, address: 0xffffc900000139c8n, user: false, partial: false, regs: {} },
    ],
    stop: 'end_of_stack',
    stopDetail: '',
    start: 'cpu registers',
  } as unknown as TaskBacktrace;
  const fc = faultingContext(b)!;
  assert.equal(fc.frame.function, 'crashmod_timer_fn');
  assert.equal(fc.frame.module, 'crashmod');
  assert.equal(fc.context, 'irq');
  assert.equal(fc.ptRegs, 0xffffc900000d0e78n);
  // a user-mode pt_regs is not the faulting context; without a kernel-mode one there is none
  assert.equal(faultingContext({ ...b, exceptionFrames: [{ level: 3, address: 0x1n, user: true, partial: false, regs: {} }] } as unknown as TaskBacktrace), null);
});

test('signature chain: what the CPU did inside panic (an interrupt in its delay loop, as on arm64) is skipped', () => {
  const f = (name: string, reliable = true) => ({ function: name, module: null, reliable });
  const chain = signatureChain([
    f('arch_timer_set_next_event_virt'), f('clockevents_program_event', false), f('tick_program_event'), f('hrtimer_interrupt'),
    f('gic_handle_irq'), f('call_on_irq_stack'), f('el1h_64_irq'), f('__delay'), f('__const_udelay'), f('panic'),
    f('sysrq_handle_crash'), f('__handle_sysrq'), f('write_sysrq_trigger'), f('proc_reg_write'), f('vfs_write'), f('ksys_write'),
  ]);
  assert.deepEqual(chain, ['sysrq_handle_crash', '__handle_sysrq', 'write_sysrq_trigger', 'proc_reg_write', 'vfs_write']);
});
