/** The `vmcore` command as launch.ts loads it: main.ts (bundled as dist/src/cli/command.js). */
import './main.js';
