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
