#!/bin/busybox sh
# /init of the test guest (copied into the initramfs by build-initramfs.sh).
# Kernel command line parameters (all optional):
#   vmcore_tag=NAME      name used in the marker lines
#   vmcore_fill=MIB      fill a tmpfs with about MIB MiB of realistic data (text, binaries,
#                        compressed and random data) built from /seed
#   vmcore_mode=idle|panic|capture   after setup: idle (default) or crash the kernel via sysrq-c
#                        (or through /proc/crashmod when the crashmod test module is loaded: its
#                        crash kind from the command line's crashmod.mode=);
#                        capture: this is the kdump capture kernel (vmcore_kdump=1 loaded it): save
#                        /proc/vmcore to the first virtio disk as ELF at 0 and through
#                        `makedumpfile -d 31 -c` at vmcore_kdump_off=MIB, print
#                        `VMCORE-CAPTURE-SAVED elf|kdump OFFSET_MIB BYTES`, then power off
#   vmcore_kdump=1       (initramfs of build-initramfs.sh --kdump, kernel booted with crashkernel=)
#                        load /boot/vmlinuz + /boot/capture.cpio.gz as the crash kernel with
#                        `kexec -p`, keep CPU 1 busy in the kernel (dd from /dev/zero) and panic
#                        from CPU 0, so that the panic stops CPU 1 by NMI
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

TAG=guest FILL=0 MODE=idle PROCS=0 PLANT=0 KDUMP=0 KDUMP_OFF=512
for w in $(cat /proc/cmdline); do
  case "$w" in
    vmcore_tag=*) TAG=${w#vmcore_tag=} ;;
    vmcore_fill=*) FILL=${w#vmcore_fill=} ;;
    vmcore_mode=*) MODE=${w#vmcore_mode=} ;;
    vmcore_procs=*) PROCS=${w#vmcore_procs=} ;;
    vmcore_plant=*) PLANT=${w#vmcore_plant=} ;;
    vmcore_kdump=*) KDUMP=${w#vmcore_kdump=} ;;
    vmcore_kdump_off=*) KDUMP_OFF=${w#vmcore_kdump_off=} ;;
  esac
done
say() { echo "GUEST: $*"; }
if [ "$MODE" = capture ]; then
  say "capture kernel: /proc/vmcore is $(stat -c %s /proc/vmcore) bytes"
  for m in $(cat /lib/modules/kdump/order); do insmod "/lib/modules/kdump/$m.ko" || say "insmod $m failed"; done
  i=0
  while [ ! -b /dev/vda ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  if [ -b /dev/vda ]; then
    dd if=/proc/vmcore of=/dev/vda bs=1M 2>&1
    say "VMCORE-CAPTURE-SAVED elf 0 $(stat -c %s /proc/vmcore)"
    if makedumpfile -d 31 -c /proc/vmcore /tmp/vmcore.kdump 2>&1; then
      dd if=/tmp/vmcore.kdump of=/dev/vda bs=1M seek="$KDUMP_OFF" 2>&1
      say "VMCORE-CAPTURE-SAVED kdump $KDUMP_OFF $(stat -c %s /tmp/vmcore.kdump)"
    fi
    sync
  else
    say "no /dev/vda: nothing saved"
  fi
  say "VMCORE-CAPTURE-DONE"
  poweroff -f
fi
say "init started tag=$TAG fill=$FILL mode=$MODE"
# The vmcoreinfo device is only written by the qemu_fw_cfg driver (a module in Debian).
if [ -f /lib/modules/qemu_fw_cfg.ko ]; then
  insmod /lib/modules/qemu_fw_cfg.ko 2>/dev/null && say "qemu_fw_cfg loaded"
fi
# Further modules put in by build-initramfs.sh --module NAME, loaded in name order, with the
# parameters the kernel command line gives them as NAME.param=value (as modprobe does).
for m in /lib/modules/extra/*.ko; do
  [ -f "$m" ] || continue
  n=$(basename "$m" .ko)
  args=
  for w in $(cat /proc/cmdline); do
    case "$w" in "$n".*=*) args="$args ${w#"$n".}" ;; esac
  done
  # shellcheck disable=SC2086 # one word per parameter
  insmod "$m" $args 2>/dev/null && say "module loaded: $n$args"
done
echo "VMCORE-GUEST-MARKER $TAG" > /dev/kmsg
say "kallsyms:"
grep -E ' (_text|_stext|__init_begin|phys_base|init_uts_ns|vmcoreinfo_note|_end)$' /proc/kallsyms
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
if [ "$KDUMP" = 1 ]; then
  if kexec -p /boot/vmlinuz --initrd=/boot/capture.cpio.gz \
      --append="console=ttyS0 nr_cpus=1 reset_devices irqpoll panic=0 vmcore_mode=capture vmcore_tag=$TAG vmcore_kdump_off=$KDUMP_OFF"; then
    say "capture kernel loaded: kexec_crash_loaded=$(cat /sys/kernel/kexec_crash_loaded)"
  else
    say "kexec -p failed"
  fi
  # CPU 1 busy in the kernel (read_zero) when CPU 0 panics: the panic stops it by NMI. 16 MiB
  # reads keep dd's time in user mode (between the reads) to a few in 10^4.
  taskset 2 dd if=/dev/zero of=/dev/null bs=16M &
  taskset -p 1 $$ > /dev/null
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
# A crash prints its oops straight to the serial console while the tty may still be sending
# what `say` wrote: the two interleaved on one line ("GUEST: triggering the crash of
# crashmo[  d  3.503763] BUG: kerne..."), and the tests found no oops line. A second for the tty
# to drain first.
if [ "$MODE" = panic ] && [ -e /proc/crashmod ]; then
  # the test module (scripts/guest/crashmod) crashes in the way its mode= parameter says
  say "triggering the crash of crashmod"
  sleep 1
  echo 1 > /proc/crashmod
elif [ "$MODE" = panic ]; then
  say "triggering panic"
  sleep 1
  echo 1 > /proc/sys/kernel/sysrq
  echo c > /proc/sysrq-trigger
fi
while true; do sleep 3600; done
