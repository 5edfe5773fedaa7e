/**
 * The built-in output formats of `convertDump` (kdump-compressed and ELF), as `OutputFormat`
 * plug-ins: see the plug-in interface in ./index.ts.
 */
import { encodeKdumpHeader, encodeKdumpSubHeader, KdumpLayout, KdumpPagePlacer, PfnBitmap, type KdumpHeaderInfo } from '../../core/format/kdump/writer.js';
import type { CompressedBatch, OutputCodec } from '../../core/format/batch.js';
import { kdumpAbiOf } from '../../core/format/kdump/structs.js';
import { ElfWriter, planElfSegments, type ElfSegmentSpec } from '../../core/format/elf/writer.js';
import { countIn } from './ranges.js';
import type { OutputSink } from './sinks.js';
import type { ConvertPlan, OutputFormat, PfnRange } from './types.js';

function rangesToBitmap(maxPfn: number, len: number, ranges: readonly PfnRange[], lo = 0, hi = Infinity): PfnBitmap {
  const bm = new PfnBitmap(maxPfn, len);
  for (const r of ranges) {
    const s = Math.max(r.startPfn, lo);
    const e = Math.min(r.endPfn, hi, maxPfn);
    if (e > s) bm.setRange(s, e);
  }
  return bm;
}

export class KdumpFormat implements OutputFormat {
  readonly name = 'kdump';
  readonly compression: OutputFormat['compression'];
  private layout!: KdumpLayout;
  private placer!: KdumpPagePlacer;
  private sink!: OutputSink;
  private plan!: ConvertPlan;

  constructor(private readonly o: { codec: OutputCodec; level: number; dumpLevel: number }) {
    this.compression = { codec: o.codec, level: o.level, detectZero: o.dumpLevel >= 1 };
  }

  async begin(plan: ConvertPlan, sink: OutputSink): Promise<void> {
    this.plan = plan;
    this.sink = sink;
    const lo = plan.part?.startPfn ?? 0;
    const hi = plan.part?.endPfn ?? plan.maxPfn;
    this.layout = new KdumpLayout({
      pageSize: plan.pageSize,
      maxPfn: plan.maxPfn,
      is64: plan.is64,
      ...(kdumpAbiOf(plan.arch, plan.is64) ? { abi: kdumpAbiOf(plan.arch, plan.is64)! } : {}),
      littleEndian: plan.littleEndian,
      notes: plan.notes,
      numDumpable: countIn(plan.present, lo, hi),
      sharedZeroPage: this.o.dumpLevel >= 1,
    });
    this.placer = new KdumpPagePlacer(this.layout, this.o.codec);
    // Everything before the descriptors is known now: write it first, so that a flattened
    // stream starts with the headers (crash reads the first record as the header).
    await this.writeMeta(false);
    const z = this.placer.zeroPage();
    if (z) await sink.write(z.offset, z.bytes);
  }

  private async writeMeta(incomplete: boolean): Promise<void> {
    const { plan, layout } = this;
    const lo = plan.part?.startPfn ?? 0;
    const hi = plan.part?.endPfn ?? plan.maxPfn;
    const info: KdumpHeaderInfo = {
      ...plan.header,
      codec: this.o.codec,
      // pages the input lacked: the layout stays whole, the status says the dump is not
      incomplete: incomplete || !!plan.missing?.length,
      ...(plan.part ? { split: { startPfn: lo, endPfn: hi } } : {}),
    };
    if (!incomplete) {
      await this.sink.write(0, encodeKdumpHeader(layout, info));
      await this.sink.write(layout.pageSize, encodeKdumpSubHeader(layout, info));
    }
    // Bitmaps: 1st = RAM (whole machine), 2nd = dumpable pages of the whole machine, in every
    // part of a split set too (as makedumpfile --split writes it: crash counts descriptor
    // positions over the whole bitmap, and makedumpfile --reassemble takes it from one part);
    // a part holds descriptors only for its own [start_pfn, end_pfn). After an abort, only the
    // pages actually placed keep their bit within the own range.
    if (!incomplete) await this.sink.write(layout.bitmap1Offset, rangesToBitmap(plan.maxPfn, layout.bitmapLen, plan.ram).bytes);
    const bm2 = rangesToBitmap(plan.maxPfn, layout.bitmapLen, plan.present, 0, lo);
    for (const r of incomplete ? firstPages(plan.present, lo, hi, this.committed) : plan.present) {
      const s = Math.max(r.startPfn, lo);
      const e = Math.min(r.endPfn, hi, plan.maxPfn);
      if (e > s) bm2.setRange(s, e);
    }
    for (const r of plan.present) {
      const s = Math.max(r.startPfn, hi);
      const e = Math.min(r.endPfn, plan.maxPfn);
      if (e > s) bm2.setRange(s, e);
    }
    await this.sink.write(layout.bitmap2Offset, bm2.bytes);
    if (incomplete) await this.sink.write(0, encodeKdumpHeader(layout, info));
  }

  /** Pages whose data and descriptors are both on disk (what an incomplete file may claim). */
  private committed = 0;

  async writeBatch(b: CompressedBatch): Promise<void> {
    const { data, descs } = this.placer.place(b);
    if (data.bytes.length) await this.sink.write(data.offset, data.bytes);
    await this.sink.write(descs.offset, descs.bytes);
    this.committed += b.count;
  }

  async finish({ incomplete }: { incomplete: boolean }): Promise<number> {
    const { layout } = this;
    if (incomplete) await this.writeMeta(true);
    return Math.max(this.placer.end, layout.dataOffset);
  }

  counts() {
    return this.placer ? { ...this.placer.counts } : { compressed: 0, raw: 0, zero: 0 };
  }
}

/** The first `n` pages of `ranges` within [lo, hi), as ranges. */
function firstPages(ranges: readonly PfnRange[], lo: number, hi: number, n: number): PfnRange[] {
  const out: PfnRange[] = [];
  for (const r of ranges) {
    if (n <= 0) break;
    const s = Math.max(r.startPfn, lo);
    const e = Math.min(r.endPfn, hi);
    if (e <= s) continue;
    const take = Math.min(n, e - s);
    out.push({ startPfn: s, endPfn: s + take });
    n -= take;
  }
  return out;
}

export class ElfFormat implements OutputFormat {
  readonly name = 'elf';
  readonly compression: OutputFormat['compression'];
  private w!: ElfWriter;
  private sink!: OutputSink;
  private lossy = false;
  /** The file's bytes up to here are written (the placements are in file order). */
  private written = 0;

  constructor(private readonly o: { dumpLevel: number }) {
    this.compression = { codec: 'none', detectZero: o.dumpLevel >= 1 };
  }

  async begin(plan: ConvertPlan, sink: OutputSink): Promise<void> {
    this.sink = sink;
    this.lossy = !!plan.missing?.length;
    const lo = plan.part?.startPfn ?? 0;
    const hi = plan.part?.endPfn ?? plan.maxPfn;
    const present = plan.present
      .map((r) => ({ startPfn: Math.max(r.startPfn, lo), endPfn: Math.min(r.endPfn, hi) }))
      .filter((r) => r.endPfn > r.startPfn);
    const segs: ElfSegmentSpec[] = planElfSegments(present, plan.zeroRuns ?? []);
    const vsegs: ElfSegmentSpec[] = [];
    // p_vaddr is linear within a segment only where the source mapping is: split where it changes
    for (const s of segs) {
      const v = plan.vaddrOf?.(s.startPfn * plan.pageSize);
      vsegs.push(v === undefined ? s : { ...s, vaddr: v });
    }
    this.w = new ElfWriter({
      is64: plan.is64,
      littleEndian: plan.littleEndian,
      machine: plan.arch,
      pageSize: plan.pageSize,
      notes: plan.notes,
      segments: vsegs,
      aliases: plan.aliases ?? [],
      elideZero: this.o.dumpLevel >= 1,
      sparePhdrs: plan.sparePhdrs ?? 0,
    });
    // A file's header blocks are written now (zeros until finish() rewrites them): left a hole,
    // they would need new blocks at the end, which a full disk no longer has, and a file kept
    // with --keep-incomplete would have no header at all. (A stream sends the header once.)
    if (sink.truncate) await sink.write(0, new Uint8Array(this.w.noteOffset + this.w.noteBlob.length));
  }

  async writeBatch(b: CompressedBatch): Promise<void> {
    for (const p of this.w.place(b)) {
      if (p.bytes) await this.sink.write(p.offset, p.bytes);
      else if (p.zeros) await this.sink.zeros(p.offset, p.zeros);
      this.written = p.offset + (p.bytes?.length ?? p.zeros ?? 0);
    }
  }

  async finish({ incomplete }: { incomplete: boolean }): Promise<number> {
    const h = this.w.header({ incomplete, lossy: this.lossy, writtenEnd: this.written });
    await this.sink.write(0, h);
    return Math.max(this.w.end, h.length);
  }

  counts() {
    const c = this.w?.counts ?? { stored: 0, zero: 0 };
    return { compressed: 0, raw: c.stored, zero: c.zero };
  }
}
