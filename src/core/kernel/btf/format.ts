/**
 * BTF on-disk layout, from the kernel's Documentation/bpf/btf.rst and include/uapi/linux/btf.h.
 *
 * A blob is a header (`struct btf_header`), then a type section and a string section, both
 * placed relative to the end of the header. Each type is a `struct btf_type` (12 bytes)
 * followed by kind-specific data whose size depends on the kind and on `vlen`.
 */
import { defineStruct } from '../../struct.js';

export const BTF_MAGIC = 0xeb9f;
export const BTF_VERSION = 1;

/** struct btf_header (include/uapi/linux/btf.h). Offsets are from the end of the header. */
export const BtfHeader = defineStruct('btf_header', 24, {
  magic: { off: 0, type: 'u16' },
  version: { off: 2, type: 'u8' },
  flags: { off: 3, type: 'u8' },
  hdr_len: { off: 4, type: 'u32' },
  type_off: { off: 8, type: 'u32' },
  type_len: { off: 12, type: 'u32' },
  str_off: { off: 16, type: 'u32' },
  str_len: { off: 20, type: 'u32' },
});

/** struct btf_type: name_off, info (vlen 0-15, kind 24-28, kind_flag 31), size or type. */
export const BtfTypeRecord = defineStruct('btf_type', 12, {
  name_off: { off: 0, type: 'u32' },
  info: { off: 4, type: 'u32' },
  size_or_type: { off: 8, type: 'u32' },
});

/** BTF_KIND_* values. */
export const BtfKind = {
  UNKN: 0,
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FUNC: 12,
  FUNC_PROTO: 13,
  VAR: 14,
  DATASEC: 15,
  FLOAT: 16,
  DECL_TAG: 17,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const;
export type BtfKindNumber = (typeof BtfKind)[keyof typeof BtfKind];

export const KIND_NAMES: readonly string[] = [
  'UNKN', 'INT', 'PTR', 'ARRAY', 'STRUCT', 'UNION', 'ENUM', 'FWD', 'TYPEDEF', 'VOLATILE',
  'CONST', 'RESTRICT', 'FUNC', 'FUNC_PROTO', 'VAR', 'DATASEC', 'FLOAT', 'DECL_TAG', 'TYPE_TAG', 'ENUM64',
];

/** BTF_INT_ENCODING bits (bits 24-27 of the u32 after an INT's btf_type). */
export const BTF_INT_SIGNED = 1;
export const BTF_INT_CHAR = 2;
export const BTF_INT_BOOL = 4;

/**
 * Bytes of kind-specific data after the 12-byte btf_type, or -1 for an unknown kind.
 * INT: u32; ARRAY: btf_array (12); STRUCT/UNION: vlen × btf_member (12); ENUM: vlen × btf_enum (8);
 * FUNC_PROTO: vlen × btf_param (8); VAR: btf_var (4); DATASEC: vlen × btf_var_secinfo (12);
 * DECL_TAG: btf_decl_tag (4); ENUM64: vlen × btf_enum64 (12); the others none.
 */
export function extraSize(kind: number, vlen: number): number {
  switch (kind) {
    case BtfKind.INT: return 4;
    case BtfKind.ARRAY: return 12;
    case BtfKind.STRUCT:
    case BtfKind.UNION: return 12 * vlen;
    case BtfKind.ENUM: return 8 * vlen;
    case BtfKind.FUNC_PROTO: return 8 * vlen;
    case BtfKind.VAR: return 4;
    case BtfKind.DATASEC: return 12 * vlen;
    case BtfKind.DECL_TAG: return 4;
    case BtfKind.ENUM64: return 12 * vlen;
    case BtfKind.PTR:
    case BtfKind.FWD:
    case BtfKind.TYPEDEF:
    case BtfKind.VOLATILE:
    case BtfKind.CONST:
    case BtfKind.RESTRICT:
    case BtfKind.FUNC:
    case BtfKind.FLOAT:
    case BtfKind.TYPE_TAG: return 0;
    default: return -1;
  }
}
