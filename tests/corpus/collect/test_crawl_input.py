"""A `crawl` input inside a recipe: the crawler runs in a Ray worker, its WARC is kept with the
phase and read back into documents; replaying that WARC as a `warc` input gives the same pages."""

from __future__ import annotations

from secfoundry.corpus.engine.recipe import Recipe
from secfoundry.corpus.pipeline import load_documents, run_recipe

from .sites import PLAIN, SEC, Site, html, page


def test_crawl_input_and_replay(ray_local, tmp_path):
    site = Site({
        "/robots.txt": (200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /no/\n"),
        "/": html(page("Advisories", SEC, ["/a", "/b", "/no/x", "/plain"])),
        "/a": html(page("A", SEC, [])), "/b": html(page("B", SEC, [])),
        "/plain": html(page("Bakery", PLAIN, ["/never"])), "/never": html(page("N", SEC, [])),
    })
    out = tmp_path / "out"
    with site:
        rec = Recipe.from_dict({
            "inputs": [{"kind": "crawl", "seeds": [site.base + "/"],
                        "options": {"delay_s": 0.0, "max_depth": 2, "relevance": "keywords"}}],
            "engine": {"num_cpus": 2}})
        s = run_recipe(rec, out, progress=False)
    urls = sorted(d.url.replace(site.base, "") for d in load_documents(out))
    assert urls == ["/", "/a", "/b", "/plain"]
    assert s.phases[0].by_source == {"crawl": 4}
    warc = next((out / "00-collect" / "work").glob("*.warc.gz"))
    replay = run_recipe(Recipe.from_dict({"inputs": [{"kind": "warc", "paths": [str(warc)], "source": "crawl"}]}),
                        tmp_path / "replay", progress=False)
    assert replay.phases[0].docs_out == 4
    assert sorted(d.id for d in load_documents(tmp_path / "replay")) == sorted(d.id for d in load_documents(out))
