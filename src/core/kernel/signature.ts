/**
 * The panic's call chain and a stable crash signature (`info`'s panic.backtrace and
 * panic.signature). The definition is in README ("Crash signature"); changing it is a breaking
 * change, so it carries a version prefix.
 */
import { sha256 } from '@noble/hashes/sha256';
import { bytesToHex } from '@noble/hashes/utils';

/** Oops lines the kernel prints before its trace (lib/bug.c, arch/x86/mm/fault.c, arch/x86/kernel/traps.c, kernel/watchdog.c). */
export const OOPS_RE =
  /(BUG: kernel NULL pointer dereference.*|BUG: unable to handle page fault.*|BUG: soft lockup.*|watchdog: BUG: soft lockup.*|kernel BUG at .*|general protection fault.*|BUG: .*|Oops: .*)/;

/**
 * What kind of oops a line of OOPS_RE is, in the words the kernel's own report uses: `BUG`
 * (lib/bug.c "kernel BUG at"), `NULL pointer dereference` and `page fault`
 * (arch/x86/mm/fault.c show_fault_oops), `general protection fault` (traps.c), `soft lockup`
 * (kernel/watchdog.c), `hard lockup`, `Oops` for another "Oops:" line, else the text after
 * "BUG: " up to its first colon or comma ("BUG: scheduling while atomic: ..." gives
 * `scheduling while atomic`). Null when the line is none of these.
 */
export function oopsKind(line: string): string | null {
  if (/kernel BUG at /.test(line)) return 'BUG';
  if (/BUG: kernel NULL pointer dereference/.test(line)) return 'NULL pointer dereference';
  if (/BUG: unable to handle page fault|BUG: unable to handle kernel paging request/.test(line)) return 'page fault';
  if (/general protection fault/.test(line)) return 'general protection fault';
  if (/BUG: soft lockup/.test(line)) return 'soft lockup';
  if (/hard LOCKUP/i.test(line)) return 'hard lockup';
  const m = /BUG: ([^:,]+)/.exec(line);
  if (m) return m[1]!.trim();
  if (/Oops: /.test(line)) return 'Oops';
  return null;
}

/**
 * Functions of the panic and oops machinery and of the exception/interrupt entry, left out of the
 * signature's chain: the chain starts at the first function that is none of these.
 */
const MACHINERY = [
  /^panic$/, /^nmi_panic$/, /^dump_stack/, /^show_stack/, /^show_trace/, /^_?printk/, /^vprintk/, /^delay_tsc$/, /^__const_udelay$/, /^__udelay$/,
  /^die$/, /^__die/, /^die_body$/, /^oops_/, /^do_trap$/, /^do_error_trap$/, /^handle_bug$/, /^report_bug$/, /^do_int3/,
  /^exc_/, /^asm_/, /^sysvec_/, /^__sysvec_/, /^page_fault_oops$/, /^kernelmode_fixup_or_oops$/, /^__bad_area_nosemaphore$/,
  /^bad_area_nosemaphore$/, /^do_user_addr_fault$/, /^handle_page_fault$/, /^no_context$/, /^do_kern_addr_fault$/,
  /^crash_kexec$/, /^__crash_kexec$/, /^machine_kexec/, /^crash_setup_regs$/, /^stop_this_cpu$/, /^watchdog_timer_fn$/,
  /^__run_hrtimer$/, /^__hrtimer_run_queues$/, /^hrtimer_interrupt$/, /^__sysvec_apic_timer_interrupt$/, /^irq_exit/, /^__irq_exit/,
  /^handle_softirqs$/, /^__do_softirq$/, /^_raw_spin_unlock_irqrestore$/, /^fixup_exception$/, /^ex_handler_/, /^gp_try_fixup_and_notify$/,
];

/** A function name without the compiler's clone suffixes (.cold, .isra.0, .constprop.0, .part.0, .llvm.N). */
export function bareFunction(name: string): string {
  return name.replace(/\.(cold|isra|constprop|part|llvm|lto_priv)(\.\d+)*(\..*)?$/, '');
}

/** The reason with addresses and numbers masked (see README). */
export function maskReason(reason: string): string {
  return reason
    .replace(/\[[^\]]*\]/g, '[X]') // [comm:pid], [module list]
    .replace(/\b0x[0-9a-fA-F]+\b/g, 'X')
    .replace(/\b[0-9a-fA-F]{8,}\b/g, 'X')
    .replace(/\b\d+(\.\d+)?s?\b/g, 'N')
    .replace(/\s+/g, ' ')
    .trim();
}

export interface ChainFrame {
  function: string | null;
  module: string | null;
  reliable: boolean;
}

/** The first `n` reliable functions after the machinery, bare names, ` [module]` for modules. */
export function signatureChain(frames: readonly ChainFrame[], n = 5): string[] {
  const named = frames.filter((f) => f.reliable && f.function !== null);
  // the machinery is a prefix of the chain (an asm_* entry deeper down is part of the path);
  // whatever the CPU did after it entered panic() (its delay loop, a timer interrupt taken
  // there, as on arm64 where the loop runs with interrupts on) is part of that prefix
  const p = named.findIndex((f) => bareFunction(f.function!) === 'panic');
  let i = p >= 0 ? p : 0;
  while (i < named.length && MACHINERY.some((re) => re.test(bareFunction(named[i]!.function!)))) i++;
  return named.slice(i, i + n).map((f) => `${bareFunction(f.function!)}${f.module ? ` [${f.module}]` : ''}`);
}

/**
 * `v1:` + the first 16 hex digits of SHA-256 over "v1\n" + masked reason + "\n" + the chain
 * joined by "\n".
 */
export function crashSignature(reason: string, chain: readonly string[]): string {
  const text = `v1\n${maskReason(reason)}\n${chain.join('\n')}`;
  return `v1:${bytesToHex(sha256(new TextEncoder().encode(text))).slice(0, 16)}`;
}
