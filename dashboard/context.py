"""What the app shares with its handlers: configuration and services, under typed keys."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from alarms.policy import DEFAULT, Policy
from dashboard.auth import Authenticator
from dashboard.db import Pool

if TYPE_CHECKING:
    from dashboard.live import LiveHub


@dataclass(frozen=True, slots=True)
class Config:
    database_url: str
    timezone: str = "Asia/Shanghai"
    secure_cookies: bool = False
    policy: Policy = DEFAULT  # shelving roles and limits, closure rules


CONFIG = web.AppKey("config", Config)
POOL = web.AppKey("pool", Pool)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
AUTH = web.AppKey("auth", Authenticator)
HUB: web.AppKey[LiveHub] = web.AppKey("hub")
