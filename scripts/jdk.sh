# Sourced by ./jvmm and ./test: exports JAVA_HOME pointing at a JDK >= 22 (the FFM API is final there).
# Looks at JAVA_HOME, then the java on PATH, then /usr/lib/jvm/*, newest first.
jvmm_java_feature() { # prints the feature release of the JDK at $1, or nothing
  [ -x "$1/bin/java" ] && [ -x "$1/bin/javac" ] || return 0
  # The JDK's release file answers without starting a JVM (each start costs a tenth of a second).
  if [ -f "$1/release" ]; then
    sed -n 's/^JAVA_VERSION="\(1\.\)\{0,1\}\([0-9]*\).*/\2/p' "$1/release" | head -n 1
    return 0
  fi
  "$1/bin/java" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}
jvmm_find_jdk() {
  local candidates=() c v
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  if c=$(command -v java 2>/dev/null); then candidates+=("$(dirname "$(dirname "$(readlink -f "$c")")")"); fi
  for c in $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -V -r); do candidates+=("${c%/}"); done
  for c in "${candidates[@]}"; do
    v=$(jvmm_java_feature "$c")
    if [ -n "$v" ] && [ "$v" -ge 22 ]; then export JAVA_HOME="$c"; return 0; fi
  done
  echo "jvmm: needs a JDK 22 or newer and found none (JAVA_HOME, PATH, /usr/lib/jvm); install one, e.g. 'apt-get install openjdk-25-jdk' or Temurin 25" >&2
  return 1
}
jvmm_find_jdk || exit 1
# Maven's own Guava calls sun.misc.Unsafe, which JDK 24+ warns about on every build; the warning is not ours.
if [ "$(jvmm_java_feature "$JAVA_HOME")" -ge 23 ] 2>/dev/null; then
  case " ${MAVEN_OPTS:-} " in *sun-misc-unsafe-memory-access*) ;; *) export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow" ;; esac
fi
if ! command -v mvn >/dev/null 2>&1; then
  echo "jvmm: needs Apache Maven (mvn) to build; install it, e.g. 'apt-get install maven'" >&2
  exit 1
fi
