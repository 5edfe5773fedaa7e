/**
 * The architectures vmcore knows the kernel of, by the ELF machine name Dump.arch and
 * KernelInfo.arch use. A new architecture is a folder implementing KernelArch (arch.ts) and one
 * line here.
 */
import type { KernelArch } from './arch.js';
import type { CpuRegisters } from './x86_64/cpu.js';
import { x86_64Arch } from './x86_64/arch.js';
import { aarch64Arch } from './aarch64/arch.js';

export const KERNEL_ARCHS: Readonly<Record<string, KernelArch<CpuRegisters, unknown>>> = {
  x86_64: x86_64Arch as KernelArch<CpuRegisters, unknown>,
  aarch64: aarch64Arch as KernelArch<CpuRegisters, unknown>,
};

/** The KernelArch of `name`, or undefined for an architecture vmcore has no kernel knowledge of. */
export function kernelArch(name: string): KernelArch<CpuRegisters, unknown> | undefined {
  return Object.prototype.hasOwnProperty.call(KERNEL_ARCHS, name) ? KERNEL_ARCHS[name] : undefined;
}
