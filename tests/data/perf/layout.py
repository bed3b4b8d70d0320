#!/usr/bin/env python3
"""Writes stat-report-*-layout.txt: `perf kvm stat report` tables CONSTRUCTED (not recorded)
with the printf formats of perf 6.1's print_result (tools/perf/builtin-kvm.c; the same
strings are in /usr/bin/perf: "%*s ", "%10llu ", "%8.2f%% ", "%9.2fus ",
"%9.2fus ( +-%7.2f%% )", "Total Samples:%lu, Total events handled time:%.2fus.").
The machine the recorded files come from has no hardware virtualization, so it records no
VM exits; these tables exercise the parser's rows. Run: python3 layout.py"""

NAME_LEN = 20  # KVM_EVENT_NAME_LEN in perf 6.1 (the real header is 20 wide)


def table(scope, rows):
    total = sum(r[1] for r in rows)
    total_time = sum(r[1] * r[4] for r in rows)
    out = "\n\n" + f"Analyze events for {scope}:\n\n"
    out += "%*s " % (NAME_LEN, "VM-EXIT")
    out += "%10s " % "Samples" + "%9s " % "Samples%" + "%9s " % "Time%"
    out += "%11s " % "Min Time" + "%11s " % "Max Time" + "%16s " % "Avg time" + "\n\n"
    for name, n, mn, mx, avg, sd in rows:
        out += "%*s " % (NAME_LEN, name)
        out += "%10d " % n
        out += "%8.2f%% " % (n / total * 100)
        out += "%8.2f%% " % (n * avg / total_time * 100)
        out += "%9.2fus " % mn + "%9.2fus " % mx
        out += "%9.2fus ( +-%7.2f%% )" % (avg, sd) + "\n"
    out += "\nTotal Samples:%d, Total events handled time:%.2fus.\n\n" % (total, total_time)
    return out


# An idle guest with pinned vCPUs: mostly HLT (name, samples, min, max, avg us, stddev %).
vmx = [
    ("HLT", 18342, 0.62, 10029.37, 1932.41, 1.73),
    ("MSR_WRITE", 6211, 0.41, 61.20, 1.12, 0.84),
    ("EXTERNAL_INTERRUPT", 2048, 0.38, 88.13, 1.85, 3.02),
    ("EPT_VIOLATION", 913, 0.90, 412.55, 4.77, 6.40),
    ("IO_INSTRUCTION", 402, 2.10, 153.87, 9.36, 4.11),
    ("PAUSE_INSTRUCTION", 133, 0.33, 12.48, 0.71, 5.55),
    ("EPT_MISCONFIG", 58, 1.84, 40.02, 5.13, 9.87),
    ("CPUID", 12, 0.52, 3.10, 0.98, 22.31),
]
# AMD names (perf's svm_exit_reasons), one with a space.
svm = [
    ("hlt", 9120, 0.71, 9981.04, 2210.55, 2.01),
    ("npf", 7304, 1.02, 380.40, 5.88, 3.30),
    ("msr", 3001, 0.45, 55.12, 1.20, 1.10),
    ("interrupt", 1400, 0.40, 70.01, 1.64, 2.71),
    ("io", 380, 2.33, 120.08, 10.02, 4.80),
    ("DE excp", 3, 1.10, 2.90, 1.80, 30.12),
]
open("stat-report-vmx-layout.txt", "w").write(table("pid(s) 4242, all VCPUs", vmx))
open("stat-report-svm-layout.txt", "w").write(table("all VMs, all VCPUs", svm))
