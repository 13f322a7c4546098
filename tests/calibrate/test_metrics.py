"""The calibration metrics against values computed by hand."""

from __future__ import annotations

import math
import random

import pytest

from harness.calibrate import metrics
from harness.calibrate.metrics import Confusion

# 10 pairs: people pass 5 (harness passes 4 of them), people fail 5 (harness fails 3)
C = Confusion(pass_pass=4, pass_fail=1, fail_pass=2, fail_fail=3)


def test_confusion_from_pairs() -> None:
    pairs = [("pass", "pass")] * 4 + [("pass", "fail")] + [("fail", "pass")] * 2 \
        + [("fail", "fail")] * 3
    assert Confusion.of(pairs) == C
    assert C.n == 10 and C.agree == 7
    assert C.as_dict() == {"human_pass": {"pass": 4, "fail": 1},
                           "human_fail": {"pass": 2, "fail": 3}}


def test_agreement_kappa_precision_recall_by_hand() -> None:
    assert metrics.agreement(C) == pytest.approx(0.7)
    # p_o = 0.7; people pass 5/10, harness passes 6/10: p_e = .5*.6 + .5*.4 = 0.5
    assert metrics.cohen_kappa(C) == pytest.approx((0.7 - 0.5) / (1 - 0.5))
    assert metrics.precision_fail(C) == pytest.approx(3 / 4)
    assert metrics.recall_fail(C) == pytest.approx(3 / 5)


def test_kappa_edges() -> None:
    assert metrics.cohen_kappa(Confusion(pass_pass=5)) is None  # one label on both sides
    assert metrics.cohen_kappa(Confusion()) is None
    assert metrics.cohen_kappa(Confusion(pass_fail=5, fail_pass=5)) == pytest.approx(-1.0)
    assert metrics.cohen_kappa(Confusion(pass_pass=3, fail_fail=2)) == pytest.approx(1.0)
    # harness passes everything: agreement 0.5 is all chance
    assert metrics.cohen_kappa(Confusion(pass_pass=4, fail_pass=4)) == pytest.approx(0.0)
    assert metrics.precision_fail(Confusion(pass_pass=4, fail_pass=4)) is None
    assert metrics.recall_fail(Confusion(pass_pass=4, pass_fail=1)) is None


def test_roc_auc_by_hand() -> None:
    # pass/fail pairs: (.9,.8) ok, (.9,.3) ok, (.4,.8) wrong, (.4,.3) ok -> 3/4
    assert metrics.roc_auc([0.9, 0.8, 0.4, 0.3], [True, False, True, False]) == 0.75
    assert metrics.roc_auc([0.5, 0.5], [True, False]) == 0.5  # a tie counts half
    assert metrics.roc_auc([0.2, 0.7, 0.7], [True, False, True]) == pytest.approx(0.25)
    assert metrics.roc_auc([0.2, 0.7], [True, True]) is None


def test_best_threshold_sweep() -> None:
    assert metrics.best_threshold([0.1, 0.4, 0.6, 0.9], [False, False, True, True]) == (0.6, 4)
    # t=0.3 and t=0.9 both agree with 3 of 4; 0.3 is nearer 0.5
    assert metrics.best_threshold([0.1, 0.3, 0.7, 0.9], [False, True, False, True]) == (0.3, 3)
    assert metrics.best_threshold([], []) is None


def test_spearman_by_hand() -> None:
    assert metrics.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert metrics.spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    # ranks of y with a tie: 1.5, 1.5, 3 -> r = 1.5 / sqrt(2 * 1.5)
    assert metrics.spearman([1, 2, 3], [1, 1, 2]) == pytest.approx(1.5 / math.sqrt(3))
    assert metrics.spearman([1, 2, 3], [5, 5, 5]) is None
    assert metrics.spearman([1, 2], [1, 2]) is None


def test_bootstrap_is_reproducible_and_brackets_the_estimate() -> None:
    a = metrics.bootstrap_confusion(C, metrics.seeded("0:x"), 500)
    b = metrics.bootstrap_confusion(C, metrics.seeded("0:x"), 500)
    c = metrics.bootstrap_confusion(C, metrics.seeded("1:x"), 500)
    assert a == b and a != c
    for name, metric in metrics.CONFUSION_METRICS.items():
        lo, hi = a[name]
        assert lo <= metric(C) <= hi, name
    # no disagreement at all: every resample agrees fully
    assert metrics.bootstrap_confusion(Confusion(3, 0, 0, 3), metrics.seeded(0),
                                       200)["agreement"] == [1.0, 1.0]
    assert metrics.bootstrap_confusion(Confusion(), metrics.seeded(0), 10)["kappa"] is None
    assert metrics.bootstrap_confusion(C, metrics.seeded(0), 0)["kappa"] is None


def test_bootstrap_leaves_undefined_resamples_out() -> None:
    # harness never fails: precision of fail is undefined in every resample
    ci = metrics.bootstrap_confusion(Confusion(pass_pass=5, fail_pass=5), metrics.seeded(0), 100)
    assert ci["precision_fail"] is None and ci["recall_fail"] == [0.0, 0.0]
    assert ci["kappa"] == [0.0, 0.0]


def test_bootstrap_of_cells_matches_resampling_pairs() -> None:
    """One multinomial draw over the cells is resampling the pairs: same mean and spread."""
    rng = random.Random(7)
    pairs = [("pass", "pass")] * 4 + [("pass", "fail")] + [("fail", "pass")] * 2 \
        + [("fail", "fail")] * 3
    by_pairs = sorted(metrics.agreement(Confusion.of(rng.choices(pairs, k=10)))
                      for _ in range(4000))
    draws = metrics.seeded(8).multinomial(10, [0.4, 0.1, 0.2, 0.3], size=4000)
    by_cells = sorted(((d[0] + d[3]) / 10) for d in draws)
    assert sum(by_pairs) / 4000 == pytest.approx(sum(by_cells) / 4000, abs=0.01)
    assert by_pairs[100] == pytest.approx(by_cells[100], abs=0.1)
    assert by_pairs[3900] == pytest.approx(by_cells[3900], abs=0.1)


def test_bootstrap_auc() -> None:
    scores, human = [0.9, 0.8, 0.4, 0.3, 0.7, 0.2], [True, False, True, False, True, False]
    ci = metrics.bootstrap_auc(scores, human, metrics.seeded(0), 300)
    assert ci == metrics.bootstrap_auc(scores, human, metrics.seeded(0), 300)
    assert 0.0 <= ci[0] <= metrics.roc_auc(scores, human) <= ci[1] <= 1.0
    # perfectly separated: every resample with both classes has AUC 1; all ties: 0.5
    assert metrics.bootstrap_auc([0.9, 0.8, 0.2, 0.1], [True, True, False, False],
                                 metrics.seeded(0), 200) == [1.0, 1.0]
    assert metrics.bootstrap_auc([0.5] * 4, [True, False] * 2, metrics.seeded(0),
                                 200) == [0.5, 0.5]
    assert metrics.bootstrap_auc([0.5], [True], metrics.seeded(0), 50) is None


def test_bootstrap_auc_matches_resampling_pairs() -> None:
    """The vectorised AUC of a resample equals roc_auc of the same pairs drawn explicitly."""
    rng = random.Random(3)
    scores = [round(rng.random(), 1) for _ in range(30)]  # ties on purpose
    human = [rng.random() < 0.5 for _ in range(30)]
    explicit = []
    for _ in range(2000):
        pick = rng.choices(range(30), k=30)
        value = metrics.roc_auc([scores[i] for i in pick], [human[i] for i in pick])
        if value is not None:
            explicit.append(value)
    explicit.sort()
    lo, hi = metrics.bootstrap_auc(scores, human, metrics.seeded(1), 2000)
    assert lo == pytest.approx(explicit[int(0.025 * len(explicit))], abs=0.04)
    assert hi == pytest.approx(explicit[int(0.975 * len(explicit))], abs=0.04)
