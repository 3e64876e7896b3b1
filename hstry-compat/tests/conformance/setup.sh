#!/usr/bin/env bash
# Prepare the Python venv for the hstry conformance suite and generate gRPC stubs.
#
#   venv:  ${OCTO_PYENV:-<repo>/target/pyenv}   (python: ${PYTHON:-python3})
#   stubs: <venv>/gen/hstry_service_pb2{,_grpc}.py from hstry-compat/proto/hstry_service.proto
#
# Idempotent and quiet: prints nothing on success, a log excerpt on failure. When everything is
# already in place it only compares a stamp file and two mtimes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="${OCTO_PYENV:-$repo/target/pyenv}"
reqs="$here/requirements.txt"
proto_dir="$repo/hstry-compat/proto"
proto="$proto_dir/hstry_service.proto"
gen="$venv/gen"
stamp="$venv/.octo-conformance-requirements"

die() { echo "hstry conformance setup: $*" >&2; exit 1; }

[[ -f "$reqs" ]] || die "missing $reqs"
[[ -f "$proto" ]] || die "missing $proto"

# Fast path: venv python present, requirements unchanged since install, stubs newer than proto.
if [[ -x "$venv/bin/python" && -f "$stamp" && -f "$gen/hstry_service_pb2.py" \
      && -f "$gen/hstry_service_pb2_grpc.py" && ! "$proto" -nt "$gen/hstry_service_pb2.py" ]] \
   && cmp -s "$reqs" "$stamp"; then
  exit 0
fi

log="$(mktemp "${TMPDIR:-/tmp}/hstry-conformance-setup.XXXXXX")"
trap 'rm -f "$log"' EXIT
run() {  # run quietly; on failure show what happened
  if ! "$@" >>"$log" 2>&1; then
    echo "hstry conformance setup: command failed: $*" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  py="${PYTHON:-python3}"
  command -v "$py" >/dev/null 2>&1 || die "'$py' not found; set PYTHON to a Python >= 3.9"
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
    || die "$py is older than 3.9"
  if [[ -e "$venv" ]]; then
    # only ever replace something that is (or was) a venv, never an arbitrary directory
    if [[ -f "$venv/pyvenv.cfg" ]] || [[ -d "$venv" && -z "$(ls -A "$venv")" ]]; then
      rm -rf "$venv"
    else
      die "$venv exists and is not a Python venv; remove it or set OCTO_PYENV elsewhere"
    fi
  fi
  mkdir -p "$(dirname "$venv")"
  run "$py" -m venv "$venv"
  rm -f "$stamp"
fi

if [[ ! -f "$stamp" ]] || ! cmp -s "$reqs" "$stamp"; then
  run "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      --no-input -r "$reqs"
  cp "$reqs" "$stamp"
fi

if [[ ! -f "$gen/hstry_service_pb2.py" || ! -f "$gen/hstry_service_pb2_grpc.py" \
      || "$proto" -nt "$gen/hstry_service_pb2.py" ]]; then
  tmp="$(mktemp -d "$venv/gen.tmp.XXXXXX")"
  chmod 755 "$tmp"
  if ! "$venv/bin/python" -m grpc_tools.protoc -I"$proto_dir" \
        --python_out="$tmp" --grpc_python_out="$tmp" "$proto" >>"$log" 2>&1; then
    rm -rf "$tmp"
    echo "hstry conformance setup: protoc failed on $proto" >&2
    cat "$log" >&2
    exit 1
  fi
  rm -rf "$gen"
  mv "$tmp" "$gen"
fi
