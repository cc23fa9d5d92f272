"""The simulator's control endpoint (aiohttp) and its synchronous client.

``POST /scenario`` with ``{"name": ..., "enterprise": ..., "tag": ..., "rate": ...}`` starts a
scenario and answers 200 with the state, or 400 with ``{"error": ...}``; ``GET /state`` answers
the state. ``request_scenario`` is the client the command line uses.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulators.process import PlantModel

logger = logging.getLogger(__name__)

MODEL_KEY = web.AppKey("model", PlantModel)


class SimulatorError(ValueError):
    """The simulator refused the request (an unknown scenario or tag, a bad rate)."""


class SimulatorUnreachable(ConnectionError):
    """Nothing answers at the simulator's control address."""


class ScenarioRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="scenario name, e.g. overfill")
    enterprise: str | None = Field(None, max_length=64, description="enterprise code of the tag")
    tag: str | None = Field(None, max_length=64, description="tag code; default: the scenario's default tag")
    rate: float | None = Field(None, gt=0, le=100, description="climb rate of an excursion, % of span per s")
    spread: int = Field(0, ge=0, le=10, description="gas-leak: more detectors of the same area it reaches")
    hold_s: float | None = Field(
        None, ge=0, le=3600, description="an excursion's time at its peak; default: the tag's on-delay + 5 s"
    )


def _error(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _post_scenario(request: web.Request) -> web.Response:
    try:
        spec = ScenarioRequest.model_validate(await request.json())
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors())
        return _error(problems)
    except ValueError:  # not JSON, or not UTF-8
        return _error("the body must be a JSON object")
    model = request.app[MODEL_KEY]
    try:
        state = model.start_scenario(
            spec.name,
            enterprise=spec.enterprise,
            tag=spec.tag,
            rate=spec.rate,
            spread=spec.spread,
            hold_s=spec.hold_s,
        )
    except ValueError as err:
        return _error(str(err))
    return web.json_response(state)


async def _get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[MODEL_KEY].state())


def control_app(model: PlantModel) -> web.Application:
    app = web.Application()
    app[MODEL_KEY] = model
    app.router.add_post("/scenario", _post_scenario)
    app.router.add_get("/state", _get_state)
    return app


class ControlServer:
    """The control endpoint listening at (host, port)."""

    def __init__(self, model: PlantModel, control: tuple[str, int]) -> None:
        self.control = control
        self._runner = web.AppRunner(control_app(model), access_log=None)
        self._set_up = False

    async def start(self) -> None:
        await self._runner.setup()
        self._set_up = True
        site = web.TCPSite(self._runner, self.control[0], self.control[1])
        await site.start()
        logger.info("simulator control listening on %s:%s", *self.control)

    async def stop(self) -> None:
        if self._set_up:
            self._set_up = False
            await self._runner.cleanup()


def _call(url: str, data: bytes | None, timeout: float) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")  # noqa: S310 - http only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http only
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as err:
        try:
            message = str(json.loads(err.read()).get("error", err.reason))
        except (ValueError, AttributeError):
            message = f"HTTP {err.code} {err.reason}"
        raise SimulatorError(message) from err
    except (urllib.error.URLError, OSError) as err:
        raise SimulatorUnreachable(f"no simulator answers at {url}: {err}") from err


def request_scenario(
    control: tuple[str, int],
    name: str,
    *,
    enterprise: str | None = None,
    tag: str | None = None,
    rate: float | None = None,
    spread: int = 0,
    hold_s: float | None = None,
    timeout: float = 3.0,
) -> dict[str, Any]:
    """Start a scenario on a running simulator and return its state.

    Raises SimulatorUnreachable when nothing answers, SimulatorError when the simulator refuses.
    """
    body = {"name": name, "enterprise": enterprise, "tag": tag, "rate": rate, "spread": spread or None,
            "hold_s": hold_s}  # fmt: skip
    data = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
    return _call(f"http://{control[0]}:{control[1]}/scenario", data, timeout)


def simulator_state(control: tuple[str, int], *, timeout: float = 3.0) -> dict[str, Any]:
    """The state of a running simulator (SimulatorUnreachable when nothing answers)."""
    return _call(f"http://{control[0]}:{control[1]}/state", None, timeout)
