/** The `vmcore` command as launch.ts loads it: main.ts (bundled as dist/src/cli/command.cjs, run with its code cache). */
import './main.js';
