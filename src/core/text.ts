/**
 * Strings of a dump made safe for a terminal. A dump is untrusted input: a task's comm (set by
 * any process with prctl(PR_SET_NAME)), a header's utsname or a note's name may hold escape
 * sequences, carriage returns or newlines that would recolour the terminal, move the cursor or
 * forge lines of a report.
 */

/**
 * `text` safe for one line of a terminal: control characters (C0, DEL, C1: ESC sequences, CR,
 * LF, BEL, tab) as \xNN, the bidirectional formatting characters (U+200E, U+200F, U+202A-U+202E,
 * U+2066-U+2069: a right-to-left override reorders what follows it on the line) as \uNNNN;
 * everything else untouched.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, escapeChar);
}

/** \xNN for a control character, \uNNNN for a bidirectional formatting character. */
function escapeChar(c: string): string {
  const n = c.charCodeAt(0);
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
}

/** `text` with the control characters of {@link printable} escaped, tab and newline kept (several lines). */
export function printableText(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, escapeChar);
}

/*
 * Bytes as text. TextDecoder('latin1') is not ISO-8859-1: the WHATWG Encoding Standard maps the
 * label to windows-1252, which turns bytes 0x80-0x9f into other characters (0x80 is '€', U+20AC),
 * so `charCodeAt(i) & 0xff` does not give the bytes back. A dump's strings that are written out
 * again (VMCOREINFO, a header's utsname, note names) go through these instead.
 */
const windows1252 = new TextDecoder('latin1');
// ignoreBOM: a leading EF BB BF is text of the field (U+FEFF), not a mark to drop
const utf8Fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * `bytes` as ISO-8859-1: one character per byte, U+0000..U+00FF, so that {@link latin1Bytes}
 * gives the same bytes back. Fast path: without a byte in 0x80..0x9f, windows-1252 decodes alike.
 */
export function latin1(bytes: Uint8Array): string {
  // short strings (a symbol name, a task's comm) are made directly: no scan, no decoder call
  if (bytes.length <= 64) return charCodes(bytes);
  for (let i = 0; i < bytes.length; i++) if ((bytes[i]! & 0xe0) === 0x80) return charCodes(bytes);
  return windows1252.decode(bytes);
}

/**
 * `bytes` as ISO-8859-1 by String.fromCharCode, 4096 bytes a call (the spread form of the same
 * call, `fromCharCode(...bytes)`, is about ten times slower).
 */
export function charCodes(bytes: Uint8Array): string {
  if (bytes.length <= 4096) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  let s = '';
  for (let j = 0; j < bytes.length; j += 4096) s += String.fromCharCode.apply(null, bytes.subarray(j, j + 4096) as unknown as number[]);
  return s;
}

/** The bytes of a string made by {@link latin1} (a character above U+00FF keeps its low byte). */
export function latin1Bytes(text: string): Uint8Array {
  const b = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) b[i] = text.charCodeAt(i) & 0xff;
  return b;
}

/**
 * A string field of a dump (a header's utsname, a C string of the kernel) as text: UTF-8 when the
 * bytes are valid UTF-8 (a host name or version string set in UTF-8), else ISO-8859-1 (one
 * character per byte, {@link latin1}).
 */
export function dumpText(bytes: Uint8Array): string {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i]! >= 0x80) {
      try {
        return utf8Fatal.decode(bytes);
      } catch {
        return latin1(bytes);
      }
    }
  }
  return windows1252.decode(bytes);
}

/**
 * A header string field as read by struct.ts (one character per byte, {@link latin1}) as text to
 * show: {@link dumpText} of its bytes. The field itself stays bytes, so that a conversion writes
 * it back unchanged whatever its encoding.
 */
export function headerText(field: string): string {
  return dumpText(latin1Bytes(field));
}
