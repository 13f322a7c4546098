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
    a = metrics.bootstrap_confusion(C, random.Random("0:x"), 500)
    b = metrics.bootstrap_confusion(C, random.Random("0:x"), 500)
    c = metrics.bootstrap_confusion(C, random.Random("1:x"), 500)
    assert a == b and a != c
    for name, metric in metrics.CONFUSION_METRICS.items():
        lo, hi = a[name]
        assert lo <= metric(C) <= hi, name
    # no disagreement at all: every resample agrees fully
    assert metrics.bootstrap_confusion(Confusion(3, 0, 0, 3), random.Random(0),
                                       200)["agreement"] == [1.0, 1.0]
    assert metrics.bootstrap_confusion(Confusion(), random.Random(0), 10)["kappa"] is None


def test_bootstrap_of_cells_matches_resampling_pairs() -> None:
    """Drawing cells with their frequencies is resampling pairs: same mean agreement."""
    rng = random.Random(7)
    pairs = [("pass", "pass")] * 4 + [("pass", "fail")] + [("fail", "pass")] * 2 \
        + [("fail", "fail")] * 3
    by_pairs = [metrics.agreement(Confusion.of(rng.choices(pairs, k=10))) for _ in range(4000)]
    cells = []
    rng = random.Random(8)
    for _ in range(4000):
        draw = rng.choices(range(4), cum_weights=[4, 5, 7, 10], k=10)
        cells.append(metrics.agreement(Confusion(*(draw.count(i) for i in range(4)))))
    assert sum(by_pairs) / 4000 == pytest.approx(sum(cells) / 4000, abs=0.01)


def test_bootstrap_auc() -> None:
    scores, human = [0.9, 0.8, 0.4, 0.3, 0.7, 0.2], [True, False, True, False, True, False]
    ci = metrics.bootstrap_auc(scores, human, random.Random(0), 300)
    assert ci == metrics.bootstrap_auc(scores, human, random.Random(0), 300)
    assert 0.0 <= ci[0] <= metrics.roc_auc(scores, human) <= ci[1] <= 1.0
