# Shared by the bench scripts (source it): run a command once to warm up (not with WARMUP=0), then $RUNS times under
# GNU time, and append one JSON line per run to $JSONL: wall seconds, user+system CPU seconds,
# peak RSS (KiB) and the 1-minute load average before the run. Before each run (untimed) `sync`
# writes back what earlier runs left dirty in the page cache, so that no run is throttled by
# the writeback of gigabytes another tool wrote before it.
#   measure NAME STDIN_FILE STDOUT_FILE COMMAND...
# Needs: $WORK (scratch directory), $JSONL, $RUNS; GNU time at /usr/bin/time.
measure() {
  local name=$1 input=$2 out=$3; shift 3
  if [ "${WARMUP:-1}" != 0 ]; then
    "$@" < "$input" > "$out" 2> "$WORK/stderr.txt" || { echo "FAILED: $name" >&2; tail -3 "$WORK/stderr.txt" >&2; }
  fi
  local i
  for ((i = 0; i < RUNS; i++)); do
    sync
    local load; load=$(cut -d' ' -f1 /proc/loadavg)
    /usr/bin/time -v -o "$WORK/time.txt" "$@" < "$input" > "$out" 2> "$WORK/stderr.txt" || true
    local wall cpu rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/time.txt")
    cpu=$(awk -F': ' '/User time|System time/ {s+=$2} END {print s}' "$WORK/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    printf '{"name":"%s","wall_s":%s,"cpu_s":%s,"peak_rss_kib":%s,"load_before":%s}\n' "$name" "$wall" "$cpu" "$rss" "$load" | tee -a "$JSONL" >&2
  done
}

# The median row of each name in $JSONL as a Markdown table (wall s, CPU s, peak RSS MiB), and
# each row's wall and CPU ratio to the row named $1.
measure_table() {
  node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const names = [...new Set(rows.map((r) => r.name))];
const m = Object.fromEntries(names.map((n) => { const r = rows.filter((x) => x.name === n); return [n, { wall: med(r.map((x) => x.wall_s)), cpu: med(r.map((x) => x.cpu_s)), rss: med(r.map((x) => x.peak_rss_kib)) / 1024, n: r.length }]; }));
const base = m[process.argv[2]];
console.log(`| command | wall s (median) | CPU s (median) | peak RSS MiB | wall vs ${process.argv[2]} | CPU vs it |`);
console.log("|---|---|---|---|---|---|");
for (const n of names) {
  const x = m[n];
  const r = (a, b) => (b && a ? (b / a).toFixed(2) + "x" : "-");
  console.log(`| ${n} | ${x.wall.toFixed(2)} | ${x.cpu.toFixed(2)} | ${x.rss.toFixed(0)} | ${r(x.wall, base?.wall)} | ${r(x.cpu, base?.cpu)} |`);
}' "$JSONL" "$1"
}
