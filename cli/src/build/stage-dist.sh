#!/usr/bin/env bash
# Stages the distribution in TARGET/dist/jvmm-VERSION (bin/jvmm, lib/ with the cli jar and its runtime class path,
# the licence and the README), which the assembly then packs as it is, and trains JDK 25's AOT cache for it there:
# lib/jvmm.aot, made by running the distribution's own bin/jvmm on the demo guest (so with its exact JVM options
# and class path), which roughly halves the launch time of every later run. Run by `mvn package` (cli/pom.xml).
#
#   stage-dist.sh TARGET VERSION JAVA_HOME
#
# The cache records the jars' sizes and times, which cp -p and tar keep, and their paths relative to lib/, so it
# holds wherever the archive is unpacked; a JVM that finds it does not fit (another JDK, a jar changed) runs
# without it, as fast as before. No cache is made where the demo cannot run (no usable /dev/kvm: the distribution
# then runs the same, slower) or the JDK is older than 25; that never fails the build.
set -euo pipefail
target=$1 version=$2 jdk=$3
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd) # cli/src
home="$target/dist/jvmm-$version"
feature=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$jdk/release" 2>/dev/null | head -n 1)
if [ -n "$feature" ] && [ "$feature" -ge 25 ]; then
  # Class files older than Java 6 (picocli's) cannot go in the AOT cache; upgraded in target/lib, so that the
  # source tree's ./jvmm gets them too. Idempotent: an upgraded jar keeps its time and is not copied again.
  "$jdk/bin/java" "$here/build/UpgradeClassFiles.java" "$target"/lib/*.jar
fi
rm -rf "$target/dist"
mkdir -p "$home/bin" "$home/lib"
install -m 0755 "$here/main/dist/bin/jvmm" "$home/bin/jvmm"
install -m 0644 "$here/../../LICENSE" "$here/../../README.md" "$home/"
cp -p "$target"/lib/*.jar "$home/lib/"
cp -p "$target/cli-$version.jar" "$home/lib/"
chmod 0644 "$home"/lib/*.jar

log="$target/dist/aot-training.log"
if [ -z "$feature" ] || [ "$feature" -lt 25 ]; then
  echo "stage-dist: JDK ${feature:-?} at $jdk has no AOT cache (JDK 25+): the distribution runs without one"
elif ! (exec 3<>/dev/kvm) 2>/dev/null; then
  echo "stage-dist: no usable /dev/kvm to train the AOT cache on the demo guest: the distribution runs without one"
elif JAVA_HOME="$jdk" JVMM_AOT_OUTPUT="$home/lib/jvmm.aot" "$home/bin/jvmm" >"$log" 2>&1 \
    && [ -f "$home/lib/jvmm.aot" ]; then
  chmod 0644 "$home/lib/jvmm.aot"
else
  rm -f "$home/lib/jvmm.aot" "$home/lib/jvmm.aot.config"
  echo "stage-dist: training the AOT cache failed (see $log): the distribution runs without one"
fi
