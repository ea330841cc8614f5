"""High-value source connectors, one module each; ``kb`` and ``corpus`` both read them (never
each other). Depends on ``core`` only.

Layout:

- ``base.py``      the declarative ``Source`` (name, license, mirror ``folder``/``patterns``,
                   pinned ``remotes()``, ``version_of``; writes ``parse`` + ``render``),
                   ``GitTarballSource`` (GitHub tarball sources pinnable to a ref/sha256),
                   ``@register``/``registry()``, ``Snapshot``, ``document_of``, file helpers
- ``_archives.py`` shared parsing helpers (tarballs, YAML, the pinned ATT&CK catalog, stats)
- ``_advisories.py`` the OSV / GitHub / RustSec advisory formats behind ``osv``
- ``<name>.py``    one connector each: attack, capec, complianceascode, ctid, cve, cwe, d3fend,
                   epss, kev, nist80053, nvd, osv, owasp, sigma, atomic

A new source is one file here with a ``@register``-ed ``Source`` subclass; ``kb sync`` and the
corpus ``sources`` input pick it up. ``load_all`` imports the modules so they register.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
