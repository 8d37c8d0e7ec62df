#!/usr/bin/env python3
"""Writes the saved inputs of the kernel loader fuzz targets (boot/src/test/resources/dev/jvmm/boot/loader/
*FuzzTestInputs), which every test run replays.

The targets read a FuzzedDataProvider: ints and booleans come from the end of the input, one byte each for the
small ranges used here, and an exhausted input gives every choice its default, a small valid image. So an input
is written as the list of values the generator (FuzzedImages, LoaderFuzzing, the targets) consumes, in order,
each choice's index: 0 is the default, i the (i-1)th listed value. Change a generator's order or lists and the
inputs here must follow; -Dloader.fuzz.verbose=true prints what each input does (loaded or refused, and why).

    python3 boot/src/test/fuzz/loader_seeds.py   (writes into the resources folder)
"""
import os, sys
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "resources", "dev", "jvmm", "boot", "loader")

def seed(target, name, values):
    d = os.path.join(out, target); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(bytes(reversed(values)))

Z = lambda n: [0] * n
ELF_DEFAULT = Z(10)      # class, machine, nseg, note, 5 per segment, entry
MUTATE_NONE = Z(3)       # fields, patches, truncation

def bz(elf=ELF_DEFAULT, vm_mutate=MUTATE_NONE, comp=None, tweak=(), claim=0, setup=(0,), pm=(0,), tail=(0,),
       version=0, loadflags=0, iam=0, xlf=0, cmdsize=0, initsize=0, mutate=MUTATE_NONE, initrd=(0,), cmdline=(0,),
       path=(0,)):
    v = [0] + list(elf) + list(vm_mutate)
    v += [0] if comp is None else [1, comp]
    v += list(tweak) + [claim] + list(setup) + list(pm) + list(tail)
    v += [version, loadflags, iam, xlf, cmdsize, initsize] + list(mutate) + list(initrd) + list(cmdline) + list(path)
    return v

T = "LinuxLoaderFuzzTestInputs/bzImagesLoadOrFailCleanly"
seed(T, "gzip-defaults", [])
for k, n in [(1, "bzip2"), (2, "lzma"), (3, "xz"), (4, "lz4"), (5, "zstd"), (6, "lzo-refused")]:
    tw = {2: (0, 0), 3: (0,), 4: (0,)}.get(k, ())
    seed(T, n, bz(comp=k, tweak=tw))
seed(T, "decompressor-path-with-initrd", bz(initrd=(1, 0), path=(1, 1)))
seed(T, "xz-initrd-1mib-linux64-path", bz(comp=3, tweak=(0,), initrd=(1, 6), path=(1, 2)))
seed(T, "cmdline-2048-fits", bz(cmdline=(1, 5)))
seed(T, "cmdline-2049-refused", bz(cmdline=(1, 6)))
seed(T, "pvh-path-refused", bz(path=(1, 3)))
seed(T, "protocol-2.05-refused", bz(version=4))
# Findings, as regression inputs:
seed(T, "vmlinux-without-pt-load", bz(elf=[0, 0, 0, 0, 2, 0, 0, 0, 0, 0]))
seed(T, "entry-past-the-segment", bz(elf=[0, 0, 0, 0, 0, 0, 0, 0, 0, 4]))
seed(T, "segment-in-the-vga-hole", bz(elf=[0, 0, 0, 0, 0, 11, 0, 0, 0, 0]))
seed(T, "segment-above-4gib", bz(elf=[0, 0, 0, 0, 0, 19, 0, 0, 0, 0]))
seed(T, "header-ends-before-its-fields", bz(mutate=[1, 2, 0, 0, 0]))
seed(T, "cmdline-limit-named-in-message", bz(cmdsize=5, cmdline=(1, 9)))
seed(T, "empty-initrd-below-4gib", bz(iam=3, initrd=(1, 1)))
seed(T, "ramdisk-size-in-the-image", bz(mutate=[1, 13, 3, 0, 0]))
seed(T, "setup-data-in-the-image", bz(mutate=[1, 14, 2, 0, 0]))
seed(T, "decompressor-entry-past-the-code", bz(elf=[0, 0, 0, 0, 0, 0, 0, 1, 0, 0], pm=(1, 0, 0), path=(1, 1)))

# payloadsDecompressWithinTheirClaim: format, zero run, tweak, claim, mutate, guest
def payload(comp, run, tweak=(), claim=0, mutate=MUTATE_NONE, guest=0):
    return [1, comp, 1, run] + list(tweak) + [claim] + list(mutate) + [guest]
P = "LinuxLoaderFuzzTestInputs/payloadsDecompressWithinTheirClaim"
for k, n in [(0, "gzip"), (1, "bzip2"), (2, "lzma"), (3, "xz"), (4, "lz4"), (5, "zstd")]:
    tw = {2: (0, 0), 3: (0,), 4: (0,)}.get(k, ())
    seed(P, n + "-1mib-of-zeroes", payload(k, 3, tw))
seed(P, "gzip-bomb-claiming-1-byte-less", payload(0, 4, (), claim=1))
seed(P, "gzip-larger-than-the-guest", payload(0, 4, (), guest=4))
seed(P, "xz-dictionary-1gib", payload(3, 2, (5,)))
seed(P, "lzma-dictionary-1gib", payload(2, 2, (3, 0)))

# ElfFuzzTest: image (raw?, elf, mutate), then initrd, cmdline, boot path
def elf(cls=0, machine=0, nseg=(0,), note=0, segs=((0, 0, 0, 0, 0),), notev=(), entry=0):
    v = [cls, machine] + list(nseg) + [note]
    for s in segs: v += list(s)
    return v + list(notev) + [entry]
def vml(e, mutate=MUTATE_NONE, initrd=(0,), cmdline=(0,), path=(0,)):
    return [0] + e + list(mutate) + list(initrd) + list(cmdline) + list(path)
for t in ["ElfFuzzTestInputs/vmlinuxKernelsLoadOrFailCleanly", "ElfFuzzTestInputs/elfFilesParseOrFailCleanly"]:
    seed(t, "elf64-defaults", [])
    seed(t, "elf64-pvh-note", vml(elf(note=1, notev=(0, 0, 0))))
    seed(t, "elf32-pvh-note", vml(elf(cls=1, note=1, notev=(0, 0, 0))))
    seed(t, "elf64-three-segments-initrd", vml(elf(nseg=(1, 3), segs=((0,) * 5,) * 3), initrd=(1, 6)))
    seed(t, "elf32-without-note-refused", vml(elf(cls=1)))
    seed(t, "pvh-note-entry-outside", vml(elf(note=1, notev=(1, 0, 0))))
    seed(t, "no-pt-load", vml(elf(segs=((2, 0, 0, 0, 0),))))
    seed(t, "entry-past-the-segment", vml(elf(entry=4)))

# MultibootLoaderFuzzTest: raw?, kludge or ELF, flags, checksum, addresses, mutate, initrd, cmdline, path
def mb(kludge=True, lengths=(0, 0), e=None, flags=0, checksum=0, addrs=(0, 0, 0, 0, 0), mutate=MUTATE_NONE,
       initrd=(0,), cmdline=(0,), path=0):
    v = [0, 0 if kludge else 1]
    v += list(lengths) if kludge else (e if e is not None else elf())
    v += [flags, checksum] + (list(addrs) if kludge else [])
    return v + list(mutate) + list(initrd) + list(cmdline) + [path]
M = "MultibootLoaderFuzzTestInputs/multibootKernelsLoadOrFailCleanly"
seed(M, "kludge-defaults", [])
seed(M, "kludge-initrd-cmdline", mb(initrd=(1, 0), cmdline=(1, 5)))
seed(M, "elf32", mb(kludge=False))
seed(M, "elf64-initrd", mb(kludge=False, e=elf(cls=1), initrd=(1, 6)))
seed(M, "elf32-entry-at-its-virtual-address", mb(kludge=False, e=elf(segs=((0, 0, 24, 0, 0),), entry=5)))
seed(M, "unsupported-flags-refused", mb(flags=4))
seed(M, "bad-checksum-not-a-kernel", mb(checksum=2))
seed(M, "kludge-at-0", mb(addrs=(1, 0, 0, 0, 0)))
seed(M, "kludge-bss-into-boot-data", mb(addrs=(3, 0, 0, 6, 0)))
seed(M, "kludge-entry-at-bss-end", mb(addrs=(0, 0, 0, 0, 32)))
seed(M, "kludge-loads-nothing", mb(addrs=(0, 0, 2, 1, 0)))
seed(M, "elf-entry-past-the-segment", mb(kludge=False, e=elf(entry=4)))
seed(M, "initrd-into-the-mp-and-acpi-tables", mb(addrs=(8, 0, 0, 0, 0), initrd=(1, 5)))
