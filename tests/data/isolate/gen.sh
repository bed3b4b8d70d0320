#!/bin/sh
# Regenerates tests/data/isolate/root: a simulated 4-CPU host's /proc/irq, /proc/<pid>/task,
# workqueue cpumask, irqbalance (Debian) and a fake systemctl, for tests/isolation.rs.
# Device directories under /proc/irq/<N> hold a .gitkeep that the tests do not copy.
set -eu
cd "$(dirname "$0")"
rm -rf root
R=root
mkdir -p $R/sys/devices/system/cpu $R/sys/devices/virtual/workqueue $R/proc/irq $R/etc/default $R/usr/sbin $R/usr/bin
echo 0-3 > $R/sys/devices/system/cpu/online
echo f > $R/sys/devices/virtual/workqueue/cpumask
echo f > $R/proc/irq/default_smp_affinity
irq() { # number affinity effective device
  mkdir -p $R/proc/irq/$1/$4
  : > $R/proc/irq/$1/$4/.gitkeep
  echo "$2" > $R/proc/irq/$1/smp_affinity_list
  echo "$3" > $R/proc/irq/$1/effective_affinity_list
  echo 0 > $R/proc/irq/$1/node
}
irq 0 0 0 timer
irq 1 0-3 1 i8042
irq 8 0-3 2 rtc0
irq 36 0-3 3 virtio1-req.0
mkdir -p $R/proc/irq/x1   # not an IRQ number: ignored
task() { # pid tid comm flags cpus start
  d=$R/proc/$1/task/$2
  mkdir -p $d
  echo "$2 ($3) S 1 1 1 0 -1 $4 0 0 0 0 0 0 0 0 20 0 1 0 $6 0 0" > $d/stat
  printf 'Name:\t%s\nState:\tS (sleeping)\nTgid:\t%s\nPid:\t%s\nCpus_allowed:\tf\nCpus_allowed_list:\t%s\nMems_allowed_list:\t0\nvoluntary_ctxt_switches:\t7\n' "$3" "$1" "$2" "$5" > $d/status
  echo "$3" > $d/comm
  [ "$1" = "$2" ] && echo "$3" > $R/proc/$1/comm
  return 0
}
task 1 1 systemd 4194560 0-3 10
task 2 2 kthreadd 2129984 0-3 11
task 10 10 ksoftirqd/1 69238848 1 12     # PF_KTHREAD|PF_NO_SETAFFINITY: per-CPU
task 11 11 cpuhp/2 2129984 2 13          # a kthread on one CPU: per-CPU
task 500 500 sshd 4194560 0-3 500
task 500 501 "sshd worker" 4194624 0-3 501
task 600 600 qemu-system-x86 4194560 0-3 600
task 600 601 "CPU 0/KVM" 4194624 2 601
task 700 700 cron 4194560 0 700          # already on the reserved CPU
task 800 800 refuser 4194560 2-3 800     # its cpuset has no reserved CPU (EINVAL)
printf '# irqbalance (Debian)\n#IRQBALANCE_ONESHOT=\n#IRQBALANCE_BANNED_CPULIST=\nOPTIONS=""\n' > $R/etc/default/irqbalance
: > $R/usr/sbin/irqbalance
cat > $R/usr/bin/systemctl <<'X'
#!/bin/sh
# Fake systemctl: logs its arguments next to the root's usr directory; irqbalance is active.
echo "$*" >> "$(dirname "$0")/../../systemctl.log"
exit 0
X
chmod +x $R/usr/bin/systemctl
