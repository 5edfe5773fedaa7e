// The compiler writes its output with mode 0644 on every build; `vmcore` (package.json "bin")
// must stay executable for `npx vmcore` in a checkout, where npm does not set the mode itself.
import { chmodSync, readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
for (const rel of Object.values(pkg.bin)) chmodSync(new URL(`../${rel}`, import.meta.url), 0o755);
