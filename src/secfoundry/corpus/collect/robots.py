"""robots.txt per host (urllib.robotparser), fetched through the crawler's own client.

Following RFC 9309: 4xx means no restrictions, 5xx or an unreachable host means full
disallow (for this crawl), and rules are cached per host. ``Crawl-delay`` raises the politeness
delay for that host.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.robotparser import RobotFileParser


@dataclass
class RobotsRules:
    parser: RobotFileParser | None  # None: everything allowed (no robots.txt)
    disallow_all: bool = False
    crawl_delay: float | None = None
    status: int | None = None

    def allowed(self, url: str, agent: str) -> bool:
        if self.disallow_all:
            return False
        if self.parser is None:
            return True
        return self.parser.can_fetch(agent, url)


def parse_robots(status: int | None, body: str, agent: str) -> RobotsRules:
    if status is None or status >= 500:
        return RobotsRules(None, disallow_all=True, status=status)
    if status >= 400:
        return RobotsRules(None, status=status)
    rp = RobotFileParser()
    rp.parse(body.splitlines())
    delay = rp.crawl_delay(agent)
    return RobotsRules(rp, crawl_delay=float(delay) if delay is not None else None, status=status)
