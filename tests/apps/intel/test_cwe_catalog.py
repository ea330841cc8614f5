"""The CWE catalog: KB validation (deprecated -> replacement, unknown/view -> None), hierarchy."""

from __future__ import annotations

import pytest

from secfoundry.apps.intel.cwe_catalog import CweCatalog, canonical_cwe
from secfoundry.core.errors import InputError

from tests.apps.intel._cve_fixture import cve_env  # noqa: F401


def test_validate_and_hierarchy(cve_env):
    cat: CweCatalog = cve_env["catalog"]
    assert cat.validate("cwe-79") == "CWE-79"
    assert cat.validate("CWE 089") == "CWE-89"
    assert cat.validate("CWE-534") == "CWE-532"  # deprecated -> its replacement
    assert cat.validate("CWE-99999") is None  # unknown
    assert cat.validate("CWE-1000") is None  # a view is never a mapping
    assert cat.validate("NVD-CWE-Other") is None
    assert cat.entries["CWE-79"].parents == ["CWE-74"]
    assert cat.relation("CWE-79", "CWE-79") == "exact"
    assert cat.relation("CWE-74", "CWE-79") == "parent"
    assert cat.relation("CWE-121", "CWE-787") == "child"
    assert cat.relation("CWE-119", "CWE-121") == "ancestor"
    assert cat.relation("CWE-121", "CWE-119") == "descendant"
    assert cat.relation("CWE-89", "CWE-79") == "sibling"
    assert cat.relation("CWE-22", "CWE-79") == "miss"
    assert "XSS" in cat.entries["CWE-79"].alternate_terms
    assert cat.entries["CWE-74"].usage == "Discouraged"
    assert cat.nvd_level("CWE-121") == "CWE-787" and cat.nvd_level("CWE-787") is None


def test_canonical():
    assert canonical_cwe("CWE_79") == "CWE-79"
    assert canonical_cwe("NVD-CWE-noinfo") is None


def test_missing_kb(tmp_path):
    with pytest.raises(InputError, match="kb sync"):
        CweCatalog.from_kb(tmp_path / "nokb")
