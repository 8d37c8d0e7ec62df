#!/usr/bin/env bash
# Regenerates dev.jvmm.kvm.gen from the system's kernel headers with jextract.
# jextract is not in any package registry: build it from the openjdk/jextract sources and point JEXTRACT at it.
# Without Gradle, plain javac builds it: javac --module-version 23 --release 25 -d classes $(find src/main/java -name
# '*.java'), copy src/main/resources into classes, then run java --enable-native-access=org.openjdk.jextract
# -Djava.library.path=DIR -p classes -m org.openjdk.jextract/org.openjdk.jextract.JextractTool, where DIR has a
# libclang.so (a link to Debian's libclang1-14 /usr/lib/llvm-14/lib/libclang-14.so.1).
# The committed output was made with jextract from openjdk/jextract f9866df3 (JDK 25, Debian libclang1-14 14.0.6),
# against Debian 12's linux-libc-dev headers (unused constants since trimmed from its output by hand, which a rerun
# reproduces). Included: what hand-written code in any module (main, test, benchmarks) names, plus the structs a kept
# struct embeds by value, which jextract refuses to leave out. IncludeListTest checks that these lists, COMMAND and the
# files in dev.jvmm.kvm.gen agree. The output is then post-processed by lazy-handles.pl (below).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
JEXTRACT=${JEXTRACT:-jextract}
out="$here/../src/main/java"
rm -rf "$out/dev/jvmm/kvm/gen"
structs=(
  kvm_regs kvm_sregs kvm_segment kvm_dtable kvm_fpu kvm_lapic_state kvm_mp_state kvm_vcpu_events
  kvm_run kvm_cpuid2 kvm_cpuid_entry2 kvm_msrs kvm_msr_entry kvm_msr_list kvm_translation kvm_interrupt
  kvm_userspace_memory_region kvm_irq_level kvm_irqfd kvm_ioeventfd kvm_pit_config kvm_msi kvm_enable_cap
  kvm_irq_routing kvm_irq_routing_entry kvm_irq_routing_irqchip kvm_irq_routing_msi
  kvm_xsave kvm_xcrs kvm_xcr kvm_debugregs kvm_irqchip kvm_pit_state2 kvm_clock_data
  boot_params setup_header boot_e820_entry
)
# Unused by jvmm, embedded by value in a struct above (kvm_run's exit union and sync regs, kvm_irq_routing_entry's
# union, boot_params' fields; edd_device_params inside edd_info; kvm_irqchip's chip union and kvm_pit_state2's
# channels, which snapshots keep as the kernel's bytes).
embedded=(
  kvm_pic_state kvm_ioapic_state kvm_pit_channel_state
  kvm_debug_exit_arch kvm_hyperv_exit kvm_xen_exit kvm_sync_regs
  kvm_irq_routing_s390_adapter kvm_irq_routing_hv_sint kvm_irq_routing_xen_evtchn
  screen_info apm_bios_info ist_info sys_desc_table olpc_ofw_header edid_info efi_info edd_info edd_device_params
)
constants=(
  KVM_EXIT_IO KVM_EXIT_HLT KVM_EXIT_MMIO KVM_EXIT_IRQ_WINDOW_OPEN KVM_EXIT_SHUTDOWN KVM_EXIT_FAIL_ENTRY KVM_EXIT_INTR
  KVM_EXIT_INTERNAL_ERROR KVM_EXIT_SYSTEM_EVENT KVM_EXIT_IO_IN KVM_EXIT_IO_OUT
  KVM_INTERNAL_ERROR_EMULATION KVM_SYSTEM_EVENT_SHUTDOWN KVM_SYSTEM_EVENT_RESET KVM_SYSTEM_EVENT_CRASH
  KVM_MP_STATE_RUNNABLE KVM_CAP_NR_VCPUS KVM_CAP_MAX_VCPUS KVM_CAP_IRQ_ROUTING
  KVM_CAP_XSAVE KVM_CAP_XSAVE2 KVM_CAP_XCRS KVM_CAP_DEBUGREGS KVM_CAP_VCPU_EVENTS KVM_CAP_PIT_STATE2
  KVM_CAP_ADJUST_CLOCK KVM_CAP_TSC_CONTROL KVM_CAP_GET_TSC_KHZ
  KVM_IRQ_ROUTING_IRQCHIP KVM_IRQ_ROUTING_MSI KVM_IRQCHIP_PIC_MASTER KVM_IRQCHIP_PIC_SLAVE KVM_IRQCHIP_IOAPIC
  KVM_IRQFD_FLAG_DEASSIGN KVM_IRQFD_FLAG_RESAMPLE
  KVM_IOEVENTFD_FLAG_DATAMATCH KVM_IOEVENTFD_FLAG_PIO KVM_IOEVENTFD_FLAG_DEASSIGN
  KVM_PIT_SPEAKER_DUMMY
)
args=(--output "$out" --target-package dev.jvmm.kvm.gen --header-class-name KvmHeaders
      -I /usr/include -I /usr/include/x86_64-linux-gnu)
for s in "${structs[@]}" "${embedded[@]}"; do args+=(--include-struct "$s"); done
for c in "${constants[@]}"; do args+=(--include-constant "$c"); done
echo "$JEXTRACT ${args[*]} $here/kvm-headers.h" | sed "s|$here/||g; s|$out|src/main/java|g" > "$here/COMMAND"
"$JEXTRACT" "${args[@]}" "$here/kvm-headers.h"
# Array fields' element VarHandles made on first use rather than when their struct class is (see the script).
perl -0pi "$here/lazy-handles.pl" "$out"/dev/jvmm/kvm/gen/*.java
