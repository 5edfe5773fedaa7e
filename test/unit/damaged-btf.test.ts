/**
 * A damaged page of the vmlinux BTF costs the types or names in it, not the BTF (issue 9, item
 * 4). Input: the real sample with the page descriptor of one BTF page set to size 0 and flags 0.
 * Truth: the same sample's intact BTF: every type the damaged one still gives must be the intact
 * type of the same id (the ids after the page are placed by inference, so this checks it), the
 * types whose records lie in the page must be among those reported lost, and no name outside the
 * lost string page may change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { loadKernelBtf, type KernelBtf } from '../../src/core/kernel/btf/kernel-btf.js';
import { isVmcoreError } from '../../src/core/errors.js';
import { sampleBytes, sampleWithDamagedDescs } from '../helpers/sample-variants.js';

const load = async (b: Uint8Array) => loadKernelBtf(await analyzeKernel(await openDump([new BufferSource(b, 'sample.kdump')], nodeCodecs())));
let intactP: Promise<KernelBtf> | undefined;
const intact = () => (intactP ??= load(sampleBytes()));
const json = (v: unknown) => JSON.stringify(v, (_, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
/** x86_64 kernel text mapping of the sample: phys_base 0. */
const pageVa = (pfn: number) => 0xffffffff80000000n + (BigInt(pfn) << 12n);

for (const pfn of [0x2500, 0x2600, 0x2441]) {
  test(`BTF: a damaged page of the type section (pfn 0x${pfn.toString(16)}) costs the types around it; every other type keeps its id and content`, async () => {
    const a = await intact();
    const d = await load(sampleWithDamagedDescs([pfn]));
    const ib = a.btf;
    const db = d.btf;
    const start = Number(pageVa(pfn) - a.address);
    assert.ok(start > 24 && start + 4096 < 24 + ib.header.type_len, 'the page is inside the type section');
    assert.equal(db.typeCount, ib.typeCount);
    assert.equal(db.lostTypes.length, 1);
    const l = db.lostTypes[0]!;
    assert.match(l.reason, new RegExp(`pfn 0x${pfn.toString(16)} is damaged`));
    assert.ok(d.warnings.some((w) => w.code === 'BTF_DAMAGED' && w.text.includes(`types ${l.first}..${l.first + l.count - 1} (${l.count}) are lost`)), d.warnings.map((x) => x.text).join('\n'));
    // every record that overlaps the page is lost; the loss stays local (a few pages' worth)
    let inPage = 0;
    for (let id = 1; id < ib.typeCount; id++) {
      const o = ib.recordOffset(id)!;
      const next = id + 1 < ib.typeCount ? ib.recordOffset(id + 1)! : 24 + ib.header.type_len;
      if (o < start + 4096 && next > start) {
        inPage++;
        assert.ok(id >= l.first && id < l.first + l.count, `type ${id} overlaps the page but is not reported lost`);
      }
    }
    assert.ok(inPage > 10 && l.count < inPage + 400, `${l.count} lost for ${inPage} records in the page`);
    let same = 0;
    for (let id = 1; id < ib.typeCount; id++) {
      if (id >= l.first && id < l.first + l.count) {
        assert.throws(() => db.type(id), (e: unknown) => isVmcoreError(e) && e.code === 'PAGE_DAMAGED' && new RegExp(`type ${id} is lost: .*pfn 0x${pfn.toString(16)}`).test(e.message));
        continue;
      }
      assert.equal(json(db.type(id)), json(ib.type(id)), `type ${id}`);
      same++;
    }
    assert.equal(same, ib.typeCount - 1 - l.count);
    assert.deepEqual([db.offsetOf('task_struct', 'pid'), db.sizeOf(db.need('task_struct'))], [ib.offsetOf('task_struct', 'pid'), ib.sizeOf(ib.need('task_struct'))]);
  });
}

test('BTF: a damaged page of the string section costs the names in it only', async () => {
  const a = await intact();
  const d = await load(sampleWithDamagedDescs([0x2700]));
  const ib = a.btf;
  const db = d.btf;
  const strStart = 24 + ib.header.str_off;
  const lo = Number(pageVa(0x2700) - a.address) - strStart;
  assert.ok(lo > 0 && lo + 4096 < ib.header.str_len, 'the page is inside the string section');
  assert.equal(db.lostTypes.length, 0);
  assert.ok(d.warnings.some((w) => w.code === 'BTF_DAMAGED' && new RegExp(`string section bytes ${lo}\\.\\.${lo + 4096} cannot be read \\(.*pfn 0x2700 is damaged.*\\); the names there are lost`).test(w.text)), d.warnings.map((x) => x.text).join('\n'));
  // a name is lost exactly when its bytes (NUL included) touch the page
  const lostName = (off: number, name: string) => off + new TextEncoder().encode(name).length >= lo && off < lo + 4096;
  let lost = 0;
  let kept = 0;
  for (let id = 1; id < ib.typeCount; id++) {
    const x = ib.type(id);
    const y = db.type(id);
    const names = (t: typeof x) => [t.name, ...(t.members ?? []).map((m) => m.name), ...(t.enumerators ?? []).map((e) => e.name), ...(t.params ?? []).map((p) => p.name)];
    const nx = names(x);
    const ny = names(y);
    assert.equal(ny.length, nx.length);
    for (let i = 0; i < nx.length; i++) {
      const m = /^\?lost-name@(\d+)$/.exec(ny[i]!);
      if (m) {
        assert.ok(lostName(Number(m[1]), nx[i]!), `type ${id}: ${nx[i]} at ${m[1]} reported lost, outside the page`);
        lost++;
      } else {
        assert.equal(ny[i], nx[i], `type ${id}`);
        kept++;
      }
    }
    const strip = (t: typeof x) => json({ ...t, name: undefined, members: t.members?.map((m) => ({ ...m, name: undefined })), enumerators: t.enumerators?.map((e) => ({ ...e, name: undefined })), params: t.params?.map((p) => ({ ...p, name: undefined })) });
    assert.equal(strip(y), strip(x), `type ${id}`);
  }
  assert.ok(lost > 50 && kept > 100000, `${lost} names lost, ${kept} kept`);
});
