/** Every CLI command module; each exports register(program). */
import type { Command } from 'commander';
import * as info from './info.js';
import * as read from './read.js';
import * as hash from './hash.js';
import * as diff from './diff.js';
import * as dmesg from './dmesg.js';
import * as vmcoreinfo from './vmcoreinfo.js';
import * as fix from './fix.js';
import * as convert from './convert.js';
import * as dump from './dump.js';
import * as bt from './bt.js';
import * as struct from './struct.js';
import * as ps from './ps.js';
import * as sym from './sym.js';
import * as mod from './mod.js';
import * as usage from './usage.js';
import * as serve from './serve.js';

export const commands: { register(p: Command): void }[] = [info, read, hash, diff, dmesg, vmcoreinfo, fix, convert, dump, struct, ps, mod, bt, sym, usage, serve];
