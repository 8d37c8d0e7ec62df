package dev.jvmm.junit;

import dev.jvmm.microvm.MicroVm;

/** Real micro-VMs: {@link MicroVm.Builder#start()} (which waits for the agent), {@link MicroVm#close()}. */
final class MicroVmFactory implements VmFactory<MicroVm> {
    @Override
    public Class<MicroVm> type() {
        return MicroVm.class;
    }

    @Override
    public MicroVm start(Spec spec) throws Exception {
        return spec.builder().start();
    }

    @Override
    public String console(MicroVm vm) {
        return vm.console();
    }

    @Override
    public void close(MicroVm vm) {
        vm.close();
    }
}
