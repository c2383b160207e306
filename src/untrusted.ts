/**
 * Text that came from someone else (a bucket's manifest, a host name, a
 * decoder's complaint quoting its input) on its way to a terminal. Lives
 * below every layer so that tables, warnings and error lines escape it the
 * same way.
 */

// C0 and C1 controls, DEL, and the bidirectional overrides and isolates that reorder what follows them on screen.
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/gu;

/**
 * `s` with every character that could move the cursor, retitle the window,
 * hide or reorder text shown as `\xNN` or `\u{NNNN}`, so an escape sequence
 * written into a bucket is printed, never obeyed. Backslashes stay as they
 * are: messages quote names with JSON.stringify, whose escapes must read
 * the same on screen.
 */
export function printable(s: string): string {
  return s.replace(UNPRINTABLE, (c) => {
    const n = c.codePointAt(0)!;
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
  });
}
