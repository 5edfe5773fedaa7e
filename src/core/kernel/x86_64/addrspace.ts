/**
 * The x86_64 kernel's virtual address-space layout: the kernel text mapping at
 * __START_KERNEL_map, the direct map of all physical memory at page_offset_base.
 * Source: Documentation/arch/x86/x86_64/mm.rst, arch/x86/include/asm/page_64_types.h.
 */

/** __START_KERNEL_map: PA = VA − __START_KERNEL_map + phys_base inside the kernel text mapping. */
export const START_KERNEL_MAP = 0xffffffff80000000n;
/** KERNEL_IMAGE_SIZE with KASLR (1 GiB): the largest kernel text mapping. */
export const KERNEL_IMAGE_SIZE = 1n << 30n;
/** End (exclusive) of the largest kernel text mapping (KERNEL_IMAGE_SIZE 1 GiB with KASLR). */
export const KERNEL_TEXT_END = 0xffffffffc0000000n;
/** page_offset_base without KASLR: 4-level and 5-level paging. */
export const DIRECT_MAP_DEFAULT_L4 = 0xffff888000000000n;
export const DIRECT_MAP_DEFAULT_L5 = 0xff11000000000000n;
/** Direct-map region searched for page_offset_base (libaddrxlat's bounds). */
export const DIRECT_MAP_REGION_L4 = { start: 0xffff880000000000n, end: 0xffffc80000000000n } as const;
export const DIRECT_MAP_REGION_L5 = { start: 0xff10000000000000n, end: 0xff91000000000000n } as const;

const MASK64 = (1n << 64n) - 1n;

/** VA of the kernel text mapping → PA for a given phys_base (mod 2^64, as the kernel computes it). */
export function textToPhys(va: bigint, physBase: bigint): bigint {
  return (va - START_KERNEL_MAP + physBase) & MASK64;
}
