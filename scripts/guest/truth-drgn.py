#!/usr/bin/python3
"""Truth about one dump from drgn with the matching -dbg vmlinux, as one JSON object.

    scripts/guest/truth-drgn.py DUMP VMLINUX > truth-drgn.json

DUMP must be a file drgn opens (QEMU's own paging=false ELF is not one: use `vmcore fix` on it
first). Keys: release, kaslr_offset, cpus[] {cpu, current, idle, hardirq_stack_ptr},
tasks[] {pid, tgid, ppid, comm, state, cpu, task, on_cpu, kernel_thread, idle_cpu, stack[]
{function, pc, sp, inline} or stack_error}, prstatus_threads[] {tid, stack} (drgn's view of the CPU
notes), crashed_thread_tid, modules[] {name, base, size, text_size} (base and size as /proc/modules prints them),
symbols {name: addr}.
Addresses are 0x-prefixed lowercase hex strings. Each piece that drgn cannot read is reported in
`errors` instead of stopping the script.
"""
import json
import sys

import drgn
from drgn.helpers.linux.cpumask import for_each_online_cpu, for_each_possible_cpu
from drgn.helpers.linux.list import list_for_each_entry
from drgn.helpers.linux.percpu import per_cpu
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.sched import task_state_to_char

SYMBOLS = [
    '_stext', '_etext', '_text', 'init_task', 'sysrq_handle_crash', 'panic', 'schedule',
    '__schedule', 'do_syscall_64', 'orc_lookup', '__start_orc_unwind_ip', '__stop_orc_unwind_ip',
    '__start_orc_unwind', '__stop_orc_unwind', 'hardirq_stack_ptr', 'pcpu_hot', 'current_task',
    '__per_cpu_offset', 'runqueues', 'cpu_entry_area', 'init_uts_ns', 'modules',
]


def hx(v):
    return '0x%x' % (int(v) & 0xFFFFFFFFFFFFFFFF)


def main():
    dump, vmlinux = sys.argv[1], sys.argv[2]
    prog = drgn.Program()
    prog.set_core_dump(dump)
    prog.load_debug_info([vmlinux])
    errors = []
    out = {'drgn': drgn.__version__, 'errors': errors}
    out['release'] = prog['init_uts_ns'].name.release.string_().decode()
    try:
        out['kaslr_offset'] = hx(prog.symbol('_stext').address - 0xffffffff81000000)
    except Exception as e:  # noqa: BLE001
        errors.append('kaslr_offset: %s' % e)

    symbols = {}
    for name in SYMBOLS:
        try:
            symbols[name] = hx(prog.symbol(name).address)
        except Exception:  # noqa: BLE001 (not every symbol exists in every version)
            pass
    out['symbols'] = symbols

    cpus = []
    currents = {}
    online = set(for_each_online_cpu(prog))  # a panic takes the other CPUs offline
    for cpu in for_each_possible_cpu(prog):
        rq = per_cpu(prog['runqueues'], cpu)
        entry = {'cpu': cpu, 'online': cpu in online, 'current': hx(rq.curr.value_()), 'idle': hx(rq.idle.value_())}
        currents[int(rq.curr.value_())] = cpu
        for var in ('hardirq_stack_ptr',):
            try:
                entry[var] = hx(per_cpu(prog[var], cpu).value_())
            except Exception:  # noqa: BLE001
                try:
                    entry[var] = hx(per_cpu(prog['pcpu_hot'], cpu).hardirq_stack_ptr.value_())
                except Exception as e:  # noqa: BLE001
                    errors.append('cpu %d %s: %s' % (cpu, var, e))
        cpus.append(entry)
    out['cpus'] = cpus

    def frame_entry(f):
        # a frame whose registers drgn could not unwind has no program counter (LookupError):
        # recorded with pc null rather than losing the whole trace
        try:
            pc = hx(f.pc)
        except LookupError:
            return {'function': None, 'pc': None, 'sp': None, 'inline': False}
        return {
            'function': f.name if f.name is not None else None,
            'pc': pc,
            'sp': hx(f.sp) if hasattr(f, 'sp') else None,
            'inline': bool(f.is_inline),
        }

    def frames(trace):
        return [frame_entry(f) for f in trace]

    def task_entry(task, idle_cpu=None):
        t = {
            'pid': int(task.pid),
            'tgid': int(task.tgid),
            'ppid': int(task.real_parent.pid) if task.real_parent.value_() else 0,
            'comm': task.comm.string_().decode(errors='replace'),
            'state': task_state_to_char(task),
            'cpu': int(task.thread_info.cpu) if hasattr(task.thread_info, 'cpu') else int(task.cpu),
            'task': hx(task.value_()),
            'on_cpu': currents.get(int(task.value_())),
            'kernel_thread': task.mm.value_() == 0,
        }
        if idle_cpu is not None:
            t['idle_cpu'] = idle_cpu
        try:
            t['stack'] = frames(prog.stack_trace(task))
        except Exception as e:  # noqa: BLE001
            t['stack_error'] = str(e)
        return t

    tasks = []
    seen = set()
    for task in for_each_task(prog):
        try:
            tasks.append(task_entry(task))
            seen.add(int(task.value_()))
        except Exception as e:  # noqa: BLE001
            errors.append('task %s: %s' % (hx(task.value_()), e))
    for entry in cpus:  # the idle tasks (swapper/N) are not on the task list, except init_task
        addr = int(entry['idle'], 16)
        if addr not in seen:
            tasks.append(task_entry(drgn.Object(prog, 'struct task_struct *', addr), entry['cpu']))
    out['tasks'] = tasks

    # drgn's threads come from the NT_PRSTATUS notes, matched to tasks by the note's pr_pid. QEMU
    # writes the CPU number + 1 there, not the task's pid: record what drgn made of it.
    threads = []
    try:
        for th in prog.threads():
            entry = {'tid': int(th.tid)}
            try:
                entry['stack'] = frames(th.stack_trace())
            except Exception as e:  # noqa: BLE001
                entry['stack_error'] = str(e)
            threads.append(entry)
        out['crashed_thread_tid'] = int(prog.crashed_thread().tid)
    except Exception as e:  # noqa: BLE001
        errors.append('threads: %s' % e)
    out['prstatus_threads'] = threads

    modules = []
    try:
        for mod in list_for_each_entry('struct module', prog['modules'].address_of_(), 'list'):
            m = {'name': mod.name.string_().decode()}
            try:
                # 6.4+: mem[MOD_TEXT, MOD_DATA, MOD_RODATA, MOD_RO_AFTER_INIT] are the core
                # regions; /proc/modules prints their total size and the text base
                m['base'] = hx(mod.mem[0].base.value_())
                m['text_size'] = int(mod.mem[0].size)
                m['size'] = sum(int(mod.mem[i].size) for i in range(4))
            except (AttributeError, LookupError):
                m['base'] = hx(mod.core_layout.base.value_())
                m['text_size'] = int(mod.core_layout.text_size)
                m['size'] = int(mod.core_layout.size)
            modules.append(m)
    except Exception as e:  # noqa: BLE001
        errors.append('modules: %s' % e)
    out['modules'] = modules
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
