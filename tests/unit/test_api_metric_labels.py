"""``/metrics`` stays bounded whatever clients send: every label of the API's request
metrics comes from a fixed set (issue 10, finding 14)."""

from __future__ import annotations

import random
import re
import string

import httpx

from flowmonkey import Engine
from flowmonkey.api import create_app
from flowmonkey.api.metrics import METHODS, OTHER, UNMATCHED
from flowmonkey.metrics import Metrics
from tests.unit.api_support import APPROVE, AUTH, GREET, approval, greet

_LABELS = re.compile(r'^flowmonkey_api_request\w*\{method="([^"]*)",route="([^"]*)"'
                     r'(?:,status="([^"]*)")?', re.MULTILINE)


def _random_method(rng: random.Random) -> str:
    # an HTTP token of letters (httpx upper-cases it), now and then a standard one
    if rng.random() < 0.2:
        return rng.choice(sorted(METHODS)).lower()
    return "".join(rng.choices(string.ascii_letters, k=rng.randint(3, 24)))


def _random_path(rng: random.Random) -> str:
    parts = ["".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randint(1, 12)))
             for _ in range(rng.randint(1, 4))]
    prefix = rng.choice(["", "v1/", "v1/executions/", "v1/flows/", "v1/tables/x/"])
    return "/" + prefix + "/".join(parts)


async def test_random_methods_and_paths_do_not_grow_the_metrics() -> None:
    metrics = Metrics()
    engine = Engine(flows=[GREET, APPROVE], handlers=[greet, approval], metrics=metrics)
    rng = random.Random(14)
    async with engine:
        app = create_app(engine, AUTH)
        # the app's route templates: its documented paths and FastAPI's own pages
        routes = {*app.openapi()["paths"], "/openapi.json", "/docs", "/docs/assets",
                  "/docs/oauth2-redirect", "/redoc"}
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            # each kind of route the random paths below can reach, once per method
            # label: the series a well-behaved client could make
            for method in [*sorted(METHODS), "RANDOM"]:
                for path in ("/health", "/metrics", "/nowhere", "/v1/flows", "/v1/flows/x",
                             "/v1/executions", "/v1/executions/x"):
                    await client.request(method, path)
            baseline = len((await client.get("/metrics")).content)

            for _ in range(300):
                await client.request(_random_method(rng), _random_path(rng))
            for _ in range(100):  # standard methods on random paths
                await client.request(rng.choice(["GET", "POST", "DELETE"]), _random_path(rng))
            scraped = (await client.get("/metrics")).text

    methods, seen_routes, statuses = set(), set(), set()
    for method, route, status in _LABELS.findall(scraped):
        methods.add(method)
        seen_routes.add(route)
        if status:
            statuses.add(status)
    assert methods <= METHODS | {OTHER}, methods - METHODS
    assert OTHER in methods
    assert seen_routes <= routes | {UNMATCHED}, seen_routes - routes
    assert all(re.fullmatch(r"[1-5]\d\d|other", s) for s in statuses), statuses
    # the 400 random requests added no series beyond those of the bounded ones: the
    # counts change, the number of lines does not (a few bytes for bigger numbers)
    assert len(scraped.encode()) < baseline + 2048, (baseline, len(scraped.encode()))
