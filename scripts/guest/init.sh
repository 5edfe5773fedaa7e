#!/bin/busybox sh
# /init of the test guest (copied into the initramfs by build-initramfs.sh).
# Kernel command line parameters (all optional):
#   vmcore_tag=NAME      name used in the marker lines
#   vmcore_fill=MIB      fill a tmpfs with about MIB MiB of realistic data (text, binaries,
#                        compressed and random data) built from /seed
#   vmcore_mode=idle|panic   after setup: idle (default) or crash the kernel via sysrq-c
#   vmcore_procs=N       start N user processes (busybox sleep loops, plus one plain sleep) before
#                        the ready line, list the tasks with ps and print a sample of /proc/kallsyms
#                        and /proc/modules on the console (the analysis guest, analysis-guest.sh)
#   vmcore_plant=1       run /bin/plant (build-initramfs.sh --plant): 8 MiB of anonymous memory,
#                        32 MiB freed and an 8 MiB file in /tmp, each filled with its own marker
/bin/busybox mkdir -p /proc /sys /dev /tmp /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null

TAG=guest FILL=0 MODE=idle PROCS=0 PLANT=0
for w in $(cat /proc/cmdline); do
  case "$w" in
    vmcore_tag=*) TAG=${w#vmcore_tag=} ;;
    vmcore_fill=*) FILL=${w#vmcore_fill=} ;;
    vmcore_mode=*) MODE=${w#vmcore_mode=} ;;
    vmcore_procs=*) PROCS=${w#vmcore_procs=} ;;
    vmcore_plant=*) PLANT=${w#vmcore_plant=} ;;
  esac
done
say() { echo "GUEST: $*"; }
say "init started tag=$TAG fill=$FILL mode=$MODE"
# The vmcoreinfo device is only written by the qemu_fw_cfg driver (a module in Debian).
if [ -f /lib/modules/qemu_fw_cfg.ko ]; then
  insmod /lib/modules/qemu_fw_cfg.ko 2>/dev/null && say "qemu_fw_cfg loaded"
fi
# Further modules put in by build-initramfs.sh --module NAME, loaded in name order.
for m in /lib/modules/extra/*.ko; do
  [ -f "$m" ] && insmod "$m" 2>/dev/null && say "module loaded: $(basename "$m" .ko)"
done
echo "VMCORE-GUEST-MARKER $TAG" > /dev/kmsg
say "kallsyms:"
grep -E ' (_text|_stext|phys_base|init_uts_ns|vmcoreinfo_note|_end)$' /proc/kallsyms
say "iomem:"
cat /proc/iomem
say "iomem end"
[ -f /sys/kernel/vmcoreinfo ] && say "sys_kernel_vmcoreinfo: $(cat /sys/kernel/vmcoreinfo)"

if [ "$FILL" -gt 0 ] 2>/dev/null && ! ls /seed/* >/dev/null 2>&1; then
  say "no seed data in the initramfs (built with --seed-mib 0): not filling"
  FILL=0
fi
if [ "$FILL" -gt 0 ] 2>/dev/null; then
  mkdir -p /fill && mount -t tmpfs -o size=100% fill /fill
  # Every copy starts with a pad of a different, non page-aligned length so that no two
  # copies share page contents.
  i=0 done=0
  want=$((FILL * 1024 * 1024))
  while [ "$done" -lt "$want" ]; do
    for s in /seed/*; do
      [ -f "$s" ] || continue
      pad=$(( (i * 1031) % 4093 + 1 ))
      { head -c "$pad" /seed/text 2>/dev/null; cat "$s"; } > "/fill/$i.$(basename "$s")"
      sz=$(stat -c %s "/fill/$i.$(basename "$s")")
      done=$((done + sz)); i=$((i + 1))
      [ "$done" -ge "$want" ] && break
    done
  done
  say "filled $((done / 1048576)) MiB in $i files"
fi
if [ "$PROCS" -gt 0 ] 2>/dev/null; then
  i=0
  while [ "$i" -lt "$PROCS" ]; do
    sh -c 'while true; do sleep 1; done' &
    i=$((i + 1))
  done
  sleep 100000 &
  sleep 2
  say "ps:"
  ps -o pid,ppid,stat,comm
  say "ps end"
  say "modules:"
  cat /proc/modules
  say "modules end"
  say "kallsyms sample:"
  # every 2000th text symbol, the module symbols' first lines and a few fixed names
  awk '$2 ~ /^[Tt]$/ && NR % 2000 == 0' /proc/kallsyms
  grep '\[' /proc/kallsyms | awk 'NR % 50 == 1'
  grep -E ' (_stext|_etext|init_task|sysrq_handle_crash|panic|orc_lookup|__start_orc_unwind_ip|__stop_orc_unwind_ip|__start_orc_unwind|__stop_orc_unwind|hardirq_stack_ptr|pcpu_hot|current_task|__per_cpu_offset|runqueues)$' /proc/kallsyms
  say "kallsyms sample end"
fi
if [ "$PLANT" = 1 ] && [ -x /bin/plant ]; then
  mkfifo /tmp/plant.out
  /bin/plant 8 32 /tmp/cache-marker 8 > /tmp/plant.out &
  read -r line < /tmp/plant.out
  say "$line"
fi
free
echo "VMCORE-GUEST-READY $TAG" > /dev/kmsg
say "ready"
if [ "$MODE" = panic ]; then
  say "triggering panic"
  echo 1 > /proc/sys/kernel/sysrq
  echo c > /proc/sysrq-trigger
fi
while true; do sleep 3600; done
