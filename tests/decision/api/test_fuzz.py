"""Fuzzing the API over real gRPC: random, malformed and hostile requests, as bytes on the wire.

Every call must end OK with a well-formed answer, or INVALID_ARGUMENT whose message starts with the
field at fault (``request`` when the bytes do not even parse), or RESOURCE_EXHAUSTED for a message
over the size limit. Never INTERNAL or UNKNOWN; and a known profile keeps getting its normal answer
in every batch, so nothing the fuzzer sends breaks the server for others.

Requests go through a generic unary call (bytes in, bytes out), so the fuzzer can send what no
generated client would: invalid UTF-8 (encoded surrogates), corrupt wire format, nesting deeper than
protobuf allows. ``FUZZ_BATCHES`` batches of ``BATCH`` Decide requests run (default 420 x 25 = 10,500
calls, plus one known request per batch), and ``FUZZ_EVENT_BATCHES`` of 12 RecordEvents requests
(default 100 x 12 = 1,200 calls of up to 6 events each, some of 501). For long runs lift pytest's
time limit: ``FUZZ_BATCHES=5000 ./dev test --timeout 0 tests/decision/api/test_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decision.api.server import RunningServer, start
from decision.settings import Limits, Settings
from decision.v1 import decision_pb2
from tests.conftest import PATIENT_REDIS_TIMEOUT
from tests.decision.helpers import add_membership

RULES = """
version: fuzz-1
attributes: {cart: number, device: string, tags: list, member: bool}
placements:
  - {id: banner, channels: [web, mobile], max_items: 2, fallback: fb}
  - {id: side, channels: [web], max_items: 3, fallback: fb}
  - {id: card, channels: [mobile], max_items: 1, fallback: fb}
offers:
  - {id: fb, placements: [banner, side, card], priority: -1}
  - {id: vip, placements: [banner, card], priority: 9, eligibility: {audiences: {all: [vip]}}}
  - id: big_cart
    placements: [banner, side]
    eligibility:
      conditions: [{context.cart: {ge: 100}}, {not: {context.device: {in: [tv, "\\u00e9"]}}}]
  - {id: tagged, placements: [side], eligibility: {conditions: {context.tags: {contains: sale}}}}
  - {id: members, placements: [side, card], eligibility: {conditions: {context.member: {eq: true}}}}
"""
DECIDE = "/decision.v1.DecisionService/Decide"
LIMITS = Limits()
BATCH = 25  # requests per hypothesis example, sent concurrently
BASES = 4  # of which drawn by hypothesis; the others are random mutations of these
BATCHES = int(os.environ.get("FUZZ_BATCHES", "420"))
KNOWN = decision_pb2.DecideRequest(
    profile_id="known-vip", channel="web", placements=[decision_pb2.PlacementRequest(placement_id="banner")]
)
FIELD_FIRST = re.compile(r"^(profile_id|channel|request_id|placements|context|why_not|request)[\[.:]")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    rules = tmp_path_factory.mktemp("fuzz") / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    # One connection for the whole fuzz (no GOAWAY at 5 s): a request over the size limit is refused before it
    # is read, and if its connection is closed (at its age) while the client still sends, the client reports
    # UNAVAILABLE "Stream removed" instead of RESOURCE_EXHAUSTED -- the answer this fuzz judges.
    settings_ = Settings(
        rules_path=str(rules),
        host="127.0.0.1",
        port=0,
        redis_timeout=PATIENT_REDIS_TIMEOUT,
        shutdown_grace=7200,
        max_connection_age=3600,
    )
    running = await start(settings_, redis_url)
    await add_membership(running, "known-vip", "vip")
    await add_membership(running, "\u00e9\U0001f680}", "vip")
    yield running
    await running.stop(grace=0.5)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def call(server: RunningServer) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{server.port}", options=[("grpc.max_send_message_length", 8 * 1024 * 1024)]
    ) as channel:
        yield channel.unary_unary(DECIDE)  # no serializers: bytes in, bytes out


# -- strategies ------------------------------------------------------------------
any_text = st.text(st.characters(codec="utf-8"), max_size=24)  # surrogates cannot be encoded: see raw_bytes
odd_text = st.one_of(
    any_text,
    st.sampled_from(["", " ", "\x00", "\t", "\u202e", "\ufeff", "\u00e9", "}", "{", "\U0001f680", "\ufffd", "\u0301"]),
    st.integers(min_value=200, max_value=5000).map(lambda n: "x" * n),
)
placement_ids = st.one_of(st.sampled_from(["banner", "side", "card"]), odd_text)
channels = st.one_of(st.sampled_from(["web", "mobile"]), odd_text)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 100.0, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf]),
)
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, odd_text),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=12,
)
context_keys = st.one_of(st.sampled_from(["cart", "device", "tags", "member"]), odd_text)


def to_value(obj: object) -> struct_pb2.Value:
    value = struct_pb2.Value()
    if obj is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        value.bool_value = obj
    elif isinstance(obj, float):
        value.number_value = obj
    elif isinstance(obj, str):
        value.string_value = obj
    elif isinstance(obj, list):
        value.list_value.values.extend(to_value(item) for item in obj)
    else:
        assert isinstance(obj, dict)
        for key, item in obj.items():
            value.struct_value.fields[key].CopyFrom(to_value(item))
    return value


@st.composite
def decide_requests(draw: st.DrawFn) -> bytes:
    message = decision_pb2.DecideRequest(
        profile_id=draw(st.one_of(st.sampled_from(["known-vip", "\u00e9\U0001f680}", "nobody"]), odd_text)),
        channel=draw(channels),
        request_id=draw(st.one_of(st.just(""), odd_text)),
        explain=draw(st.booleans()),
    )
    for _ in range(draw(st.integers(min_value=0, max_value=LIMITS.max_placements + 2))):
        max_items = draw(st.one_of(st.integers(min_value=0, max_value=200), st.just(2**32 - 1)))
        message.placements.add(placement_id=draw(placement_ids), max_items=max_items)
    for key, obj in draw(st.dictionaries(context_keys, json_like, max_size=6)).items():
        message.context[key].CopyFrom(to_value(obj))
    if draw(st.integers(min_value=0, max_value=30)) == 0:  # now and then, too many attributes
        for index in range(LIMITS.max_context_keys + 1):
            message.context[f"k{index}"].number_value = index
    return message.SerializeToString()


printable = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")),
    min_size=1,
    max_size=24,
)
declared_context = st.fixed_dictionaries(
    {},
    optional={
        "cart": st.floats(allow_nan=False, allow_infinity=False),
        "device": st.one_of(st.sampled_from(["tv", "\u00e9", "ios"]), any_text),
        "tags": st.lists(st.one_of(st.just("sale"), any_text, st.booleans()), max_size=5),
        "member": st.booleans(),
        "undeclared": st.one_of(st.booleans(), any_text, st.floats(allow_nan=False, allow_infinity=False)),
    },
)


@st.composite
def valid_requests(draw: st.DrawFn) -> bytes:
    """Requests within every rule: these must be answered OK."""
    channel = draw(st.sampled_from(["web", "mobile"]))
    served = ["banner", "side"] if channel == "web" else ["banner", "card"]
    chosen = draw(st.lists(st.sampled_from(served), min_size=1, max_size=2, unique=True))
    message = decision_pb2.DecideRequest(
        profile_id=draw(st.one_of(st.sampled_from(["known-vip", "\u00e9\U0001f680}"]), printable)),
        channel=channel,
        request_id=draw(st.one_of(st.just(""), printable)),
        explain=draw(st.booleans()),
    )
    for placement in chosen:
        message.placements.add(placement_id=placement, max_items=draw(st.integers(0, LIMITS.max_items_per_placement)))
    for key, obj in draw(declared_context).items():
        message.context[key].CopyFrom(to_value(_number_as_float(obj)))
    return message.SerializeToString()


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field, encoded by hand (no protobuf check in the way)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _deep_value(depth: int, as_struct: bool) -> bytes:
    value = _field(3, b"leaf")  # Value.string_value
    for _ in range(depth):
        # Value.struct_value -> Struct.fields map entry {key, value}; Value.list_value -> ListValue.values
        value = _field(5, _field(1, _field(1, b"k") + _field(2, value))) if as_struct else _field(6, _field(1, value))
    return value


@st.composite
def raw_bytes(draw: st.DrawFn) -> bytes:
    """Bytes that are not a valid DecideRequest, or are valid only by protobuf's lenient rules."""
    placement = _field(3, _field(1, b"banner"))
    kind = draw(st.sampled_from(["random", "mutated", "bad_utf8", "deep", "large"]))
    if kind == "random":
        return draw(st.binary(max_size=64))
    if kind == "mutated":
        data = bytearray(draw(decide_requests()))
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data[: draw(st.integers(min_value=0, max_value=len(data)))] if draw(st.booleans()) else data)
    if kind == "bad_utf8":  # e.g. an encoded lone surrogate, or an overlong form, in a string field
        junk = draw(st.sampled_from([b"\xed\xa0\x80", b"\xc0\xaf", b"\xff", b"\x80abc"]) | st.binary(max_size=8))
        field_number = draw(st.sampled_from([1, 2, 5]))
        return _field(field_number, junk) + _field(2, b"web") + placement
    if kind == "deep":
        depth = draw(st.integers(min_value=1, max_value=400))
        entry = _field(1, b"deep") + _field(2, _deep_value(depth, draw(st.booleans())))
        return _field(1, b"p") + _field(2, b"web") + placement + _field(4, entry)
    size = draw(st.sampled_from([LIMITS.max_message_bytes // 2, LIMITS.max_message_bytes - 64]))  # under the limit
    return _field(1, b"p") + _field(2, b"web") + placement + _field(5, b"r" * size)


Tagged = tuple[bytes, bool]  # (payload, must be answered OK)
requests: st.SearchStrategy[Tagged] = st.one_of(
    valid_requests().map(lambda payload: (payload, True)),
    decide_requests().map(lambda payload: (payload, False)),
    raw_bytes().map(lambda payload: (payload, False)),
)

# Mutations of generated requests, drawn with a seeded random: hypothesis draws are thorough but slow
# (milliseconds per request); a few of them per batch, each mutated many times, make 10,000 calls cheap.
ODD_STRINGS = ["", " ", "\x00", "\x7f", "\u202e", "\ufeff", "\U0001f680", "}", "{p}", "x" * 300, "y" * 5000]
ODD_VALUES: list[object] = [None, math.nan, -math.inf, 1e308, -0.0, "", "z" * 5000, [], [[1.0]], [None], {"a": 1.0}]
ODD_VALUES += [[math.nan, "a"], [True, 1.0, "s"], {"deep": {"er": [{"x": None}]}}, list(range(200))]


def mutate_bytes(rnd: random.Random, payload: bytes) -> bytes:
    """A few bytes changed or inserted: often still parseable, with odd values."""
    data = bytearray(payload)
    for _ in range(rnd.randint(1, 4)):
        if data and rnd.random() < 0.7:
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        else:
            data.insert(rnd.randint(0, len(data)), rnd.randrange(256))
    return bytes(data)


def mutate(rnd: random.Random, payload: bytes) -> bytes:
    try:
        message = decision_pb2.DecideRequest.FromString(payload)
    except Exception:  # not parseable: flip bytes
        message = None
    if message is None or rnd.random() < 0.25:
        return mutate_bytes(rnd, payload)
    for _ in range(rnd.randint(1, 3)):
        edit = rnd.randrange(6)
        if edit == 0:
            setattr(message, rnd.choice(["profile_id", "channel", "request_id"]), rnd.choice(ODD_STRINGS))
        elif edit == 1:
            message.placements.add(placement_id=rnd.choice(["banner", "side", "card", *ODD_STRINGS]))
            message.placements[-1].max_items = rnd.choice([0, 1, 2, 101, 2**32 - 1])
        elif edit == 2 and message.placements:
            del message.placements[rnd.randrange(len(message.placements))]
        elif edit == 3:
            key = rnd.choice(["cart", "device", "tags", "member", *ODD_STRINGS])
            message.context[key].CopyFrom(to_value(_number_as_float(rnd.choice(ODD_VALUES))))
        elif edit == 4 and message.context:
            del message.context[rnd.choice(list(message.context))]
        else:
            message.channel = rnd.choice(["web", "mobile"])
    return message.SerializeToString()


def _number_as_float(obj: object) -> object:
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | float):
        return obj
    if isinstance(obj, int):
        return float(obj)
    if isinstance(obj, list):
        return [_number_as_float(item) for item in obj]
    assert isinstance(obj, dict)
    return {key: _number_as_float(item) for key, item in obj.items()}


@st.composite
def batches(draw: st.DrawFn) -> list[Tagged]:
    bases = draw(st.lists(requests, min_size=BASES, max_size=BASES))
    rnd = draw(st.randoms(use_true_random=False))
    small = [payload for payload, _ in bases if len(payload) < 64 * 1024] or [KNOWN.SerializeToString()]
    return bases + [(mutate(rnd, rnd.choice(small)), False) for _ in range(BATCH - BASES)]


# -- the check -----------------------------------------------------------------------
async def send(call: Any, payload: bytes) -> tuple[grpc.StatusCode, str, bytes | None]:
    try:
        answer = await call(payload, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or "", None
    return grpc.StatusCode.OK, "", answer


def check(payload: bytes, must_be_ok: bool, code: grpc.StatusCode, details: str, answer: bytes | None) -> None:
    allowed = (grpc.StatusCode.OK,) if must_be_ok else (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
    assert code in allowed, (code, details, payload[:200])
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        assert FIELD_FIRST.match(details), details
        return
    assert answer is not None
    request = decision_pb2.DecideRequest.FromString(payload)
    response = decision_pb2.DecideResponse.FromString(answer)
    assert [p.placement_id for p in response.propositions] == [p.placement_id for p in request.placements]
    assert response.ruleset_version == "fuzz-1"
    assert all(p.items for p in response.propositions)  # every placement has a fallback


@settings(
    max_examples=BATCHES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=batches())
async def test_decide_answers_every_request_properly(call: Any, batch: list[Tagged]) -> None:
    batch = [*batch, (KNOWN.SerializeToString(), True)]
    results = await asyncio.gather(*(send(call, payload) for payload, _ in batch))
    for (payload, must_be_ok), result in zip(batch, results, strict=True):
        check(payload, must_be_ok, *result)
    known = decision_pb2.DecideResponse.FromString(results[-1][2] or b"")
    assert known.propositions[0].items[0].offer_id == "vip" and not known.degraded


async def test_deep_and_invalid_utf8_requests_name_the_reason(call: Any) -> None:
    placement = _field(3, _field(1, b"banner"))
    deep = (
        _field(1, b"p")
        + _field(2, b"web")
        + placement
        + _field(4, _field(1, b"d") + _field(2, _deep_value(300, False)))
    )
    code, details, _ = await send(call, deep)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("request: not a valid message") and "depth" in details.lower()
    surrogate = _field(1, b"\xed\xa0\x80") + _field(2, b"web") + placement
    code, details, _ = await send(call, surrogate)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "UTF-8" in details
    nested = (
        _field(1, b"p") + _field(2, b"web") + placement + _field(4, _field(1, b"d") + _field(2, _deep_value(3, True)))
    )
    code, details, _ = await send(call, nested)
    assert (code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "context.d: nested objects are not allowed; use a string, number, boolean or list",
    )


async def test_messages_over_the_size_limit_are_refused_by_grpc(call: Any) -> None:
    placement = _field(3, _field(1, b"banner"))
    for size in (LIMITS.max_message_bytes + 1, 3 * 1024 * 1024):
        code, _, _ = await send(call, _field(1, b"p") + _field(2, b"web") + placement + _field(5, b"r" * size))
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    code, _, answer = await send(call, KNOWN.SerializeToString())
    assert code is grpc.StatusCode.OK and answer


# -- RecordEvents ------------------------------------------------------------------------
RECORD = "/decision.v1.DecisionService/RecordEvents"
EVENT_BATCHES = int(os.environ.get("FUZZ_EVENT_BATCHES", "100"))
OUTCOMES = {decision_pb2.EVENT_OUTCOME_RECORDED, decision_pb2.EVENT_OUTCOME_DUPLICATE}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def record(server: RunningServer, call: Any) -> AsyncIterator[tuple[Any, list[str]]]:
    """The RecordEvents call, and real tracking tokens (from Decide answers) to mutate."""
    answer = decision_pb2.DecideResponse.FromString(await call(KNOWN.SerializeToString(), timeout=5))
    tokens = [item.tracking_token for p in answer.propositions for item in p.items]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel.unary_unary(RECORD), tokens


@st.composite
def record_requests(draw: st.DrawFn, tokens: list[str]) -> bytes:
    message = decision_pb2.RecordEventsRequest()
    count = draw(st.one_of(st.integers(min_value=0, max_value=6), st.just(501)))
    token = st.one_of(
        st.sampled_from(tokens),
        odd_text,
        st.tuples(st.sampled_from(tokens), st.integers(0, 200), st.sampled_from("A_-=x/+")).map(
            lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]  # one character changed
        ),
    )
    seconds = st.one_of(
        st.integers(min_value=-(2**40), max_value=2**40),
        st.sampled_from([-62135596800, 253402300799, 0]),
        st.floats(min_value=-3 * 86400, max_value=600).map(lambda delta: int(1.8e9 + delta)),  # near "now"
    )
    for _ in range(min(count, 6)):
        event = message.events.add(
            event_id=draw(st.one_of(printable, odd_text)),
            profile_id=draw(st.one_of(st.just("known-vip"), odd_text)),
            custom_type=draw(st.one_of(st.just(""), st.just("add_to_cart"), odd_text)),
            tracking_token=draw(token),
        )
        event.type = draw(st.integers(min_value=-3, max_value=9))  # proto3 enums are open: unknown values too
        if draw(st.booleans()):
            event.timestamp.seconds = draw(seconds)
            event.timestamp.nanos = draw(st.sampled_from([0, 999_999_999, 1_000_000_005, -1]))
    while 0 < len(message.events) < count:  # over the limit: copies (drawing 501 events is slow)
        message.events.append(message.events[0])
    return message.SerializeToString()


def check_record(payload: bytes, code: grpc.StatusCode, details: str, answer: bytes | None) -> None:
    if len(payload) > LIMITS.max_message_bytes:  # 501 copies of an event with long strings
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
        return
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (code, details, payload[:200])
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        assert re.match(r"^(events|request)[\[.:]", details), details
        return
    request = decision_pb2.RecordEventsRequest.FromString(payload)
    response = decision_pb2.RecordEventsResponse.FromString(answer or b"")
    assert [r.event_id for r in response.results] == [e.event_id for e in request.events]
    for index, result in enumerate(response.results):
        if result.outcome == decision_pb2.EVENT_OUTCOME_REJECTED:
            assert result.reason.startswith(f"events[{index}]."), result.reason
        else:
            assert result.outcome in OUTCOMES and not result.reason, result


@settings(
    max_examples=EVENT_BATCHES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_record_events_answers_every_request_properly(
    record: tuple[Any, list[str]], call: Any, data: st.DataObject
) -> None:
    record_call, tokens = record
    bases = data.draw(st.lists(record_requests(tokens) | raw_bytes(), min_size=BASES, max_size=BASES))
    rnd = data.draw(st.randoms(use_true_random=False))
    batch = bases + [mutate_bytes(rnd, rnd.choice(bases)) for _ in range(BATCH // 2 - BASES)]
    results = await asyncio.gather(*(send(record_call, payload) for payload in batch))
    for payload, result in zip(batch, results, strict=True):
        check_record(payload, *result)
    code, _, answer = await send(call, KNOWN.SerializeToString())  # Decide still answers normally
    assert code is grpc.StatusCode.OK and not decision_pb2.DecideResponse.FromString(answer or b"").degraded
