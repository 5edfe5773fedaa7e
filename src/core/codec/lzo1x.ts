/**
 * LZO1X decompression in plain TypeScript (the portable fallback; Node uses the native
 * binding). Written from the format description: literal runs and matches M1..M4, the state
 * carried in the two low bits of the last match, end marker = M4 with distance 0.
 * Every read and write is bounds-checked, so hostile input ends in an error, never a hang.
 */
export function lzo1xDecompress(src: Uint8Array, expectedSize: number): Uint8Array {
  const out = new Uint8Array(expectedSize);
  const n = src.length;
  let ip = 0;
  let op = 0;
  const fail = (why: string): never => {
    throw new Error(`lzo1x: ${why} at input ${ip}, output ${op}`);
  };
  const inb = (): number => {
    if (ip >= n) fail('input overrun');
    return src[ip++]!;
  };
  const literals = (count: number) => {
    if (ip + count > n) fail('input overrun in literal run');
    if (op + count > expectedSize) fail('output overrun in literal run');
    out.set(src.subarray(ip, ip + count), op);
    ip += count;
    op += count;
  };
  const copyMatch = (dist: number, count: number) => {
    const from = op - dist;
    if (from < 0) fail('match before start of output');
    if (op + count > expectedSize) fail('output overrun in match');
    for (let i = 0; i < count; i++) out[op + i] = out[from + i]!;
    op += count;
  };
  const extLen = (base: number): number => {
    let t = 0;
    while (true) {
      const b = inb();
      if (b !== 0) return t + base + b;
      t += 255;
      if (t > expectedSize + 255 * 2) fail('run length beyond output size');
    }
  };

  // state: 0 = expect literal run or match, after a literal run we are in "first literal" mode
  let t = inb();
  let state: 'loop' | 'first' | 'match' | 'next' = 'loop';
  if (t > 17) {
    t -= 17;
    if (t < 4) {
      state = 'next';
    } else {
      literals(t);
      state = 'first';
    }
  } else {
    ip--; // re-read in loop
  }

  for (;;) {
    if (state === 'loop') {
      t = inb();
      if (t >= 16) {
        state = 'match';
      } else {
        if (t === 0) t = extLen(15);
        literals(t + 3);
        state = 'first';
        continue;
      }
    }
    if (state === 'first') {
      t = inb();
      if (t >= 16) {
        state = 'match';
      } else {
        const dist = 1 + 0x0800 + (t >> 2) + (inb() << 2);
        copyMatch(dist, 3);
        t = src[ip - 2]! & 3;
        if (t === 0) {
          state = 'loop';
          continue;
        }
        state = 'next';
      }
    }
    if (state === 'next') {
      literals(t);
      t = inb();
      state = 'match';
    }
    // state === 'match'
    if (t >= 64) {
      const dist = 1 + ((t >> 2) & 7) + (inb() << 3);
      copyMatch(dist, (t >> 5) + 1);
    } else if (t >= 32) {
      let len = t & 31;
      if (len === 0) len = extLen(31);
      const lo = inb();
      const hi = inb();
      copyMatch(1 + (((hi << 8) | lo) >> 2), len + 2);
    } else if (t >= 16) {
      let dist = (t & 8) << 11;
      let len = t & 7;
      if (len === 0) len = extLen(7);
      const lo = inb();
      const hi = inb();
      dist += ((hi << 8) | lo) >> 2;
      if (dist === 0) {
        if (op !== expectedSize) fail(`stream ended after ${op} bytes`);
        if (ip !== n) fail('trailing input after end marker');
        return out;
      }
      copyMatch(dist + 0x4000, len + 2);
    } else {
      const dist = 1 + (t >> 2) + (inb() << 2);
      copyMatch(dist, 2);
    }
    t = src[ip - 2]! & 3;
    if (t === 0) {
      state = 'loop';
    } else {
      state = 'next';
    }
  }
}
