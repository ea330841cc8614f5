"""Metrics: accuracy denominators, stderr/bootstrap, CVSS, set metrics, actor graphs."""

from __future__ import annotations

import math

import pytest

from secfoundry.eval import metrics as m
from secfoundry.eval import statistics as st


def test_stderr_and_bootstrap():
    vals = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    p = 5 / 8
    assert st.mean(vals) == p
    assert st.stderr(vals) == pytest.approx(math.sqrt(p * (1 - p) * 8 / 7 / 8))
    lo, hi = st.bootstrap_ci(vals, seed=3)
    assert lo <= p <= hi and (lo, hi) == st.bootstrap_ci(vals, seed=3)  # seeded: reproducible
    assert st.bootstrap_ci([]) == (0.0, 0.0) and st.stderr([1.0]) == 0.0
    assert st.mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_accuracy_denominators():
    correct = [True, True, False, False]
    valid = [True, True, True, False]
    a_all = m.accuracy_scores(correct, valid, over="all")
    a_valid = m.accuracy_scores(correct, valid, over="valid")
    assert a_all["score"] == 50.0 and a_all["n"] == 4 and a_all["n_valid"] == 3 and a_all["parse_failures"] == 1
    assert a_valid["score"] == pytest.approx(66.67)
    for k in ("score", "n", "n_valid", "parse_failures", "stderr", "ci95"):
        assert k in a_all
    # an unparseable answer is never counted correct, even if a caller marks it so
    assert m.accuracy_scores([True], [False])["score"] == 0.0
    lenient = m.accuracy_scores(correct, valid, lenient=[True, True, True, False])
    assert lenient["lenient_accuracy"] == 75.0


def test_cvss_base_score():
    assert m.cvss_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") == 9.8
    assert m.cvss_base_score("AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") == 9.8  # bare vector
    assert m.cvss_base_score("av:l/ac:l/pr:l/ui:n/s:u/c:n/i:n/a:h") == 5.5  # case-insensitive
    assert m.cvss_base_score("AV:N/AC:L") is None
    assert m.cvss_base_score("CWE-79") is None
    assert m.cvss_base_score("") is None and m.cvss_base_score(None) is None


def test_set_scores():
    preds = [{"T1"}, {"T1", "T2"}, set()]
    golds = [{"T1"}, {"T2", "T3"}, {"T4"}]
    s = m.set_scores(preds, golds)
    assert s.exact == pytest.approx(1 / 3)
    assert s.jaccard == pytest.approx((1 + 1 / 3 + 0) / 3)
    # micro: tp=2 (T1, T2), fp=1 (T1 in item 2), fn=2 (T3, T4)
    assert s.micro_precision == pytest.approx(2 / 3) and s.micro_recall == pytest.approx(2 / 4)
    assert s.micro_f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # macro over labels: T1 (tp1 fp1) 2/3, T2 1, T3 0, T4 0
    assert s.macro_f1 == pytest.approx((2 / 3 + 1 + 0 + 0) / 4)


def test_actor_graph_correct_plausible():
    g = m.ActorGraph({"apt29": ["cozy bear", "nobelium"], "turla": ["snake"]},
                     {"apt29": ["turla"]})
    assert g.relation("APT29 ", "Cozy Bear") == "C"
    assert g.relation("nobelium", "cozy bear") == "C"  # through the alias chain, both ways
    assert g.relation("Cozy Bear", "snake") == "P"  # alias -> related -> alias
    assert g.relation("APT-C-36", "apt-c-36") == "C"  # identical names always match
    assert g.relation("apt29", "lazarus") == "I"
    assert g.relation("apt29", None) == "I" and g.relation("apt29", "  ") == "I"


def test_bootstrap_stat_any_statistic():
    vals = [1.0] * 30 + [0.0] * 10
    se, lo, hi = st.bootstrap_stat(len(vals), lambda idx: st.mean([vals[i] for i in idx]), seed=1)
    assert lo < 0.75 < hi and 0.03 < se < 0.12
    assert st.bootstrap_stat(len(vals), lambda idx: st.mean([vals[i] for i in idx]), seed=1) == (se, lo, hi)
    assert st.bootstrap_stat(0, lambda idx: 0.0) == (0.0, 0.0, 0.0)
