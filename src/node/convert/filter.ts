/**
 * Page filtering for `convert` (dump levels 2-31): classify every page frame through the
 * kernel's struct pages, check before writing that triage keeps every page it reads, and after
 * writing that `info`, `dmesg` and `bt -a` say the same of the output as of the input.
 */
import { rm } from 'node:fs/promises';
import type { Dump } from '../../core/dump.js';
import { VmcoreError } from '../../core/errors.js';
import type { KernelInfo } from '../../core/kernel/kernel.js';
import { collectExcluded, excludedPages, type ExcludedRun } from '../../core/kernel/pagefilter.js';
import { DL_PAGE_TYPES, pageModel, type PageModel } from '../../core/kernel/pagetypes.js';
import { compareTriage, filteredView, neededButExcluded, triageFingerprint, triageRecord, type TriageFingerprint } from '../../core/triage.js';
import { openDumpFiles } from '../open.js';

export interface FilterPlan {
  level: number;
  exclude: ExcludedRun[];
  model: PageModel;
  /** What triage says of the input, to compare with the output. */
  triage: TriageFingerprint;
}

export interface FilterOptions {
  /** Warn instead of refusing when triage would lose pages or change its answer. */
  force?: boolean;
  onWarning?: (msg: string) => void;
  /** Change the classification before it is used (tests: inject a wrong one). */
  alter?: (runs: ExcludedRun[]) => ExcludedRun[];
  /** Guard info and dmesg only, not `bt -a` (tests: show what the backtraces add). */
  noBacktraces?: boolean;
}

/**
 * Classify the pages of `dump` for dump level `level` and check that triage keeps what it reads.
 * @throws VmcoreError UNSUPPORTED (kernel encoding unknown, keys missing), NO_VMCOREINFO, and
 *         TRIAGE when pages that info, dmesg or bt -a read would be left out (unless `force`)
 */
export async function planFilter(dump: Dump, kernel: KernelInfo, level: number, opts: FilterOptions = {}): Promise<FilterPlan | undefined> {
  if (!(level & DL_PAGE_TYPES)) return undefined;
  const file = dump.files[0]?.name;
  if (!kernel.vmcoreinfo) throw new VmcoreError('NO_VMCOREINFO', `dump level ${level} needs VMCOREINFO and the dump has none (not even in memory)`, { ...(file ? { file } : {}) });
  if (!kernel.translator) throw new VmcoreError('ADDRESS_TRANSLATION', `dump level ${level} reads struct pages through kernel virtual addresses, and they cannot be translated (phys_base not proven, no CPU page tables)`, { ...(file ? { file } : {}) });
  const model = pageModel(kernel.vmcoreinfo, { ...(file ? { file } : {}), littleEndian: dump.littleEndian });
  let exclude = await collectExcluded(
    excludedPages({ vmcoreinfo: kernel.vmcoreinfo, readVirt: (va, n) => kernel.readVirt(va, n), ...(file ? { file } : {}), littleEndian: dump.littleEndian }, dump.pageSize, level, {
      maxPfn: dump.maxPfn,
      model,
      ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
    }),
  );
  if (opts.alter) exclude = opts.alter(exclude);
  // triage on the input, and on the input as the filter leaves it: before anything is written
  const topts = opts.noBacktraces ? { noBacktraces: true } : {};
  const { fingerprint, pfns } = await triageRecord(dump, topts);
  const diffs = compareTriage(fingerprint, await triageFingerprint(filteredView(dump, exclude), topts));
  if (diffs.length) {
    const lost = neededButExcluded(pfns, exclude);
    const which = lost.length ? `; pages it reads and the filter leaves out: ${lost.slice(0, 6).map((l) => `pfn 0x${l.pfn.toString(16)} (${l.kind})`).join(', ')}${lost.length > 6 ? ', …' : ''}` : '';
    const msg = `dump level ${level} would change what info/dmesg/bt -a say: ${diffs.join('; ')}${which}`;
    if (!opts.force) throw new VmcoreError('TRIAGE', `${msg}; nothing written (--force writes it anyway)`, { ...(file ? { file } : {}), field: 'dump_level' });
    opts.onWarning?.(`${msg} (written anyway: --force)`);
  }
  return { level, exclude, model, triage: fingerprint };
}

/**
 * Open the written output and compare what triage says of it with the input's fingerprint.
 * On a difference: remove the output and throw TRIAGE, or with `force` warn and keep it.
 */
export async function checkFilteredOutput(outputs: readonly string[], plan: FilterPlan, opts: FilterOptions = {}): Promise<void> {
  const out = await openDumpFiles([...outputs]);
  let diffs: string[];
  try {
    diffs = compareTriage(plan.triage, await triageFingerprint(out, plan.triage.bt === null ? { noBacktraces: true } : {}));
  } finally {
    await out.close();
  }
  if (!diffs.length) return;
  const msg = `the filtered output does not give the same triage as the input: ${diffs.join('; ')}`;
  if (!opts.force) {
    for (const o of outputs) await rm(o, { force: true });
    throw new VmcoreError('TRIAGE', `${msg}; output removed (--force keeps it)`, { file: outputs[0] ?? '', field: 'dump_level' });
  }
  opts.onWarning?.(`${msg} (kept: --force)`);
}
