/**
 * Strings of a dump made safe for a terminal. A dump is untrusted input: a task's comm (set by
 * any process with prctl(PR_SET_NAME)), a header's utsname or a note's name may hold escape
 * sequences, carriage returns or newlines that would recolour the terminal, move the cursor or
 * forge lines of a report.
 */

/**
 * `text` safe for one line of a terminal: control characters (C0, DEL, C1: ESC sequences, CR,
 * LF, BEL, tab) as \xNN; everything else untouched.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** `text` with the control characters of {@link printable} escaped, tab and newline kept (several lines). */
export function printableText(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/*
 * Bytes as text. TextDecoder('latin1') is not ISO-8859-1: the WHATWG Encoding Standard maps the
 * label to windows-1252, which turns bytes 0x80-0x9f into other characters (0x80 is '€', U+20AC),
 * so `charCodeAt(i) & 0xff` does not give the bytes back. A dump's strings that are written out
 * again (VMCOREINFO, a header's utsname, note names) go through these instead.
 */
const windows1252 = new TextDecoder('latin1');
const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

/**
 * `bytes` as ISO-8859-1: one character per byte, U+0000..U+00FF, so that {@link latin1Bytes}
 * gives the same bytes back. Fast path: without a byte in 0x80..0x9f, windows-1252 decodes alike.
 */
export function latin1(bytes: Uint8Array): string {
  for (let i = 0; i < bytes.length; i++) {
    if ((bytes[i]! & 0xe0) === 0x80) {
      let s = '';
      for (let j = 0; j < bytes.length; j += 8192) s += String.fromCharCode(...bytes.subarray(j, j + 8192));
      return s;
    }
  }
  return windows1252.decode(bytes);
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

const utf8Encoder = new TextEncoder();

/**
 * The bytes of a dump's string field that holds at most `max` bytes: `text` in UTF-8 (what
 * {@link dumpText} read from valid UTF-8 comes back byte for byte; text it read as ISO-8859-1
 * comes back as the UTF-8 of the same characters), cut at a character boundary.
 */
export function dumpTextBytes(text: string, max: number): Uint8Array {
  const b = utf8Encoder.encode(text);
  if (b.length <= max) return b;
  let n = max;
  // a continuation byte (10xxxxxx) at the cut: back to the start of its character
  while (n > 0 && (b[n]! & 0xc0) === 0x80) n--;
  return b.subarray(0, n);
}
