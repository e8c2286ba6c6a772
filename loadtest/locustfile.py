"""Locust load test: realistic Decide and RecordEvents traffic over gRPC.

Profiles are drawn from the loaded population with a skew (1% of the profiles
get half of the visits), each visit asks for one to three placements of its
channel with a realistic context, and the page reports impressions, clicks
and dismissals of what it showed, as a web or app backend would.

    python -m loadtest.datagen --profiles 1000000 --redis-url redis://127.0.0.1:6379   # population + rules
    decision serve --rules bench-data/rules.yaml --redis-url redis://127.0.0.1:6379 --workers 2
    locust -f loadtest/locustfile.py --headless -u 64 -r 16 -t 1m --host 127.0.0.1:50051 \
        --profiles 1000000 --csv bench-results/locust

Options (besides Locust's): --profiles N (population size, ids p0..pN-1), --deadline-ms.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()  # before any channel: Locust runs on gevent

from google.protobuf.timestamp_pb2 import Timestamp  # noqa: E402
from locust import User, between, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402

from decision.v1 import decision_pb2, decision_pb2_grpc  # noqa: E402
from loadtest.rulegen import CATEGORIES, DEVICES, PLACEMENTS  # noqa: E402


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any) -> None:
    parser.add_argument("--profiles", type=int, default=100_000, help="population size (ids p0..pN-1)")
    parser.add_argument("--deadline-ms", type=float, default=200.0, help="deadline of each call")


class Timed(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Reports every call to Locust: name, time, size, failure (status or degraded answer)."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        started = time.perf_counter()
        exception: Exception | None = None
        length = 0
        outcome = continuation(details, request)
        try:
            response = outcome.result()
            length = response.ByteSize()
            if getattr(response, "degraded", False):
                exception = RuntimeError("degraded answer (Redis slow or unavailable)")
        except grpc.RpcError as error:
            exception = error
        self.environment.events.request.fire(  # type: ignore[no-untyped-call]
            request_type="grpc",
            name=details.method.rsplit("/", 1)[-1],
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context=None,
        )
        return outcome


def pick_profile(rng: random.Random, population: int) -> str:
    """Half the visits come from the hottest 1% of profiles, the rest from anyone."""
    hot = max(1, population // 100)
    return f"p{rng.randrange(hot) if rng.random() < 0.5 else rng.randrange(population)}"


def visit(rng: random.Random, population: int) -> decision_pb2.DecideRequest:
    channel = rng.choice(("web", "web", "mobile"))
    served = [p for p, channels, _ in PLACEMENTS if channel in channels]
    request = decision_pb2.DecideRequest(profile_id=pick_profile(rng, population), channel=channel)
    for placement in rng.sample(served, rng.randint(1, min(3, len(served)))):
        request.placements.add(placement_id=placement)
    context = request.context
    context["device"].string_value = rng.choice(DEVICES) if channel == "mobile" else "desktop"
    context["page_path"].string_value = "/" + rng.choice(CATEGORIES)
    context["logged_in"].bool_value = rng.random() < 0.6
    context["visits_30d"].number_value = rng.randrange(15)
    if rng.random() < 0.4:
        context["cart_value"].number_value = round(rng.lognormvariate(4, 0.8), 2)
        for category in rng.sample(CATEGORIES, rng.randint(1, 3)):
            context["cart_categories"].list_value.values.add().string_value = category
    return request


def feedback(
    rng: random.Random, profile_id: str, response: decision_pb2.DecideResponse
) -> decision_pb2.RecordEventsRequest:
    """What the page reports: every shown item is an impression; some get a click or a dismissal."""
    batch = decision_pb2.RecordEventsRequest()
    now = Timestamp()
    now.GetCurrentTime()
    for proposition in response.propositions:
        for item in proposition.items:
            kinds = [decision_pb2.EVENT_TYPE_IMPRESSION]
            roll = rng.random()
            if roll < 0.05:
                kinds.append(decision_pb2.EVENT_TYPE_CLICK)
            elif roll < 0.08:
                kinds.append(decision_pb2.EVENT_TYPE_DISMISS)
            for kind in kinds:
                event = batch.events.add(
                    event_id=uuid.uuid4().hex, profile_id=profile_id, type=kind, tracking_token=item.tracking_token
                )
                event.timestamp.CopyFrom(now)
    return batch


class DecisionUser(User):
    """A backend serving page views: Decide, then (most of the time) the page's feedback events."""

    wait_time = between(0.0, 0.05)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        options = environment.parsed_options
        self.population = options.profiles if options else 100_000
        self.deadline = (options.deadline_ms if options else 200.0) / 1000
        self.rng = random.Random()
        channel = grpc.insecure_channel(self.host or "127.0.0.1:50051")
        self.channel = grpc.intercept_channel(channel, Timed(environment))
        self.stub = decision_pb2_grpc.DecisionServiceStub(self.channel)

    @task
    def page_view(self) -> None:
        request = visit(self.rng, self.population)
        try:
            response = self.stub.Decide(request, timeout=self.deadline)
        except grpc.RpcError:
            return  # already reported by the interceptor
        if self.rng.random() < 0.7:
            batch = feedback(self.rng, request.profile_id, response)
            if batch.events:
                with contextlib.suppress(grpc.RpcError):  # reported by the interceptor
                    self.stub.RecordEvents(batch, timeout=self.deadline)

    def on_stop(self) -> None:
        self.channel.close()
