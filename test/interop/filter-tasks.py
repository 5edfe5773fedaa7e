"""Walk the task list of a dump with drgn: prints {"tasks": N, "error": null | "..."} (the
number of tasks read before the walk failed, if it did). Usage: filter-tasks.py DUMP VMLINUX"""
import json
import sys

import drgn
from drgn.helpers.linux.pid import for_each_task

prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
n, err = 0, None
try:
    for t in for_each_task(prog):
        t.pid.value_()
        t.comm.string_()
        n += 1
except drgn.FaultError as e:
    err = str(e)
print(json.dumps({"tasks": n, "error": err}))
