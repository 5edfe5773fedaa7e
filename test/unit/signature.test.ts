/**
 * The crash signature (README "Crash signature") and `info`'s panic backtrace on the sample.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bareFunction, crashSignature, maskReason, signatureChain } from '../../src/core/kernel/signature.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
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
