#!/usr/bin/env bash
# Runs the jvmm benchmark suite (dev.jvmm.bench.Report): builds the benchmarks module (Java, the C guest and
# refvmm) without installing anything, then runs the report. Options: --quick, --out DIR, --no-exits, --no-jmh,
# --no-qemu, --no-launch, --no-snapshots, --no-blk, --debian DIR (a Debian guest's time to login,
# jvmm against QEMU). The report lands in benchmarks/target/bench-report unless --out says otherwise.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
. "$root/scripts/jdk.sh"
echo "bench: building the benchmarks module..." >&2
(cd "$root" && mvn -B -q -ntp -DskipTests package -pl benchmarks -am) >&2
jar=$(ls "$root"/benchmarks/target/benchmarks-*.jar | grep -v -- '-tests.jar' | head -n 1)
out_default="$root/benchmarks/target/bench-report"
args=("$@")
case " $* " in *" --out "*) ;; *) args+=(--out "$out_default") ;; esac
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED -XX:+UseSerialGC \
  -Djvmm.bench.native="$root/benchmarks/target/native" \
  -cp "$jar:$root/benchmarks/target/lib/*" dev.jvmm.bench.Report "${args[@]}"
