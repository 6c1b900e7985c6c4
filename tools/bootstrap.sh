# shellcheck shell=bash
# First-use set-up shared by ./metalbench and ./run-tests: Deno (pinned, from
# the npm registry, into .tools/), clang >= 15 for the simulator on Linux,
# the bridge library, and the Python environment with MLX. Each step is
# skipped when already done, so a warm start costs almost nothing.

MB_DENO_VERSION="2.9.6"
MB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MB_TOOLS="$MB_ROOT/.tools"
MB_DENO="$MB_TOOLS/node_modules/.bin/deno"

mb_say() { printf 'metalbench: %s\n' "$*" >&2; }
mb_die() { printf 'metalbench: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf '  fix: %s\n' "$2" >&2; exit 3; }

mb_as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else return 1
  fi
}

mb_ensure_deno() {
  if [ -x "$MB_DENO" ] && "$MB_DENO" --version 2>/dev/null | grep -q "^deno $MB_DENO_VERSION "; then
    return
  fi
  command -v npm >/dev/null 2>&1 ||
    mb_die "npm is needed once to fetch Deno $MB_DENO_VERSION" "install Node.js (https://nodejs.org) or: sudo apt-get install npm"
  mb_say "installing Deno $MB_DENO_VERSION into .tools/ (one time)"
  npm install --prefix "$MB_TOOLS" --no-audit --no-fund --loglevel=error "deno@$MB_DENO_VERSION" >&2 ||
    mb_die "could not install Deno from the npm registry" "npm install --prefix .tools deno@$MB_DENO_VERSION"
}

# The simulator compiles kernels with clang++ >= 15 (_Float16 on x86-64).
mb_find_clang() {
  local v
  for v in 21 20 19 18 17 16 15; do
    command -v "clang++-$v" >/dev/null 2>&1 && { echo "clang++-$v"; return; }
  done
  if command -v clang++ >/dev/null 2>&1; then
    v=$(clang++ -dumpversion 2>/dev/null | cut -d. -f1)
    [ "${v:-0}" -ge 15 ] && { echo clang++; return; }
  fi
  return 1
}

MB_APT_PACKAGES="make clang-19 lld-19 llvm-19 libclang-rt-19-dev"

# The Metal bridge builds with Apple's clang from the Command Line Tools.
mb_ensure_macos_toolchain() {
  [ "$(uname -s)" = Darwin ] || return 0
  xcrun --find clang >/dev/null 2>&1 ||
    mb_die "building the Metal bridge needs Apple's command line tools" "xcode-select --install"
}

mb_ensure_simulator_toolchain() {
  [ "$(uname -s)" = Linux ] || return 0
  if mb_find_clang >/dev/null && command -v make >/dev/null 2>&1; then return; fi
  command -v apt-get >/dev/null 2>&1 ||
    mb_die "the simulator needs clang >= 15 and make" "install clang 15 or newer and make with your package manager"
  mb_say "installing the simulator toolchain: $MB_APT_PACKAGES (one time)"
  { mb_as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive mb_as_root apt-get install -y -qq $MB_APT_PACKAGES; } >&2 ||
    mb_die "could not install the simulator toolchain" "sudo apt-get install $MB_APT_PACKAGES"
}

mb_ensure_bridge() {
  local target=sim
  [ "$(uname -s)" = Darwin ] && target=metal
  make -s -C "$MB_ROOT/ffi" "$target" >&2 || mb_die "building the $target bridge failed" "make -C ffi $target"
}

mb_ensure_python() {
  local stamp="$MB_TOOLS/.python-ready"
  [ -f "$stamp" ] && [ -z "${METALBENCH_PYTHON:-}" ] && return
  "$MB_DENO" run --allow-all --quiet "$MB_ROOT/main.ts" setup --quiet ||
    mb_die "setting up the Python environment failed" "./metalbench setup"
  [ -z "${METALBENCH_PYTHON:-}" ] && touch "$stamp"
  return 0
}

mb_bootstrap() {
  mb_ensure_deno
  mb_ensure_macos_toolchain
  mb_ensure_simulator_toolchain
  mb_ensure_bridge
  mb_ensure_python
}
