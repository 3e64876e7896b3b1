#!/usr/bin/env python3
"""Wire-conformance suite for hstry's gRPC API (HSTRY_API.md, section 9).

Drives a running server through the official grpcio stack with stubs generated from
hstry-compat/proto/hstry_service.proto (see setup.sh). Every test writes its own conversations
with fresh UUID external ids (and, where a check needs an isolated set, a fresh source id,
workspace or search word), so the suite can run against a server that already holds data.

Environment:
  HSTRY_ADDR     host:port of the server (required), e.g. 127.0.0.1:50051
  HSTRY_UNIX     optional Unix socket path; adds a write/read round trip over unix:PATH
  HSTRY_TARGET   "octo" (default) or "hstry": with "hstry", checks marked "Octo only" or
                 "Octo deviates" are skipped and times are compared at second precision
  HSTRY_TIMEOUT  per-call deadline in seconds (default 60)

Run:  <venv>/bin/python test_conformance.py [-v] [-k PATTERN] [Conformance.test_03_...]
"""

import datetime
import json
import os
import random
import re
import sys
import threading
import time
import unittest
import uuid


def _find_gen_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))
    candidates = [
        os.environ.get("HSTRY_GEN"),
        os.path.join(sys.prefix, "gen"),
        os.path.join(os.environ["OCTO_PYENV"], "gen") if os.environ.get("OCTO_PYENV") else None,
        os.path.join(repo, "target", "pyenv", "gen"),
    ]
    for c in candidates:
        if c and os.path.isfile(os.path.join(c, "hstry_service_pb2.py")):
            return c
    return None


_GEN = _find_gen_dir()
if _GEN is None:
    sys.stderr.write(
        "hstry conformance: generated stubs not found; run "
        "hstry-compat/tests/conformance/setup.sh and use <venv>/bin/python\n")
    sys.exit(2)
sys.path.insert(0, _GEN)

try:
    import grpc  # noqa: E402
    import hstry_service_pb2 as pb  # noqa: E402
    import hstry_service_pb2_grpc as pbg  # noqa: E402
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write("hstry conformance: cannot import grpc or stubs (%s); run setup.sh and use "
                     "<venv>/bin/python\n" % exc)
    sys.exit(2)


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------

ADDR = os.environ.get("HSTRY_ADDR", "").strip()
UNIX_PATH = os.environ.get("HSTRY_UNIX", "").strip()
TARGET = os.environ.get("HSTRY_TARGET", "octo").strip().lower() or "octo"
IS_OCTO = TARGET == "octo"
CALL_TIMEOUT = float(os.environ.get("HSTRY_TIMEOUT", "60"))
BIG_TIMEOUT = max(CALL_TIMEOUT, 300.0)

MiB = 1024 * 1024
LIMIT_64 = [("grpc.max_receive_message_length", 64 * MiB),
            ("grpc.max_send_message_length", 64 * MiB)]
# For the oversize check the client itself must be able to send 65 MiB, or the rejection we see
# would be the client's own, not the server's.
LIMIT_BIG_SEND = [("grpc.max_receive_message_length", 64 * MiB),
                  ("grpc.max_send_message_length", 128 * MiB)]

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
READABLE_RE = re.compile(r"^[a-z]+-[a-z]+(-[0-9]+)?$")
RFC3339_RE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|\+00:00|-00:00)$")

SRC = "conformance"  # default source id for tests that need no isolation

SERVICE_OF = {
    "Search": "SearchService",
    "WriteConversation": "WriteService", "AppendMessages": "WriteService",
    "UpdateConversation": "WriteService", "DeleteConversation": "WriteService",
    "AddTag": "WriteService", "RemoveTag": "WriteService", "UploadAttachment": "WriteService",
    "GetConversation": "ReadService", "GetMessages": "ReadService",
    "GetMessageEvents": "ReadService", "ListConversations": "ReadService",
}

_channels = {}
_channels_lock = threading.Lock()


def channel(kind="main"):
    """Shared channels: main (64 MiB limits), default (grpcio defaults), big (128 MiB send),
    unix (64 MiB limits over HSTRY_UNIX)."""
    with _channels_lock:
        ch = _channels.get(kind)
        if ch is None:
            if kind == "main":
                ch = grpc.insecure_channel(ADDR, options=LIMIT_64)
            elif kind == "default":
                ch = grpc.insecure_channel(ADDR)
            elif kind == "big":
                ch = grpc.insecure_channel(ADDR, options=LIMIT_BIG_SEND)
            elif kind == "unix":
                # grpc-core would send the socket path as :authority, which HTTP/2 servers
                # built on h2 (tonic's) refuse as malformed; name the host as tonic clients do.
                ch = grpc.insecure_channel(
                    "unix:" + UNIX_PATH,
                    options=LIMIT_64 + [("grpc.default_authority", "localhost")])
            else:
                raise ValueError(kind)
            _channels[kind] = ch
        return ch


class Client:
    def __init__(self, ch):
        self.ch = ch
        self.stubs = {
            "SearchService": pbg.SearchServiceStub(ch),
            "WriteService": pbg.WriteServiceStub(ch),
            "ReadService": pbg.ReadServiceStub(ch),
        }

    def method(self, name):
        return getattr(self.stubs[SERVICE_OF[name]], name)


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------

def uid():
    return str(uuid.uuid4())


_WORD_ALPHABET = "bcdfghjklmnpqrtvwxz"  # no vowels, no s/y: nothing for a stemmer to strip


def uword():
    """A random lowercase word that no other data will contain."""
    return "zq" + "".join(random.choice(_WORD_ALPHABET) for _ in range(10))


def usrc():
    """A fresh source id without '-', '_' or '%' (so prefix-family and LIKE rules stay exact)."""
    return "cf" + uuid.uuid4().hex[:16]


def part_id():
    return "part_" + uuid.uuid4().hex


def now_ms():
    return int(time.time() * 1000)


def jdump(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def jload(s, empty):
    """Parse a JSON string field; "" stands for `empty`."""
    if s == "":
        return empty
    return json.loads(s)


def expect_ms(ms):
    """What a read should return for a written time: exact on Octo, whole seconds on hstry."""
    return ms if IS_OCTO else (ms // 1000) * 1000


def rfc3339_to_ms(s):
    m = RFC3339_RE.match(s)
    if not m:
        raise ValueError("not an RFC 3339 UTC timestamp: %r" % (s,))
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(7) or "")[:3].ljust(3, "0")
    dt = datetime.datetime(y, mo, d, h, mi, sec, tzinfo=datetime.timezone.utc)
    return int(dt.timestamp()) * 1000 + int(frac)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld_field(number, payload):
    """A length-delimited field (wire type 2)."""
    return varint((number << 3) | 2) + varint(len(payload)) + payload


UNKNOWN_VARINT_99 = varint((99 << 3) | 0) + varint(1)          # b"\x98\x06\x01"
UNKNOWN_LD_99 = ld_field(99, b"unknown to the server")          # b"\x9a\x06..."


# ------------------------------------------------------------------------------------------------
# standard fixtures
# ------------------------------------------------------------------------------------------------

CONV_CREATED = 1700000000123
CONV_UPDATED = 1700000100456
M_TIMES = [1700000001500, 1700000002250, 1700000003999, 1700000005000]


def std_conversation(ext=None, source=SRC, word=None, workspace=None):
    """WriteConversationRequest for check 3: user, assistant (text + tool_call), tool
    (tool_result). Every optional conversation field is set except provider and readable_id."""
    ext = ext or uid()
    suffix = (" " + word) if word else ""
    conv = pb.Conversation(
        source_id=source,
        external_id=ext,
        title="Conformance " + ext[:8],
        created_at_ms=CONV_CREATED,
        updated_at_ms=CONV_UPDATED,
        model="test-model-1",
        workspace=workspace or ("/tmp/hstry-conformance/" + ext),
        tokens_in=1234,
        tokens_out=567,
        cost_usd=0.0125,
        metadata_json=jdump({"zeta": 1, "alpha": {"b": [1, 2, {"c": None}], "a": "x"},
                             "unicode": "h\u00e9llo \u2713"}),
        harness="pi",
        platform_id="plat-" + ext,
        parent_conversation_id=uid(),
        parent_message_idx=2,
        fork_type="thread",
    )
    m0 = pb.Message(
        idx=0, role="user", content="Please list the files" + suffix,
        parts_json=jdump([{"type": "text", "id": part_id(), "text": "Please list the files"}]),
        created_at_ms=M_TIMES[0],
        metadata_json=jdump({"origin": "conformance", "n": 0}),
        sender_json=jdump({"type": "user", "id": "u-1", "name": "Alice"}),
        client_id="client-" + ext[:8],
    )
    m1 = pb.Message(
        idx=1, role="assistant", content="Listing the files now." + suffix,
        parts_json=jdump([
            {"type": "text", "id": part_id(), "text": "Listing the files now."},
            {"type": "tool_call", "id": part_id(), "toolCallId": "call_1", "name": "bash",
             "input": {"command": "ls -la", "cwd": "/tmp"}, "status": "success"},
        ]),
        created_at_ms=M_TIMES[1],
        model="test-model-1", tokens=42, cost_usd=0.001,
        metadata_json=jdump({"n": 1}),
        sender_json=jdump({"type": "agent", "id": "a-1", "name": "Helper",
                           "runner_id": "r-1", "session_id": "s-1"}),
        provider="test-provider", harness="pi",
    )
    m2 = pb.Message(
        idx=2, role="tool", content="file.txt" + suffix,
        parts_json=jdump([{"type": "tool_result", "id": part_id(), "toolCallId": "call_1",
                           "name": "bash", "output": {"stdout": "file.txt\n", "code": 0},
                           "isError": False, "durationMs": 12}]),
        created_at_ms=M_TIMES[2],
        metadata_json=jdump({"n": 2}),
    )
    return pb.WriteConversationRequest(conversation=conv, messages=[m0, m1, m2])


def simple_msg(idx, content, role="user", t=None, **kw):
    m = pb.Message(idx=idx, role=role, content=content, **kw)
    if t is not None:
        m.created_at_ms = t
    return m


# ------------------------------------------------------------------------------------------------
# the suite
# ------------------------------------------------------------------------------------------------

class Conformance(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.c = Client(channel("main"))

    # -- call helpers --------------------------------------------------------------------------

    def rpc(self, name, req, client=None, timeout=None):
        """Call an RPC that must succeed; a non-OK status is a test failure, not an error."""
        cl = client or self.c
        try:
            return cl.method(name)(req, timeout=timeout or CALL_TIMEOUT)
        except grpc.RpcError as e:
            err = e
        # fail outside the except block so the report shows no chained grpc traceback
        self.fail("%s: expected OK, got %s: %s" % (name, err.code().name, err.details()))

    def rpc_err(self, name, req, codes, client=None, timeout=None):
        """Call an RPC that must fail with one of `codes`; returns the grpc.RpcError."""
        if isinstance(codes, grpc.StatusCode):
            codes = (codes,)
        cl = client or self.c
        err = None
        try:
            cl.method(name)(req, timeout=timeout or CALL_TIMEOUT)
        except grpc.RpcError as e:
            err = e
        want = "/".join(c.name for c in codes)
        if err is None:
            self.fail("%s: expected %s, got OK" % (name, want))
        if err.code() not in codes:
            self.fail("%s: expected %s, got %s: %s" % (name, want, err.code().name,
                                                       err.details()))
        return err

    def raw_call(self, multicallable, raw, what):
        """Send raw request bytes; return raw response bytes or fail the test."""
        try:
            return multicallable(raw, timeout=CALL_TIMEOUT)
        except grpc.RpcError as e:
            err = e
        self.fail("%s: %s: %s" % (what, err.code().name, err.details()))

    def write(self, req, client=None):
        return self.rpc("WriteConversation", req, client=client)

    def get_conv(self, client=None, **sel):
        return self.rpc("GetConversation", pb.GetConversationRequest(**sel), client=client)

    def get_msgs(self, client=None, **sel):
        return self.rpc("GetMessages", pb.GetMessagesRequest(**sel), client=client)

    def search(self, query, **kw):
        kw.setdefault("limit", 0)
        return list(self.rpc("Search", pb.SearchRequest(query=query, **kw)).hits)

    def append(self, source_id, external_id, messages, **kw):
        return self.rpc("AppendMessages", pb.AppendMessagesRequest(
            source_id=source_id, external_id=external_id, messages=messages, **kw))

    # -- assertions ----------------------------------------------------------------------------

    def assertUuid(self, s, what="id"):
        self.assertRegex(s, UUID_RE, "%s is not a lowercase hyphenated UUID" % what)

    def assertTime(self, got, written, what="time"):
        self.assertEqual(got, expect_ms(written), "%s: written %d" % (what, written))

    def assertJsonEq(self, got, sent, empty, what):
        self.assertEqual(jload(got, empty), jload(sent, empty), "%s differs as parsed JSON" % what)

    def assertConversationMatches(self, got, sent):
        self.assertEqual(got.source_id, sent.source_id)
        self.assertEqual(got.external_id, sent.external_id)
        self.assertTime(got.created_at_ms, sent.created_at_ms, "created_at_ms")
        for f in ("title", "model", "workspace", "tokens_in", "tokens_out", "cost_usd",
                  "harness", "platform_id", "parent_conversation_id", "parent_message_idx",
                  "fork_type"):
            if sent.HasField(f):
                self.assertTrue(got.HasField(f), "conversation.%s missing on read" % f)
                self.assertEqual(getattr(got, f), getattr(sent, f), "conversation.%s" % f)
        if sent.HasField("updated_at_ms"):
            self.assertTrue(got.HasField("updated_at_ms"), "updated_at_ms missing on read")
            self.assertTime(got.updated_at_ms, sent.updated_at_ms, "updated_at_ms")
        if sent.HasField("provider"):
            self.assertEqual(got.provider, sent.provider)
        else:
            self.assertTrue(got.HasField("provider"),
                            "provider must be present (as \"\") when never written")
            self.assertEqual(got.provider, "")
        self.assertJsonEq(got.metadata_json, sent.metadata_json, {}, "conversation.metadata_json")
        self.assertTrue(got.HasField("readable_id"), "readable_id must always be present")

    def assertMessageMatches(self, got, sent):
        self.assertEqual(got.idx, sent.idx)
        self.assertEqual(got.role, sent.role)
        self.assertEqual(got.content, sent.content, "message %d content" % sent.idx)
        self.assertJsonEq(got.parts_json, sent.parts_json, [], "message %d parts_json" % sent.idx)
        self.assertJsonEq(got.metadata_json, sent.metadata_json, {},
                          "message %d metadata_json" % sent.idx)
        self.assertJsonEq(got.sender_json, sent.sender_json, None,
                          "message %d sender_json" % sent.idx)
        if sent.HasField("created_at_ms"):
            self.assertTrue(got.HasField("created_at_ms"), "message created_at_ms missing")
            self.assertTime(got.created_at_ms, sent.created_at_ms, "message created_at_ms")
        else:
            self.assertFalse(got.HasField("created_at_ms"),
                             "created_at_ms must be absent when unknown")
        for f in ("model", "tokens", "cost_usd", "provider", "harness", "client_id"):
            if sent.HasField(f):
                self.assertTrue(got.HasField(f), "message.%s missing on read" % f)
                self.assertEqual(getattr(got, f), getattr(sent, f), "message.%s" % f)
        self.assertTrue(got.HasField("id"), "message id must be set on read")
        self.assertUuid(got.id, "message id")
        self.assertNotEqual(got.parts_json, "", "parts_json must be at least []")
        self.assertNotEqual(got.metadata_json, "", "metadata_json must be at least {}")

    def octo_only(self, why):
        if not IS_OCTO:
            self.skipTest("Octo only / Octo deviates: " + why)

    # ---------------------------------------------------------------------------------- Wire ---

    def test_01_all_rpcs_and_message_sizes(self):
        """Check 1: all 12 RPCs answer (no UNIMPLEMENTED); 5 MiB content round-trips with a
        64 MiB client limit; a 65 MiB request is rejected."""
        word = uword()
        src = usrc()
        req = std_conversation(source=src, word=word)
        ext = req.conversation.external_id
        w = self.write(req)
        cid = w.conversation_id
        ids = [m.id for m in self.get_msgs(external_id=ext).messages]
        calls = [
            ("AppendMessages", pb.AppendMessagesRequest(
                source_id=src, external_id=ext, messages=[simple_msg(3, "more " + word)])),
            ("UpdateConversation", pb.UpdateConversationRequest(
                source_id=src, external_id=ext, title="updated")),
            ("AddTag", pb.AddTagRequest(conversation_id=cid, tag="conformance")),
            ("RemoveTag", pb.RemoveTagRequest(conversation_id=cid, tag="conformance")),
            ("UploadAttachment", pb.UploadAttachmentRequest(
                message_id=ids[0], mime_type="text/plain", data=b"hello")),
            ("GetConversation", pb.GetConversationRequest(external_id=ext)),
            ("GetMessages", pb.GetMessagesRequest(external_id=ext)),
            ("GetMessageEvents", pb.GetMessageEventsRequest(external_id=ext)),
            ("ListConversations", pb.ListConversationsRequest(source_id=src)),
            ("Search", pb.SearchRequest(query=word)),
            ("DeleteConversation", pb.DeleteConversationRequest(source_id=src, external_id=ext)),
        ]
        seen = {"WriteConversation"}
        for name, r in calls:
            with self.subTest(rpc=name):
                err = None
                try:
                    self.c.method(name)(r, timeout=CALL_TIMEOUT)
                except grpc.RpcError as e:
                    err = e
                if err is not None:
                    self.assertNotEqual(err.code(), grpc.StatusCode.UNIMPLEMENTED,
                                        "%s is UNIMPLEMENTED" % name)
                    self.fail("%s: %s: %s" % (name, err.code().name, err.details()))
                seen.add(name)
        self.assertEqual(seen, set(SERVICE_OF))

        # 5 MiB content round trip (no parts, so the §5.3 digest rule does not apply)
        chunk = "lorem ipsum dolor sit amet consectetur "
        big = (chunk * (5 * MiB // len(chunk) + 1))[:5 * MiB]
        ext = uid()
        w = self.rpc("WriteConversation", pb.WriteConversationRequest(
            conversation=pb.Conversation(source_id=SRC, external_id=ext),
            messages=[simple_msg(0, big)]), timeout=BIG_TIMEOUT)
        self.assertEqual(w.messages_written, 1)
        got = self.rpc("GetMessages", pb.GetMessagesRequest(external_id=ext),
                       timeout=BIG_TIMEOUT)
        self.assertEqual(len(got.messages), 1)
        self.assertEqual(len(got.messages[0].content), len(big))
        self.assertTrue(got.messages[0].content == big, "5 MiB content did not round-trip")
        # with grpcio's default 4 MiB receive limit the *client* refuses the response
        e = self.rpc_err("GetMessages", pb.GetMessagesRequest(external_id=ext),
                         (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE),
                         client=Client(channel("default")), timeout=BIG_TIMEOUT)
        print("\n  check 1: 5 MiB response with default client limit -> %s" % e.code().name,
              file=sys.stderr)

        # a 65 MiB request must be rejected by the server
        data = b"\0" * (65 * MiB)
        e = self.rpc_err("UploadAttachment",
                         pb.UploadAttachmentRequest(message_id=got.messages[0].id,
                                                    mime_type="application/octet-stream",
                                                    data=data),
                         (grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED),
                         client=Client(channel("big")), timeout=BIG_TIMEOUT)
        details = e.details() or ""
        self.assertNotIn("Sent message larger than max", details,
                         "the client, not the server, rejected the 65 MiB request")
        print("  check 1: 65 MiB request rejected with %s (%s)" % (e.code().name, details[:120]),
              file=sys.stderr)

    def test_02_unknown_fields_ignored(self):
        """Check 2: a request carrying field 99 (top level and nested) is accepted."""
        req = std_conversation()
        ext = req.conversation.external_id
        # rebuild the request by hand so field 99 also appears inside Conversation and Message
        raw = ld_field(1, req.conversation.SerializeToString() + UNKNOWN_LD_99)
        for m in req.messages:
            raw += ld_field(2, m.SerializeToString() + UNKNOWN_VARINT_99)
        raw += UNKNOWN_VARINT_99
        call = self.c.ch.unary_unary("/hstry.service.WriteService/WriteConversation",
                                     request_serializer=None, response_deserializer=None)
        out = self.raw_call(call, raw, "WriteConversation with field 99")
        resp = pb.WriteConversationResponse.FromString(out)
        self.assertUuid(resp.conversation_id, "conversation_id")
        self.assertEqual(resp.messages_written, 3)

        read = self.c.ch.unary_unary("/hstry.service.ReadService/GetMessages",
                                     request_serializer=None, response_deserializer=None)
        out = self.raw_call(read, pb.GetMessagesRequest(external_id=ext).SerializeToString()
                            + UNKNOWN_VARINT_99 + UNKNOWN_LD_99, "GetMessages with field 99")
        msgs = pb.GetMessagesResponse.FromString(out)
        self.assertEqual(msgs.conversation_id, resp.conversation_id)
        self.assertEqual([m.idx for m in msgs.messages], [0, 1, 2])
        conv = self.get_conv(external_id=ext).conversation
        self.assertConversationMatches(conv, req.conversation)

    # ----------------------------------------------------------------------- Write then read ---

    def test_03_write_then_read(self):
        """Check 3: WriteConversation with 3 messages on a new key, then GetConversation."""
        req = std_conversation()
        ext = req.conversation.external_id
        w = self.write(req)
        self.assertEqual(w.messages_written, 3)
        self.assertEqual(w.message_count, 3)
        self.assertEqual(w.version, 3)
        self.assertUuid(w.conversation_id, "conversation_id")
        resp = self.get_conv(external_id=ext)
        self.assertTrue(resp.HasField("conversation"), "conversation not found by external_id")
        conv = resp.conversation
        self.assertConversationMatches(conv, req.conversation)
        self.assertRegex(conv.readable_id, READABLE_RE)
        self.assertEqual(conv.message_count, 3)
        self.assertEqual(conv.version, 3)

    def test_03u_unix_socket_round_trip(self):
        """Check 3 (and 4) over the Unix socket given in HSTRY_UNIX."""
        if not UNIX_PATH:
            self.skipTest("HSTRY_UNIX not set")
        cl = Client(channel("unix"))
        req = std_conversation()
        ext = req.conversation.external_id
        w = self.write(req, client=cl)
        self.assertEqual((w.messages_written, w.message_count, w.version), (3, 3, 3))
        conv = self.get_conv(client=cl, external_id=ext).conversation
        self.assertConversationMatches(conv, req.conversation)
        got = self.get_msgs(client=cl, external_id=ext)
        self.assertEqual(got.conversation_id, w.conversation_id)
        self.assertEqual(len(got.messages), 3)
        for g, s in zip(got.messages, req.messages):
            self.assertMessageMatches(g, s)
        # and the same data is visible over TCP
        self.assertEqual(self.get_msgs(external_id=ext).conversation_id, w.conversation_id)

    def test_04_get_messages(self):
        """Check 4: messages in idx order with UUID ids; created_at_ms exact on Octo (hstry:
        rounded down to the second)."""
        req = std_conversation()
        w = self.write(req)
        got = self.get_msgs(external_id=req.conversation.external_id)
        self.assertEqual(got.conversation_id, w.conversation_id)
        self.assertEqual([m.idx for m in got.messages], [0, 1, 2])
        self.assertEqual([m.role for m in got.messages], ["user", "assistant", "tool"])
        for g, s in zip(got.messages, req.messages):
            self.assertMessageMatches(g, s)
        self.assertEqual(len({m.id for m in got.messages}), 3, "message ids not distinct")

    def test_05_rewrite_same_conversation(self):
        """Check 5: the same WriteConversation again: 0 written, count 3, version 4, same ids."""
        req = std_conversation()
        ext = req.conversation.external_id
        w1 = self.write(req)
        ids1 = [m.id for m in self.get_msgs(external_id=ext).messages]
        w2 = self.write(req)
        self.assertEqual(w2.conversation_id, w1.conversation_id)
        self.assertEqual(w2.messages_written, 0)
        self.assertEqual(w2.message_count, 3)
        self.assertEqual(w2.version, 4)
        ids2 = [m.id for m in self.get_msgs(external_id=ext).messages]
        self.assertEqual(ids2, ids1)

    def test_06_rewrite_clears_and_keeps(self):
        """Check 6: without title the title is cleared; without workspace it is kept. Also the
        rest of the §6.2 table: cleared-when-absent vs kept-when-absent fields."""
        req = std_conversation()
        ext = req.conversation.external_id
        self.write(req)
        req2 = pb.WriteConversationRequest()
        req2.CopyFrom(req)
        req2.conversation.ClearField("title")
        req2.conversation.ClearField("workspace")
        w = self.write(req2)
        self.assertEqual(w.version, 4)
        conv = self.get_conv(external_id=ext).conversation
        self.assertFalse(conv.HasField("title"),
                         "title should be cleared (absent on read), got %r" % conv.title)
        self.assertEqual(conv.workspace, req.conversation.workspace, "workspace must be kept")

        # second rule set: absent/"" keeps workspace, platform_id, harness, parent fields;
        # absent clears model, updated_at, tokens, cost, metadata
        req3 = pb.WriteConversationRequest()
        req3.CopyFrom(req)
        c3 = req3.conversation
        c3.workspace = ""
        c3.platform_id = ""
        for f in ("harness", "parent_conversation_id", "parent_message_idx", "fork_type",
                  "model", "updated_at_ms", "tokens_in", "tokens_out", "cost_usd"):
            c3.ClearField(f)
        c3.metadata_json = ""
        w = self.write(req3)
        self.assertEqual(w.version, 5)
        conv = self.get_conv(external_id=ext).conversation
        orig = req.conversation
        self.assertEqual(conv.title, orig.title, "title given again")
        for f in ("workspace", "platform_id", "harness", "parent_conversation_id",
                  "parent_message_idx", "fork_type"):
            self.assertTrue(conv.HasField(f), "%s must be kept" % f)
            self.assertEqual(getattr(conv, f), getattr(orig, f), "%s must be kept" % f)
        for f in ("model", "updated_at_ms", "tokens_in", "tokens_out", "cost_usd"):
            self.assertFalse(conv.HasField(f), "%s must be cleared when absent" % f)
        self.assertEqual(jload(conv.metadata_json, {}), {}, "metadata must be cleared")
        self.assertTime(conv.created_at_ms, orig.created_at_ms, "created_at never changes")

    def test_07_append_upserts_by_idx(self):
        """Check 7: AppendMessages idx 3 (new) + idx 1 (changed): 2 written, count 4, idx 1
        keeps its UUID and shows the new content."""
        req = std_conversation()
        ext = req.conversation.external_id
        w = self.write(req)
        before = {m.idx: m.id for m in self.get_msgs(external_id=ext).messages}
        changed = pb.Message()
        changed.CopyFrom(req.messages[1])
        changed.content = "Changed content for idx one."
        a = self.append(SRC, ext, [simple_msg(3, "A new fourth message", t=M_TIMES[3]), changed])
        self.assertEqual(a.conversation_id, w.conversation_id)
        self.assertEqual(a.messages_written, 2)
        self.assertEqual(a.message_count, 4)
        self.assertEqual(a.version, w.version + 2)
        got = self.get_msgs(external_id=ext).messages
        self.assertEqual([m.idx for m in got], [0, 1, 2, 3])
        self.assertEqual(got[1].id, before[1], "idx 1 must keep its UUID")
        self.assertEqual(got[1].content, "Changed content for idx one.")
        self.assertEqual(got[0].id, before[0])
        self.assertEqual(got[2].id, before[2])
        self.assertUuid(got[3].id)
        self.assertNotIn(got[3].id, before.values())
        self.assertEqual(got[3].content, "A new fourth message")

    def test_08_append_by_platform_id(self):
        """Check 8: AppendMessages with external_id = platform_id finds the conversation."""
        req = std_conversation()
        w = self.write(req)
        a = self.append(SRC, req.conversation.platform_id, [simple_msg(3, "via platform id")])
        self.assertEqual(a.conversation_id, w.conversation_id)
        self.assertEqual(a.messages_written, 1)
        self.assertEqual(a.message_count, 4)
        got = self.get_msgs(external_id=req.conversation.external_id).messages
        self.assertEqual(got[-1].content, "via platform id")

    def test_09_role_normalisation(self):
        """Check 9: Human -> user, banana -> other (and the rest of the §5.4 table)."""
        table = [("Human", "user"), ("banana", "other"), ("user", "user"), ("USER", "user"),
                 ("assistant", "assistant"), ("Agent", "assistant"), ("AI", "assistant"),
                 ("bot", "assistant"), ("System", "system"), ("tool", "tool"),
                 ("Function", "tool")]
        ext = uid()
        self.write(pb.WriteConversationRequest(
            conversation=pb.Conversation(source_id=SRC, external_id=ext),
            messages=[simple_msg(i, "role %s" % r, role=r) for i, (r, _) in enumerate(table)]))
        got = self.get_msgs(external_id=ext).messages
        self.assertEqual([(table[m.idx][0], m.role) for m in got], table)

    def test_10_content_digest_from_parts(self):
        """Check 10: blank content takes the text of the parts; long content with parts becomes
        the digest of the parts (§5.3)."""
        long_text = ("lorem " * 500)[:3000]
        many_lines = "\n".join("line %d" % i for i in range(100))
        msgs = [
            # blank content, one text part
            simple_msg(0, "", parts_json=jdump([{"type": "text", "id": part_id(),
                                                 "text": "hello"}])),
            # 3,000 characters with parts: digest (trimmed, case-insensitive dedup, blank line)
            simple_msg(1, long_text, role="assistant", parts_json=jdump([
                {"type": "text", "id": part_id(), "text": "  alpha part  "},
                {"type": "thinking", "id": part_id(), "text": "beta thought"},
                {"type": "tool_call", "id": part_id(), "toolCallId": "c1", "name": "bash",
                 "input": {"command": "true"}},
                {"type": "status", "id": part_id(), "message": "gamma status"},
                {"type": "text", "id": part_id(), "text": "ALPHA PART"},
            ])),
            # more than 80 lines with parts: digest
            simple_msg(2, many_lines, role="assistant", parts_json=jdump([
                {"type": "text", "id": part_id(), "text": "delta"}])),
            # long content without parts: kept
            simple_msg(3, long_text, role="assistant"),
            # short content with parts: kept
            simple_msg(4, "short content", role="assistant", parts_json=jdump([
                {"type": "text", "id": part_id(), "text": "something else"}])),
            # blank content, parts give an empty digest: kept (blank)
            simple_msg(5, "", role="assistant", parts_json=jdump([
                {"type": "tool_call", "id": part_id(), "toolCallId": "c2", "name": "bash"}])),
        ]
        ext = uid()
        self.write(pb.WriteConversationRequest(
            conversation=pb.Conversation(source_id=SRC, external_id=ext), messages=msgs))
        got = {m.idx: m for m in self.get_msgs(external_id=ext).messages}
        self.assertEqual(got[0].content, "hello")
        self.assertEqual(got[1].content, "alpha part\n\nbeta thought\n\ngamma status")
        self.assertEqual(got[2].content, "delta")
        self.assertEqual(got[3].content, long_text)
        self.assertEqual(got[4].content, "short content")
        self.assertEqual(got[5].content, "")
        for m in msgs:  # parts are stored as given
            self.assertJsonEq(got[m.idx].parts_json, m.parts_json, [], "parts_json")

    def test_11_invalid_parts_become_empty_array(self):
        """Check 11: parts_json "not json" and {"a":1} both read back as []."""
        ext = uid()
        self.write(pb.WriteConversationRequest(
            conversation=pb.Conversation(source_id=SRC, external_id=ext),
            messages=[simple_msg(0, "not json parts", parts_json="not json"),
                      simple_msg(1, "object parts", parts_json='{"a":1}')]))
        got = self.get_msgs(external_id=ext).messages
        self.assertEqual(len(got), 2)
        for m in got:
            self.assertEqual(jload(m.parts_json, None), [], "idx %d parts_json" % m.idx)
        self.assertEqual([m.content for m in got], ["not json parts", "object parts"])

    def test_12_update_conversation(self):
        """Check 12: UpdateConversation with only title; then platform_id = "" keeps it."""
        req = std_conversation()
        ext = req.conversation.external_id
        w = self.write(req)
        t0 = now_ms()
        u = self.rpc("UpdateConversation", pb.UpdateConversationRequest(
            source_id=SRC, external_id=ext, title="A new title"))
        t1 = now_ms()
        self.assertEqual(u.conversation_id, w.conversation_id)
        conv = self.get_conv(external_id=ext).conversation
        self.assertEqual(conv.title, "A new title")
        self.assertEqual(conv.model, req.conversation.model)
        self.assertJsonEq(conv.metadata_json, req.conversation.metadata_json, {}, "metadata")
        self.assertTrue(conv.HasField("updated_at_ms"))
        self.assertGreaterEqual(conv.updated_at_ms, expect_ms(t0) - 5000, "updated_at not recent")
        self.assertLessEqual(conv.updated_at_ms, t1 + 5000, "updated_at in the future")
        self.assertEqual(conv.version, w.version + 1)

        self.rpc("UpdateConversation", pb.UpdateConversationRequest(
            source_id=SRC, external_id=ext, platform_id=""))
        conv = self.get_conv(external_id=ext).conversation
        self.assertEqual(conv.platform_id, req.conversation.platform_id)
        self.assertEqual(conv.version, w.version + 2)

        # title = "" does set an empty title (§6.4)
        self.rpc("UpdateConversation", pb.UpdateConversationRequest(
            source_id=SRC, external_id=ext, title=""))
        conv = self.get_conv(external_id=ext).conversation
        self.assertTrue(conv.HasField("title"))
        self.assertEqual(conv.title, "")
        self.assertEqual(conv.version, w.version + 3)

    def test_13_empty_external_id_always_creates(self):
        """Check 13: WriteConversation with empty external_id twice creates two conversations."""
        src = usrc()
        ids = []
        for title in ("first anonymous", "second anonymous"):
            w = self.write(pb.WriteConversationRequest(
                conversation=pb.Conversation(source_id=src, external_id="", title=title),
                messages=[simple_msg(0, title)]))
            self.assertUuid(w.conversation_id)
            self.assertEqual(w.version, 1)
            ids.append(w.conversation_id)
        self.assertNotEqual(ids[0], ids[1])
        for cid, title in zip(ids, ("first anonymous", "second anonymous")):
            conv = self.get_conv(conversation_id=cid)
            self.assertTrue(conv.HasField("conversation"), "not found by UUID")
            self.assertEqual(conv.conversation.title, title)
            self.assertEqual(conv.conversation.external_id, "")
        lst = self.rpc("ListConversations", pb.ListConversationsRequest(source_id=src))
        self.assertEqual(len(lst.conversations), 2)

    # -------------------------------------------------------------------------------- Lookup ---

    def test_14_lookup_selectors(self):
        """Check 14: found by external_id, platform_id (in external_id), readable_id, UUID; a wrong
        source_id or workspace finds nothing."""
        req = std_conversation()
        orig = req.conversation
        w = self.write(req)
        cid = w.conversation_id
        rid = self.get_conv(external_id=orig.external_id).conversation.readable_id
        self.assertRegex(rid, READABLE_RE)
        found = [
            ("external_id", dict(external_id=orig.external_id)),
            ("platform_id in external_id", dict(external_id=orig.platform_id)),
            ("readable_id", dict(readable_id=rid)),
            ("conversation_id", dict(conversation_id=cid)),
            ("uuid in all three", dict(external_id=cid, readable_id=cid, conversation_id=cid)),
            ("external id in all three", dict(external_id=orig.external_id,
                                              readable_id=orig.external_id,
                                              conversation_id=orig.external_id)),
            ("with right source and workspace", dict(external_id=orig.external_id,
                                                     source_id=SRC,
                                                     workspace=orig.workspace)),
        ]
        for what, sel in found:
            with self.subTest(selector=what):
                r = self.get_conv(**sel)
                self.assertTrue(r.HasField("conversation"), "not found by " + what)
                self.assertEqual(r.conversation.external_id, orig.external_id)
                self.assertEqual(self.get_msgs(**sel).conversation_id, cid)
                ev = self.rpc("GetMessageEvents", pb.GetMessageEventsRequest(**sel))
                self.assertEqual(ev.conversation_id, cid)
        missing = [
            ("wrong source_id", dict(external_id=orig.external_id, source_id="wrong-" + uid())),
            ("wrong workspace", dict(external_id=orig.external_id, workspace="/wrong/" + uid())),
            ("wrong source_id by UUID", dict(conversation_id=cid, source_id="wrong-" + uid())),
        ]
        for what, sel in missing:
            with self.subTest(selector=what):
                self.assertFalse(self.get_conv(**sel).HasField("conversation"),
                                 "found with " + what)
                self.assertEqual(self.get_msgs(**sel).conversation_id, "")

    def test_15_get_messages_limit_is_tail(self):
        """Check 15: GetMessages limit 2 on 4 messages returns idx 2 and 3."""
        ext = uid()
        self.write(pb.WriteConversationRequest(
            conversation=pb.Conversation(source_id=SRC, external_id=ext),
            messages=[simple_msg(i, "message %d" % i) for i in range(4)]))
        self.assertEqual([m.idx for m in self.get_msgs(external_id=ext, limit=2).messages],
                         [2, 3])
        self.assertEqual([m.idx for m in self.get_msgs(external_id=ext, limit=0).messages],
                         [0, 1, 2, 3])
        self.assertEqual([m.idx for m in self.get_msgs(external_id=ext, limit=10).messages],
                         [0, 1, 2, 3])

    # --------------------------------------------------------------------- Errors, not found ---

    def test_16_unknown_reads_are_ok_and_empty(self):
        """Check 16: reads of an unknown conversation: OK, empty payload, conversation_id ""."""
        known = std_conversation()
        self.write(known)
        selectors = [
            dict(external_id=uid()),
            dict(conversation_id=uid()),
            dict(readable_id="no-such-" + uword()),
            dict(external_id=uid(), readable_id=uid(), conversation_id=uid()),
            dict(),
            # no identifier given: not found even though source and workspace match something
            dict(source_id=SRC, workspace=known.conversation.workspace),
        ]
        for sel in selectors:
            with self.subTest(selector=sel):
                self.assertFalse(self.get_conv(**sel).HasField("conversation"))
                m = self.get_msgs(**sel)
                self.assertEqual(m.conversation_id, "")
                self.assertEqual(len(m.messages), 0)
                e = self.rpc("GetMessageEvents", pb.GetMessageEventsRequest(**sel))
                self.assertEqual(e.conversation_id, "")
                self.assertEqual(len(e.events), 0)

    def test_17_unknown_key_writes_not_found(self):
        """Check 17 (status part): Append/Update/Delete on an unknown key: NOT_FOUND."""
        ext = uid()
        NF = grpc.StatusCode.NOT_FOUND
        self.rpc_err("AppendMessages", pb.AppendMessagesRequest(
            source_id=SRC, external_id=ext, messages=[simple_msg(0, "x")]), NF)
        self.rpc_err("AppendMessages", pb.AppendMessagesRequest(
            source_id=SRC, external_id=ext, updated_at_ms=now_ms()), NF)
        self.rpc_err("UpdateConversation", pb.UpdateConversationRequest(
            source_id=SRC, external_id=ext, title="x"), NF)
        self.rpc_err("DeleteConversation", pb.DeleteConversationRequest(
            source_id=SRC, external_id=ext), NF)
        # a known external id under another source is still unknown
        req = std_conversation()
        self.write(req)
        self.rpc_err("UpdateConversation", pb.UpdateConversationRequest(
            source_id="wrong-" + uid(), external_id=req.conversation.external_id, title="x"), NF)

    def test_18_invalid_arguments(self):
        """Check 18: empty source_id/external_id for Update and Delete; Write without
        conversation: INVALID_ARGUMENT."""
        IA = grpc.StatusCode.INVALID_ARGUMENT
        req = std_conversation()
        self.write(req)
        ext = req.conversation.external_id
        for src, e in (("", ext), (SRC, ""), ("", "")):
            with self.subTest(source_id=src, external_id=e):
                self.rpc_err("UpdateConversation", pb.UpdateConversationRequest(
                    source_id=src, external_id=e, title="x"), IA)
                self.rpc_err("DeleteConversation", pb.DeleteConversationRequest(
                    source_id=src, external_id=e), IA)
        self.rpc_err("WriteConversation", pb.WriteConversationRequest(
            messages=[simple_msg(0, "orphan")]), IA)
        self.rpc_err("WriteConversation", pb.WriteConversationRequest(), IA)
        # nothing was changed by the rejected calls
        conv = self.get_conv(external_id=ext).conversation
        self.assertEqual(conv.title, req.conversation.title)
        self.assertEqual(conv.version, 3)

    def test_19_tag_attachment_search_errors(self):
        """Check 19: malformed UUIDs: INVALID_ARGUMENT; (Octo deviates) unknown UUIDs for AddTag
        and UploadAttachment: NOT_FOUND; empty search query: INVALID_ARGUMENT."""
        IA = grpc.StatusCode.INVALID_ARGUMENT
        self.rpc_err("AddTag", pb.AddTagRequest(conversation_id="nope", tag="x"), IA)
        self.rpc_err("RemoveTag", pb.RemoveTagRequest(conversation_id="nope", tag="x"), IA)
        self.rpc_err("UploadAttachment", pb.UploadAttachmentRequest(
            message_id="nope", mime_type="text/plain", data=b"x"), IA)
        # RemoveTag on a well-formed unknown UUID: removed = false (hstry and Octo alike)
        r = self.rpc("RemoveTag", pb.RemoveTagRequest(conversation_id=uid(), tag="x"))
        self.assertFalse(r.removed)
        # hstry answers these with INTERNAL; Octo with the codes below
        expect_nf = grpc.StatusCode.NOT_FOUND if IS_OCTO else grpc.StatusCode.INTERNAL
        expect_ia = IA if IS_OCTO else grpc.StatusCode.INTERNAL
        self.rpc_err("AddTag", pb.AddTagRequest(conversation_id=uid(), tag="x"), expect_nf)
        self.rpc_err("UploadAttachment", pb.UploadAttachmentRequest(
            message_id=uid(), mime_type="text/plain", data=b"x"), expect_nf)
        for q in ("", "   ", "\t\n", "*"):
            with self.subTest(query=q):
                self.rpc_err("Search", pb.SearchRequest(query=q), expect_ia)

    def test_20_rejected_requests_change_nothing(self):
        """Check 20 (observable part; the log length is checked on the Rust side): rejected
        requests aimed at a conversation leave its version, messages and events unchanged."""
        req = std_conversation()
        ext = req.conversation.external_id
        w = self.write(req)
        cid = w.conversation_id
        mid = self.get_msgs(external_id=ext).messages[0].id

        def state():
            conv = self.get_conv(external_id=ext).conversation
            msgs = self.get_msgs(external_id=ext).messages
            ev = self.rpc("GetMessageEvents", pb.GetMessageEventsRequest(external_id=ext)).events
            return (conv.version, conv.message_count, conv.title, conv.updated_at_ms,
                    [(m.id, m.content) for m in msgs], [e.id for e in ev])
        before = state()
        IA, NF = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
        self.rpc_err("UpdateConversation", pb.UpdateConversationRequest(
            source_id="", external_id=ext, title="rejected"), IA)
        self.rpc_err("DeleteConversation", pb.DeleteConversationRequest(
            source_id=SRC, external_id=""), IA)
        self.rpc_err("WriteConversation", pb.WriteConversationRequest(
            messages=[simple_msg(0, "rejected")]), IA)
        self.rpc_err("AppendMessages", pb.AppendMessagesRequest(
            source_id="wrong-" + uid(), external_id=ext,
            messages=[simple_msg(0, "rejected")]), NF)
        self.rpc_err("UpdateConversation", pb.UpdateConversationRequest(
            source_id="wrong-" + uid(), external_id=ext, title="rejected"), NF)
        self.rpc_err("DeleteConversation", pb.DeleteConversationRequest(
            source_id="wrong-" + uid(), external_id=ext), NF)
        self.rpc_err("AddTag", pb.AddTagRequest(conversation_id="nope", tag="x"), IA)
        self.rpc_err("UploadAttachment", pb.UploadAttachmentRequest(
            message_id="nope", mime_type="text/plain", data=b"x"), IA)
        if IS_OCTO:
            self.rpc_err("AddTag", pb.AddTagRequest(conversation_id=uid(), tag="x"), NF)
            self.rpc_err("Search", pb.SearchRequest(query="  "), IA)
        self.assertEqual(state(), before)
        self.assertTrue(mid and cid)

    # --------------------------------------------------------------- Tags, delete, attachments ---

    def test_21_tags(self):
        """Check 21: AddTag " Bug " then "bug"; Search tag "BUG"; RemoveTag twice."""
        word = uword()
        req = std_conversation(word=word)
        w = self.write(req)
        cid = w.conversation_id
        a = self.rpc("AddTag", pb.AddTagRequest(conversation_id=cid, tag=" Bug "))
        self.assertTrue(a.added)
        a = self.rpc("AddTag", pb.AddTagRequest(conversation_id=cid, tag="bug"))
        self.assertFalse(a.added)
        a = self.rpc("AddTag", pb.AddTagRequest(conversation_id=cid, tag="  "))
        self.assertFalse(a.added, "an empty tag is never added")
        self.assertEqual(len(self.search(word)), 3)
        hits = self.search(word, tag="BUG")
        self.assertEqual(len(hits), 3, "tag filter should find the 3 tagged messages")
        self.assertEqual({h.conversation_id for h in hits}, {cid})
        self.assertEqual(self.get_conv(conversation_id=cid).conversation.version, w.version,
                         "tags must not bump version")
        r = self.rpc("RemoveTag", pb.RemoveTagRequest(conversation_id=cid, tag="bug"))
        self.assertTrue(r.removed)
        r = self.rpc("RemoveTag", pb.RemoveTagRequest(conversation_id=cid, tag="bug"))
        self.assertFalse(r.removed)
        self.assertEqual(self.search(word, tag="BUG"), [])
        self.assertEqual(len(self.search(word)), 3)

    def test_22_delete(self):
        """Check 22: DeleteConversation returns the UUID; reads, search and list forget it;
        a second delete is NOT_FOUND."""
        word = uword()
        src = usrc()
        req = std_conversation(source=src, word=word)
        ext = req.conversation.external_id
        w = self.write(req)
        keep = std_conversation(source=src)  # a neighbour that must survive
        kw = self.write(keep)
        self.assertEqual(len(self.search(word)), 3)
        d = self.rpc("DeleteConversation", pb.DeleteConversationRequest(
            source_id=src, external_id=ext))
        self.assertEqual(d.conversation_id, w.conversation_id)
        for sel in (dict(external_id=ext), dict(conversation_id=w.conversation_id)):
            self.assertFalse(self.get_conv(**sel).HasField("conversation"))
            m = self.get_msgs(**sel)
            self.assertEqual((m.conversation_id, len(m.messages)), ("", 0))
            e = self.rpc("GetMessageEvents", pb.GetMessageEventsRequest(**sel))
            self.assertEqual((e.conversation_id, len(e.events)), ("", 0))
        self.assertEqual(self.search(word), [])
        lst = self.rpc("ListConversations", pb.ListConversationsRequest(source_id=src))
        self.assertEqual([s.conversation.external_id for s in lst.conversations],
                         [keep.conversation.external_id])
        self.assertEqual(self.get_msgs(external_id=keep.conversation.external_id).conversation_id,
                         kw.conversation_id)
        self.rpc_err("DeleteConversation", pb.DeleteConversationRequest(
            source_id=src, external_id=ext), grpc.StatusCode.NOT_FOUND)

    def test_23_attachments(self):
        """Check 23: UploadAttachment on a real message returns a UUID; a part referencing it
        round-trips."""
        req = std_conversation()
        ext = req.conversation.external_id
        self.write(req)
        mid = self.get_msgs(external_id=ext).messages[0].id
        png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                            "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
        a1 = self.rpc("UploadAttachment", pb.UploadAttachmentRequest(
            message_id=mid, mime_type="image/png", filename="pixel.png", data=png))
        self.assertUuid(a1.attachment_id, "attachment_id")
        a2 = self.rpc("UploadAttachment", pb.UploadAttachmentRequest(
            message_id=mid, mime_type="text/plain", data=b"notes"))
        self.assertUuid(a2.attachment_id, "attachment_id")
        self.assertNotEqual(a1.attachment_id, a2.attachment_id)
        parts = jdump([
            {"type": "text", "id": part_id(), "text": "see the picture"},
            {"type": "image", "id": part_id(), "source": "attachmentRef",
             "attachmentId": a1.attachment_id, "mimeType": "image/png", "alt": "a pixel"},
            {"type": "attachment", "id": part_id(), "source": "attachmentRef",
             "attachmentId": a2.attachment_id, "mimeType": "text/plain",
             "filename": "notes.txt", "sizeBytes": 5},
        ])
        self.append(SRC, ext, [simple_msg(3, "see the picture", parts_json=parts)])
        got = self.get_msgs(external_id=ext).messages
        self.assertEqual([m.idx for m in got], [0, 1, 2, 3])
        self.assertJsonEq(got[-1].parts_json, parts, [], "attachment parts")

    # -------------------------------------------------------------------------------- Search ---

    def test_24_natural_search(self):
        """Check 24: NATURAL stemming, '-' not an operator, prefix search; hit fields."""
        src = usrc()
        ws = "/tmp/hstry-conformance/ws-" + uuid.uuid4().hex
        req = std_conversation(source=src, workspace=ws)
        req.messages[0].content = "please run the test on the hp-z8 workspace now"
        w = self.write(req)
        N = pb.SEARCH_MODE_NATURAL
        hits = self.search("running tests", workspace=ws, mode=N)
        self.assertEqual([(h.conversation_id, h.message_idx) for h in hits],
                         [(w.conversation_id, 0)], "'running tests' should find 'run the test'")
        self.assertEqual(len(self.search("running tests", workspace=ws)), 1, "AUTO")
        self.assertEqual(len(self.search("hp-z8", workspace=ws, mode=N)), 1)
        self.assertEqual(len(self.search("hp-z8", workspace=ws)), 1, "AUTO hp-z8")
        self.assertEqual(len(self.search("work*", workspace=ws, mode=N)), 1)
        for q in ("(run", '"test', "test)", "hp-z8 -run", "run: test", "NOT test", "test OR"):
            with self.subTest(query=q):
                self.rpc("Search", pb.SearchRequest(query=q, workspace=ws, mode=N))

        # the fields of a hit
        h = hits[0]
        conv = self.get_conv(external_id=req.conversation.external_id).conversation
        msg = self.get_msgs(external_id=req.conversation.external_id).messages[0]
        self.assertEqual(h.message_id, msg.id)
        self.assertEqual(h.role, "user")
        self.assertEqual(h.content, req.messages[0].content)
        self.assertIn("[", h.snippet)
        self.assertTime(h.created_at_ms, req.messages[0].created_at_ms, "hit.created_at_ms")
        self.assertTime(h.conv_created_at_ms, CONV_CREATED, "hit.conv_created_at_ms")
        self.assertTime(h.conv_updated_at_ms, CONV_UPDATED, "hit.conv_updated_at_ms")
        self.assertLess(h.score, 0, "bm25-style scores are negative")
        self.assertEqual(h.source_id, src)
        self.assertEqual(h.external_id, req.conversation.external_id)
        self.assertEqual(h.title, req.conversation.title)
        self.assertEqual(h.workspace, ws)
        self.assertEqual(h.source_adapter, src)
        self.assertEqual(h.source_path, "")
        self.assertEqual(h.host, "")
        self.assertEqual(h.readable_id, conv.readable_id)

    def test_25_code_search(self):
        """Check 25: CODE tokens under AUTO; foo_bar does not match; snippet brackets the whole
        code token."""
        ws = "/tmp/hstry-conformance/ws-" + uuid.uuid4().hex
        ext = uid()
        w = self.write(pb.WriteConversationRequest(
            conversation=pb.Conversation(source_id=SRC, external_id=ext, workspace=ws),
            messages=[simple_msg(0, "edit src/foo_bar.rs and std::fs::read")]))
        want = [(w.conversation_id, 0)]

        def ids(hits):
            return [(h.conversation_id, h.message_idx) for h in hits]
        for q in ("src/foo_bar.rs", "src/foo*", "std::fs::read"):
            with self.subTest(query=q, mode="AUTO"):
                self.assertEqual(ids(self.search(q, workspace=ws)), want)
        with self.subTest(query="foo_bar", mode="AUTO"):
            self.assertEqual(self.search("foo_bar", workspace=ws), [])
        for q in ("foo", "std"):
            with self.subTest(query=q, mode="NATURAL"):
                self.assertEqual(ids(self.search(q, workspace=ws,
                                                 mode=pb.SEARCH_MODE_NATURAL)), want)
        with self.subTest(query="src/foo_bar.rs", mode="CODE"):
            hits = self.search("src/foo_bar.rs", workspace=ws, mode=pb.SEARCH_MODE_CODE)
            self.assertEqual(ids(hits), want)
        hits = self.search("src/foo_bar.rs", workspace=ws)
        self.assertEqual(len(hits), 1)
        self.assertIn("[src/foo_bar.rs]", hits[0].snippet)

    def test_26_search_filters(self):
        """Check 26: source prefix family, role, model, harness, workspace, after/before."""
        word = uword()
        P = usrc()
        r = uuid.uuid4().hex[:8]
        T1 = 1700000010000
        T2, T3 = T1 + 10000, T1 + 20000
        wsA = "/tmp/hstry-conformance/a-" + r
        wsB = "/tmp/hstry-conformance/b-" + r
        wsC = "/tmp/hstry-conformance/c-" + r
        mA, mB, hA, hB = "model-a-" + r, "model-b-" + r, "harness-a-" + r, "harness-b-" + r

        def conv(source, ws, model, harness, msgs):
            w = self.write(pb.WriteConversationRequest(
                conversation=pb.Conversation(source_id=source, external_id=uid(), workspace=ws,
                                             model=model, harness=harness,
                                             created_at_ms=T1 - 60000),
                messages=msgs))
            return w.conversation_id
        a = conv(P, wsA, mA, hA, [simple_msg(0, "alpha " + word, "user", T1),
                                  simple_msg(1, "beta " + word, "assistant", T2),
                                  simple_msg(2, "gamma " + word, "user")])  # no time
        b = conv(P + "-work", wsB, mB, hB, [simple_msg(0, "delta " + word, "user", T3)])
        c = conv(P + "x", wsC, mA, hA, [simple_msg(0, "eps " + word, "assistant", T2)])

        def q(**kw):
            return sorted((h.conversation_id, h.message_idx) for h in self.search(word, **kw))
        A0, A1, A2, B0, C0 = (a, 0), (a, 1), (a, 2), (b, 0), (c, 0)
        cases = [
            ("no filter", {}, [A0, A1, A2, B0, C0]),
            ("source family", dict(source=P), [A0, A1, A2, B0]),
            ("source child", dict(source=P + "-work"), [B0]),
            ("source other", dict(source=P + "x"), [C0]),
            ("role assistant", dict(role="assistant"), [A1, C0]),
            ("role user", dict(role="user"), [A0, A2, B0]),
            ("model A", dict(model=mA), [A0, A1, A2, C0]),
            ("model B", dict(model=mB), [B0]),
            ("harness A", dict(harness=hA), [A0, A1, A2, C0]),
            ("harness B", dict(harness=hB), [B0]),
            ("workspace A", dict(workspace=wsA), [A0, A1, A2]),
            ("after T1", dict(after_ms=T1), [A1, B0, C0]),
            ("before T2", dict(before_ms=T2), [A0]),
            ("between", dict(after_ms=T1, before_ms=T3), [A1, C0]),
            ("after 1 drops untimed", dict(after_ms=1), [A0, A1, B0, C0]),
            ("source and role", dict(source=P, role="user"), [A0, A2, B0]),
        ]
        for what, kw, expected in cases:
            with self.subTest(filter=what):
                self.assertEqual(q(**kw), sorted(expected))

    def test_27_search_pagination(self):
        """Check 27: 25 matches; limit 10 at offsets 0, 10, 20 -> 10, 10, 5, disjoint, same order
        as limit 0; scores ascending; snippets bracket the word."""
        word = uword()
        src = usrc()
        n = 0
        for _ in range(5):
            msgs = []
            for j in range(5):
                # different lengths give different bm25 scores, so the order is well defined
                msgs.append(simple_msg(j, "%s %s" % (word, " ".join(["filler"] * (n * 3)))))
                n += 1
            self.write(pb.WriteConversationRequest(
                conversation=pb.Conversation(source_id=src, external_id=uid()), messages=msgs))
        full = self.search(word, limit=0)
        self.assertEqual(len(full), 25)
        pages = [self.search(word, limit=10, offset=o) for o in (0, 10, 20)]
        self.assertEqual([len(p) for p in pages], [10, 10, 5])
        joined = [h.message_id for p in pages for h in p]
        self.assertEqual(len(set(joined)), 25, "pages overlap")
        self.assertEqual(joined, [h.message_id for h in full])
        scores = [h.score for h in full]
        self.assertEqual(scores, sorted(scores), "scores must ascend (best bm25 first)")
        for h in full:
            self.assertIn("[%s]" % word, h.snippet.lower())
        self.assertEqual(self.search(word, limit=10, offset=30), [])
        self.assertEqual(len(self.search(word, source=src, limit=-1)), 25)
        if IS_OCTO:  # Octo deviates: offset with limit <= 0 is applied (hstry: INTERNAL)
            tail = self.search(word, limit=0, offset=20)
            self.assertEqual([h.message_id for h in tail], [h.message_id for h in full[20:]])

    # ---------------------------------------------------------------------------------- List ---

    def test_28_list_conversations(self):
        """Check 28: order by updated (else created) newest first; source and workspace filters
        incl. patterns; limit; (Octo) offset; first_user_message; message_count."""
        P = usrc()
        root = "/tmp/hstry-conformance/list-" + uuid.uuid4().hex
        base = 1700000100000
        specs = {
            # name: (source, workspace, created, updated or None, messages)
            "c3": (P + "-work", root + "/alpha", base + 5000, base + 30000,
                   [simple_msg(0, "c3 user", "user", base + 6000)]),
            "c1": (P, root + "/alpha", base, base + 10000,
                   [simple_msg(0, "sys prompt", "system", base + 1000),
                    simple_msg(1, "first user text", "user", base + 2000),
                    simple_msg(2, "second user text", "user", base + 3000),
                    simple_msg(3, "reply", "assistant", base + 4000)]),
            "c4": (P + "x", root + "/alpha", base + 40000, base + 40000,
                   [simple_msg(0, "c4 user", "user", base + 40000)]),
            "c2": (P, root + "/beta", base + 20000, None,
                   [simple_msg(0, "only assistant", "assistant", base + 20000)]),
        }
        ext = {}
        for name in ("c3", "c1", "c4", "c2"):  # write order differs from the expected order
            source, ws, created, updated, msgs = specs[name]
            conv = pb.Conversation(source_id=source, external_id=uid(), workspace=ws,
                                   created_at_ms=created, title=name)
            if updated is not None:
                conv.updated_at_ms = updated
            self.write(pb.WriteConversationRequest(conversation=conv, messages=msgs))
            ext[conv.external_id] = name

        def names(**kw):
            lst = self.rpc("ListConversations", pb.ListConversationsRequest(**kw))
            return [ext.get(s.conversation.external_id, "?") for s in lst.conversations]
        cases = [
            ("source family", dict(source_id=P), ["c3", "c2", "c1"]),
            ("source child", dict(source_id=P + "-work"), ["c3"]),
            ("workspace exact", dict(workspace=root + "/alpha"), ["c4", "c3", "c1"]),
            ("workspace %", dict(workspace=root + "/%"), ["c4", "c3", "c2", "c1"]),
            ("workspace _", dict(workspace=root + "/alph_"), ["c4", "c3", "c1"]),
            ("source and workspace", dict(source_id=P, workspace=root + "/alpha"), ["c3", "c1"]),
            ("limit", dict(source_id=P, limit=2), ["c3", "c2"]),
            ("limit 0 is all", dict(source_id=P, limit=0), ["c3", "c2", "c1"]),
        ]
        for what, kw, expected in cases:
            with self.subTest(case=what):
                self.assertEqual(names(**kw), expected)
        if IS_OCTO:  # Octo deviates: offset pages (hstry ignores it)
            with self.subTest(case="offset"):
                self.assertEqual(names(source_id=P, limit=2, offset=2), ["c1"])
                self.assertEqual(names(source_id=P, limit=1, offset=1), ["c2"])

        lst = self.rpc("ListConversations", pb.ListConversationsRequest(source_id=P))
        by = {ext.get(s.conversation.external_id, "?"): s for s in lst.conversations}
        self.assertEqual(sorted(by), ["c1", "c2", "c3"])
        self.assertEqual(by["c1"].first_user_message, "first user text")
        self.assertEqual(by["c2"].first_user_message, "")
        self.assertEqual(by["c3"].first_user_message, "c3 user")
        for name, count in (("c1", 4), ("c2", 1), ("c3", 1)):
            self.assertEqual(by[name].message_count, count, name)
            self.assertEqual(by[name].conversation.message_count, count, name)
            self.assertEqual(by[name].conversation.title, name)

    # ----------------------------------------------------------------------- Event sourcing ---

    def test_29_message_events(self):
        """Check 29: after the writes of checks 3 to 7, one event per effective write in idx
        order, payloads with the §5.5 fields; after_idx and limit filters."""
        req = std_conversation()
        ext = req.conversation.external_id
        w = self.write(req)                           # check 3: 3 inserts
        self.assertEqual(self.write(req).messages_written, 0)   # check 5: nothing
        req2 = pb.WriteConversationRequest()
        req2.CopyFrom(req)
        req2.conversation.ClearField("title")
        req2.conversation.ClearField("workspace")
        self.assertEqual(self.write(req2).messages_written, 0)  # check 6: nothing
        changed = pb.Message()
        changed.CopyFrom(req.messages[1])
        changed.content = "Changed content for idx one."
        m3 = simple_msg(3, "A new fourth message", t=M_TIMES[3])
        a = self.append(SRC, ext, [m3, changed])     # check 7: 1 insert, 1 change
        self.assertEqual(a.messages_written, 2)
        cid = w.conversation_id
        msg_ids = {m.idx: m.id for m in self.get_msgs(external_id=ext).messages}

        ev = self.rpc("GetMessageEvents", pb.GetMessageEventsRequest(external_id=ext))
        self.assertEqual(ev.conversation_id, cid)
        events = list(ev.events)
        self.assertEqual([e.idx for e in events], [0, 1, 1, 2, 3],
                         "one event per effective write, in idx order")
        self.assertEqual(len({e.id for e in events}), 5, "event ids must be distinct")
        sent = {0: [req.messages[0]], 1: [req.messages[1], changed], 2: [req.messages[2]],
                3: [m3]}
        idx1 = [e for e in events if e.idx == 1]
        if not IS_OCTO:  # hstry leaves the order of events sharing an idx open
            idx1.sort(key=lambda e: json.loads(e.payload_json).get("content") != sent[1][0].content)
        ordered = [events[0]] + idx1 + events[3:]
        seen = {}
        for e in ordered:
            k = seen.get(e.idx, 0)
            seen[e.idx] = k + 1
            s = sent[e.idx][k]
            with self.subTest(event_idx=e.idx, nth=k):
                self.assertUuid(e.id, "event id")
                self.assertEqual(e.conversation_id, cid)
                if k == 0:
                    self.assertEqual(e.id, msg_ids[e.idx],
                                     "the creating event's id is the message UUID")
                else:
                    self.assertNotEqual(e.id, msg_ids[e.idx], "a rewrite gets a fresh event id")
                self.assertTime(e.created_at_ms, s.created_at_ms, "event created_at_ms")
                self.assertJsonEq(e.metadata_json, s.metadata_json, {}, "event metadata_json")
                p = json.loads(e.payload_json)
                self.assertIsInstance(p, dict)
                for key in ("id", "conversation_id", "idx", "role", "content", "parts_json",
                            "created_at", "model", "tokens", "cost_usd", "metadata"):
                    self.assertIn(key, p, "payload lacks %r" % key)
                self.assertUuid(p["id"], "payload id")
                if k == 0:
                    self.assertEqual(p["id"], msg_ids[e.idx])
                self.assertEqual(p["conversation_id"], cid)
                self.assertEqual(p["idx"], e.idx)
                self.assertEqual(p["role"], s.role)
                self.assertEqual(p["content"], s.content)
                self.assertIsInstance(p["parts_json"], list, "parts_json must be an array")
                self.assertEqual(p["parts_json"], jload(s.parts_json, []))
                self.assertEqual(rfc3339_to_ms(p["created_at"]), s.created_at_ms,
                                 "created_at keeps the writer's milliseconds")
                self.assertEqual(p["model"], s.model if s.HasField("model") else None)
                self.assertEqual(p["tokens"], s.tokens if s.HasField("tokens") else None)
                self.assertEqual(p["cost_usd"], s.cost_usd if s.HasField("cost_usd") else None)
                self.assertEqual(p["metadata"], jload(s.metadata_json, {}))
                if s.sender_json:
                    self.assertEqual(p.get("sender"), json.loads(s.sender_json))
                else:
                    self.assertNotIn("sender", p)
                for f in ("provider", "harness", "client_id"):
                    if s.HasField(f):
                        self.assertEqual(p.get(f), getattr(s, f))
                    else:
                        self.assertNotIn(f, p)

        after = self.rpc("GetMessageEvents", pb.GetMessageEventsRequest(
            external_id=ext, after_idx=2)).events
        self.assertEqual([e.idx for e in after], [3])
        one = self.rpc("GetMessageEvents", pb.GetMessageEventsRequest(
            external_id=ext, limit=1)).events
        self.assertEqual([e.idx for e in one], [0])
        later = self.rpc("GetMessageEvents", pb.GetMessageEventsRequest(
            external_id=ext, after_created_at_ms=M_TIMES[1])).events
        self.assertEqual([e.idx for e in later], [2, 3])

    # ---------------------------------------------------------------------------- Octo only ---

    def test_32_concurrent_appends(self):
        """Check 32 (Octo only): 8 concurrent appenders to one conversation: every response
        version distinct; final message_count = number of distinct idx values."""
        self.octo_only("hstry reads the version back after writing")
        ext = uid()
        w = self.write(pb.WriteConversationRequest(
            conversation=pb.Conversation(source_id=SRC, external_id=ext)))
        self.assertEqual((w.version, w.message_count), (0, 0))
        threads_n, per_thread = 8, 5
        barrier = threading.Barrier(threads_n)
        results, errors = [], []
        lock = threading.Lock()
        stub = self.c.method("AppendMessages")

        def worker(t):
            reqs = [pb.AppendMessagesRequest(source_id=SRC, external_id=ext,
                                             messages=[simple_msg(t * per_thread + j,
                                                                  "t%d m%d" % (t, j))])
                    for j in range(per_thread)]
            # every thread also rewrites one shared idx with its own content: always a change
            reqs.append(pb.AppendMessagesRequest(source_id=SRC, external_id=ext,
                                                 messages=[simple_msg(1000, "shared by t%d" % t)]))
            try:
                barrier.wait(timeout=30)
            except threading.BrokenBarrierError:
                pass
            for r in reqs:
                try:
                    resp = stub(r, timeout=CALL_TIMEOUT)
                    with lock:
                        results.append((resp.version, resp.messages_written))
                except grpc.RpcError as e:
                    with lock:
                        errors.append("%s: %s" % (e.code().name, e.details()))
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=BIG_TIMEOUT)
        self.assertEqual(errors, [])
        total = threads_n * (per_thread + 1)
        self.assertEqual(len(results), total)
        self.assertEqual([r[1] for r in results], [1] * total, "every append writes one message")
        versions = [r[0] for r in results]
        self.assertEqual(len(set(versions)), total, "versions repeat: %s" % sorted(versions))
        self.assertEqual(sorted(versions), list(range(1, total + 1)))
        conv = self.get_conv(external_id=ext).conversation
        self.assertEqual(conv.message_count, threads_n * per_thread + 1)
        self.assertEqual(conv.version, max(versions))
        self.assertEqual(len(self.get_msgs(external_id=ext).messages), threads_n * per_thread + 1)


# ------------------------------------------------------------------------------------------------
# runner
# ------------------------------------------------------------------------------------------------

def _probe(target, what):
    ch = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(ch).result(timeout=float(os.environ.get("HSTRY_CONNECT", "5")))
        return True
    except grpc.FutureTimeoutError:
        sys.stderr.write("hstry conformance: cannot connect to %s (%s); is the server running?\n"
                         % (target, what))
        return False
    finally:
        ch.close()


def main():
    if not ADDR:
        sys.stderr.write("hstry conformance: set HSTRY_ADDR=host:port (e.g. 127.0.0.1:50051)\n")
        return 2
    if TARGET not in ("octo", "hstry"):
        sys.stderr.write("hstry conformance: HSTRY_TARGET must be 'octo' or 'hstry'\n")
        return 2
    ok = _probe(ADDR, "HSTRY_ADDR")
    if UNIX_PATH:
        ok = _probe("unix:" + UNIX_PATH, "HSTRY_UNIX") and ok
    if not ok:
        print("conformance: 0 passed, 1 failed")
        return 1
    sys.stderr.write("hstry conformance: target=%s addr=%s%s\n" % (
        TARGET, ADDR, (" unix=" + UNIX_PATH) if UNIX_PATH else ""))
    prog = unittest.main(module=__name__, argv=[sys.argv[0]] + sys.argv[1:], exit=False,
                         verbosity=2)
    r = prog.result

    def test_ids(entries):  # a failing subtest counts once, for its test
        return {getattr(t, "test_case", t).id() for t, _ in entries}
    failed_ids = test_ids(r.failures) | test_ids(r.errors) | {
        t.id() for t in getattr(r, "unexpectedSuccesses", [])}
    skipped_ids = test_ids(r.skipped) - failed_ids
    failed, skipped = len(failed_ids), len(skipped_ids)
    passed = max(0, r.testsRun - failed - skipped - len(r.expectedFailures))
    print("conformance: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 0 if r.wasSuccessful() and r.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
