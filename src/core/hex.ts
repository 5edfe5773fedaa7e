/**
 * Hex formatting of numbers for messages and JSON: one place for each form.
 */

/** `v` as 0x-prefixed hex, as it is (a negative value keeps its sign). */
export function hex(v: number | bigint): string {
  return '0x' + v.toString(16);
}

/** 64-bit value as 0x-prefixed hex (two's complement for negatives). */
export function hex64(v: bigint): string {
  return '0x' + BigInt.asUintN(64, v).toString(16);
}

/** A register as the kernel's __show_regs prints it: 16 hex digits, no prefix (0 when absent). */
export function hex16(v: bigint | undefined): string {
  return BigInt.asUintN(64, v ?? 0n).toString(16).padStart(16, '0');
}
