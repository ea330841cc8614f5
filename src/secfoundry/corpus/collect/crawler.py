"""The wide-net crawler (Foundation-Sec's collection design): seeds, relevance-gated link
following, politeness, and a WARC so every crawl can be replayed by the WARC reader.

Order: breadth-first within a domain (each host has a FIFO frontier), depth-first across
domains (hosts form a stack: a newly discovered host is crawled next, so the crawl follows a
security thread into new sites before returning to the ones it came from).
Links are followed only from pages that pass the relevance predicate; irrelevant pages are
still archived (the process stage decides about their text) but lead nowhere.

Safety: robots.txt (RFC 9309), per-host delay (max of ours and ``Crawl-delay``) and per-host
concurrency, a global concurrency cap, max pages / depth / pages per host, URL normalisation
and a seen-set, manual redirects (each hop checked against robots and the seen-set, at most
``max_redirects``), crawler-trap heuristics, body-size cap, retries for 5xx/timeouts only.

Built on httpx's async client; the scheduler is hand-written because the ordering above and
per-host politeness are the point and no maintained Python crawler exposes them as a library.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from secfoundry.corpus.collect.content import mime_of, to_text
from secfoundry.corpus.collect.links import RelevanceFn, html_text_and_links, make_relevance
from secfoundry.corpus.collect.robots import RobotsRules, parse_robots
from secfoundry.corpus.collect.urls import host_of, looks_like_trap, normalize_url
from secfoundry.corpus.collect.warc import WarcSink

USER_AGENT = "secfoundry-crawler/0.1 (security corpus research; respects robots.txt)"
ROBOTS_AGENT = "secfoundry-crawler"



@dataclass
class CrawlConfig:
    seeds: list[str] = field(default_factory=list)
    max_pages: int = 1000  # fetched pages (any status), robots.txt excluded
    max_depth: int = 3  # link hops from a seed; redirects do not count
    max_pages_per_host: int | None = None
    delay_s: float = 1.0  # per-host politeness delay between request starts
    host_concurrency: int = 1  # simultaneous requests to one host
    concurrency: int = 8  # simultaneous requests overall
    timeout_s: float = 20.0
    max_bytes: int = 10 * 1024 * 1024  # larger bodies are truncated and not parsed
    max_redirects: int = 5
    retries: int = 1  # extra attempts for 5xx and network errors
    user_agent: str = USER_AGENT
    respect_robots: bool = True
    relevance: str = "keywords"  # "all" | "keywords" | "step:<registered step>" | "module:function"
    follow_external: bool = True  # wide net: follow links to other hosts
    allowed_hosts: list[str] = field(default_factory=list)  # when set, only these hosts (and subdomains)
    max_url_length: int = 2048
    max_path_repeats: int = 3
    log_path: str | None = None  # JSONL crawl log; default <warc>.log.jsonl


@dataclass
class CrawlStats:
    fetched: int = 0
    relevant: int = 0
    irrelevant: int = 0
    archived: int = 0  # WARC response records written
    robots_blocked: int = 0
    skipped_type: int = 0
    traps: int = 0
    errors: int = 0
    resumed: int = 0  # responses replayed from an interrupted crawl's WARCs
    by_status: dict[str, int] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)  # in the order they were first crawled
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Host:
    name: str
    queue: deque = field(default_factory=deque)  # (url, depth, redirects)
    next_time: float = 0.0
    active: int = 0
    pages: int = 0
    robots: RobotsRules | None = None
    robots_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# ------------------------------------------------------------------------------ crawler
class Crawler:
    def __init__(self, config: CrawlConfig, warc_path: Path, relevance: RelevanceFn | None = None,
                 transport: Any = None, resume: list[Path] | None = None):
        self.cfg = config
        self.warc_path = Path(warc_path)
        self.relevance = relevance or make_relevance(config.relevance)
        self.transport = transport
        self.resume = [Path(p) for p in resume or []]
        self.hosts: dict[str, _Host] = {}
        self.host_stack: list[str] = []  # depth-first across domains: newest host on top
        self.seen: set[str] = set()
        self.stats = CrawlStats()
        self.by_status: Counter[str] = Counter()
        self._log = None
        self._sink: WarcSink | None = None
        self._started = 0  # requests scheduled (robots-blocked URLs give theirs back)
        self._replaying = False

    # ---------------------------------------------------------------- frontier
    def _allowed_host(self, host: str) -> bool:
        if not self.cfg.allowed_hosts:
            return True
        h = host.split(":")[0]
        return any(h == a or h.endswith("." + a) for a in self.cfg.allowed_hosts)

    def enqueue(self, url: str, depth: int, redirects: int = 0, parent_host: str | None = None) -> bool:
        if url in self.seen:
            return False
        if looks_like_trap(url, self.cfg.max_path_repeats, self.cfg.max_url_length):
            self.stats.traps += 1
            self._record(url, depth, None, "trap")
            return False
        host = host_of(url)
        if not self._allowed_host(host):
            return False
        if parent_host is not None and host != parent_host and not self.cfg.follow_external:
            return False
        self.seen.add(url)
        self._host(host).queue.append((url, depth, redirects))
        return True

    def _next(self, now: float) -> tuple[_Host, tuple[str, int, int]] | None:
        """Newest host with queued work that may be fetched now (politeness, concurrency)."""
        for name in reversed(self.host_stack):
            h = self.hosts[name]
            if not h.queue or h.active >= self.cfg.host_concurrency or now < h.next_time:
                continue
            if self.cfg.max_pages_per_host is not None and h.pages >= self.cfg.max_pages_per_host:
                h.queue.clear()
                continue
            return h, h.queue.popleft()
        return None

    def _earliest_wait(self, now: float) -> float | None:
        waits = [h.next_time - now for h in self.hosts.values()
                 if h.queue and h.active < self.cfg.host_concurrency]
        return max(0.0, min(waits)) if waits else None

    # ---------------------------------------------------------------- run
    async def run(self) -> CrawlStats:
        import httpx

        t0 = time.time()
        if self.resume:
            self.replay(self.resume)
        for s in self.cfg.seeds:
            u = normalize_url(s)
            if u:
                self.enqueue(u, 0)
        log_path = Path(self.cfg.log_path) if self.cfg.log_path else self.warc_path.with_name(self.warc_path.name + ".log.jsonl")
        limits = httpx.Limits(max_connections=self.cfg.concurrency, max_keepalive_connections=self.cfg.concurrency)
        kwargs: dict[str, Any] = {"timeout": self.cfg.timeout_s, "limits": limits, "follow_redirects": False,
                                  "headers": {"User-Agent": self.cfg.user_agent}}
        if self.transport is not None:
            kwargs["transport"] = self.transport
        info = {"software": "secfoundry crawler", "seeds": " ".join(self.cfg.seeds),
                "config": json.dumps({k: v for k, v in asdict(self.cfg).items() if k != "seeds"}, default=str)}
        with WarcSink(self.warc_path, info) as sink, open(log_path, "a" if self.resume else "w", encoding="utf-8") as log:
            self._sink, self._log = sink, log
            async with httpx.AsyncClient(**kwargs) as client:
                await self._loop(client)
        self.stats.by_status = dict(self.by_status)
        self.stats.hosts = list(self.hosts)
        self.stats.seconds = round(time.time() - t0, 3)
        return self.stats

    async def _loop(self, client: Any) -> None:
        running: set[asyncio.Task] = set()
        while True:
            now = time.monotonic()
            while self._started < self.cfg.max_pages and len(running) < self.cfg.concurrency:
                nxt = self._next(now)
                if nxt is None:
                    break
                h, item = nxt
                h.active += 1
                h.pages += 1
                h.next_time = now + self._delay(h)
                self._started += 1
                running.add(asyncio.create_task(self._visit(client, h, *item)))
            wait = self._earliest_wait(now)
            if not running:
                if wait is None or self._started >= self.cfg.max_pages:
                    return
                await asyncio.sleep(wait)
                continue
            done, running = await asyncio.wait(running, timeout=wait or None, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # _visit never raises; this surfaces bugs

    def _delay(self, h: _Host) -> float:
        d = self.cfg.delay_s
        if h.robots is not None and h.robots.crawl_delay:
            d = max(d, h.robots.crawl_delay)
        return d

    async def _robots(self, client: Any, h: _Host, scheme: str) -> RobotsRules:
        async with h.robots_lock:
            if h.robots is None:
                fetched_now = True
                status, body = None, ""
                try:
                    r = await client.get(f"{scheme}://{h.name}/robots.txt", follow_redirects=True)
                    status, body = r.status_code, r.text
                except Exception:
                    status = None
                h.robots = parse_robots(status, body, ROBOTS_AGENT)
                if fetched_now and status is not None:
                    # robots.txt was a request too: keep the politeness gap before the page
                    delay = self._delay(h)
                    h.next_time = max(h.next_time, time.monotonic() + delay)
                    await asyncio.sleep(delay)
            return h.robots

    async def _visit(self, client: Any, h: _Host, url: str, depth: int, redirects: int) -> None:
        try:
            await self._visit_inner(client, h, url, depth, redirects)
        except Exception as e:  # one bad page never stops the crawl
            self.stats.errors += 1
            self._record(url, depth, None, f"error:{type(e).__name__}: {e}")
        finally:
            h.active -= 1

    async def _visit_inner(self, client: Any, h: _Host, url: str, depth: int, redirects: int) -> None:
        if self.cfg.respect_robots:
            rules = await self._robots(client, h, url.split(":", 1)[0])
            if not rules.allowed(url, ROBOTS_AGENT):
                self.stats.robots_blocked += 1
                h.pages -= 1  # not fetched: does not count against the page limits
                self._started -= 1
                self._record(url, depth, None, "robots")
                return
        resp = None
        for attempt in range(self.cfg.retries + 1):
            if attempt:  # back off, and never closer than the politeness delay
                await asyncio.sleep(max(min(2.0, 0.2 * 2 ** attempt), self._delay(h)))
            t_start = time.monotonic()
            try:
                resp = await self._get(client, url)
            except Exception:
                if attempt == self.cfg.retries:
                    raise
                continue
            finally:
                h.next_time = max(h.next_time, t_start + self._delay(h))
            if resp[0] < 500:
                break
        status, reason, headers, body, truncated = resp
        self.stats.fetched += 1
        extra = {"WARC-Secfoundry-Depth": str(depth), "WARC-Secfoundry-Redirects": str(redirects)}
        if truncated:
            extra["WARC-Truncated"] = "length"
        self._sink.write_response(url, status, reason, headers, body, extra)
        self.stats.archived += 1
        self._after_fetch(h, url, depth, redirects, status, headers, body, truncated)

    def _after_fetch(self, h: _Host, url: str, depth: int, redirects: int, status: int,
                     headers: list[tuple[str, str]], body: bytes, truncated: bool) -> None:
        """What a fetched response means for the frontier: follow a redirect, or judge the page
        and, if relevant, queue its links. Also used to rebuild the frontier from an earlier WARC."""
        self.by_status[str(status)] += 1
        hdict = {k.lower(): v for k, v in headers}
        if 300 <= status < 400 and "location" in hdict:
            target = normalize_url(hdict["location"], url)
            if target is None or redirects >= self.cfg.max_redirects:
                self._record(url, depth, status, "redirect:stopped")
                return
            added = self.enqueue(target, depth, redirects + 1, parent_host=None)
            self._record(url, depth, status, f"redirect:{target}" + ("" if added else " (seen)"))
            return
        if status != 200:
            self._record(url, depth, status, "http-error")
            return
        if truncated:
            self._record(url, depth, status, "too-large")
            return
        ctype = hdict.get("content-type", "")
        try:
            conv = to_text(body, ctype)
        except Exception as e:
            self._record(url, depth, status, f"unparsable:{type(e).__name__}")
            return
        if conv is None:
            self.stats.skipped_type += 1
            self._record(url, depth, status, f"type:{mime_of(ctype)}")
            return
        text, mime, fmt = conv
        links: list[str] = []
        nofollow = False
        if fmt == "html":
            text, links, nofollow = html_text_and_links(text, url)
        relevant = bool(text.strip()) and self.relevance(text, url)
        followed = 0
        if relevant:
            self.stats.relevant += 1
            if depth < self.cfg.max_depth and not nofollow:
                for link in links:
                    followed += self.enqueue(link, depth + 1, 0, parent_host=h.name)
        else:
            self.stats.irrelevant += 1
        self._record(url, depth, status, "relevant" if relevant else "irrelevant", mime=mime,
                     links=len(links), followed=followed)

    def _host(self, host: str) -> _Host:
        h = self.hosts.get(host)
        if h is None:
            h = self.hosts[host] = _Host(host)
            self.host_stack.append(host)
        return h

    def replay(self, warcs: list[Path]) -> int:
        """Resume: rebuild seen-set, page counts and frontier from the WARCs of an interrupted
        crawl (a truncated last record, as a kill leaves it, is ignored and fetched again)."""
        from warcio.archiveiterator import ArchiveIterator

        records = []
        for path in warcs:
            try:
                with open(path, "rb") as f:
                    for rec in ArchiveIterator(f):
                        if rec.rec_type != "response" or rec.http_headers is None:
                            continue
                        h = rec.rec_headers
                        records.append((h.get_header("WARC-Target-URI"), int(h.get_header("WARC-Secfoundry-Depth") or 0),
                                        int(h.get_header("WARC-Secfoundry-Redirects") or 0),
                                        int(rec.http_headers.get_statuscode()), rec.http_headers.headers,
                                        rec.content_stream().read(), bool(h.get_header("WARC-Truncated"))))
            except Exception:  # the interrupted tail of the file
                continue
        self.seen.update(r[0] for r in records)
        self._replaying = True
        try:
            for url, depth, redirects, status, headers, body, truncated in records:
                h = self._host(host_of(url))
                h.pages += 1
                self._started += 1
                self._after_fetch(h, url, depth, redirects, status, headers, body, truncated)
        finally:
            self._replaying = False
        self.stats.resumed = len(records)
        return len(records)

    async def _get(self, client: Any, url: str) -> tuple[int, str, list[tuple[str, str]], bytes, bool]:
        async with client.stream("GET", url) as r:
            chunks: list[bytes] = []
            size = 0
            truncated = False
            async for chunk in r.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > self.cfg.max_bytes:
                    truncated = True
                    break
            return r.status_code, r.reason_phrase, list(r.headers.items()), b"".join(chunks), truncated

    def _record(self, url: str, depth: int, status: int | None, outcome: str, **kw: Any) -> None:
        if self._log is not None and not self._replaying:
            self._log.write(json.dumps({"url": url, "depth": depth, "status": status, "outcome": outcome,
                                        "time": round(time.time(), 3), **kw}) + "\n")


def crawl(config: CrawlConfig, warc_path: str | Path, relevance: RelevanceFn | None = None,
          transport: Any = None, resume: list[str | Path] | None = None) -> CrawlStats:
    """Run a crawl to completion, writing ``warc_path`` (gzip if it ends in .gz) and a JSONL log.

    ``resume``: WARCs of an interrupted crawl with the same config; pages in them are not
    fetched again and their links rebuild the frontier, so the new WARC holds only new pages.
    """
    return asyncio.run(Crawler(config, Path(warc_path), relevance, transport,
                               [Path(p) for p in resume or []]).run())
