/**
 * The steps that prove where the kernel sits in physical memory: the x86_64 phys_base
 * (arch/x86/kernel/head64.c) and the arm64 PHYS_OFFSET and kimage_voffset
 * (arch/arm64/include/asm/memory.h). Each step has a stable code, for programs (`--json` and
 * the decisions made on a proof), and a text, for people; the text is never matched.
 */
export type ProofCode =
  /** The kernel's top page table (x86_64 init_top_pgt, arm64 swapper_pg_dir) lies in the dump's RAM. */
  | 'PGD_IN_RAM'
  /** A walk of that table for its own virtual address gives its own physical address. */
  | 'PGD_MAPS_ITSELF'
  /** `_stext` walks to its kernel-text physical address. */
  | 'STEXT_MAPS'
  /** `init_uts_ns` holds "Linux" and VMCOREINFO's OSRELEASE. */
  | 'UTSNAME_MATCHES'
  /** A CPU's CR3 shares the kernel half of init_top_pgt (PGD[511]). */
  | 'CR3_SHARES_KERNEL_PGD'
  /** The CPUs ran on other page tables (e.g. the kdump kernel's): no evidence either way. */
  | 'CR3_OTHER_TABLES'
  /** Without VMCOREINFO: a CPU's page tables map the kernel text linearly (2 MiB pages). */
  | 'CR3_TEXT_LINEAR'
  /** Without VMCOREINFO: a utsname ("Linux", a release) lies inside the kernel image so found. */
  | 'UTSNAME_IN_IMAGE'
  /** arm64: the linear map gives PHYS_OFFSET through the translation tables. */
  | 'LINEAR_MAP_AGREES';

export interface ProofStep {
  readonly code: ProofCode;
  /** What was checked, in words (may name values found, e.g. the CPU or the release). */
  readonly text: string;
}

export function proofStep(code: ProofCode, text: string): ProofStep {
  return { code, text };
}

/** Whether `steps` hold a step with `code`. */
export function hasStep(steps: readonly ProofStep[], code: ProofCode): boolean {
  return steps.some((s) => s.code === code);
}
