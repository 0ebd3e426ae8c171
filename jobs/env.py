"""What a job needs, and nothing of the web app: jobs run the same under the scheduler, by hand
(日程立即执行) and in the simulator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.clock import Clock
from bot.db import Database
from bot.deployment import Loaded
from bot.render import Renderer


@dataclass
class JobEnv:
    db: Database
    deployment: Loaded
    clock: Clock
    renderer: Renderer
    nudge: Callable[[], None] = lambda: None  # wakes the delivery worker after a commit
