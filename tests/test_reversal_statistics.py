"""Chapter 5's statistics against the libraries on the same data: the estimates are the
libraries' own, and each bootstrap interval agrees with scipy.stats.bootstrap resampling
the same unit (whole windows, each class, paired windows) within Monte-Carlo error."""
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from atome_core.chapters import reversal as ra

N_BOOT = 1500
MC = 0.04    # two intervals from 1,500 resamples each differ by about this much at most


def windows(seed=0, n=40, length=16):
    """Per-token pairs in windows whose tokens share a window effect (so they are dependent)."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(n, 1))
    x = shared + rng.normal(size=(n, length))
    y = 0.5 * shared + 0.3 * x + rng.normal(size=(n, length))
    return x, y


def test_spearman_is_scipys_on_ties_and_windows():
    x, y = windows()
    assert ra.spearman(x, y) == pytest.approx(stats.spearmanr(x.ravel(), y.ravel()).statistic, abs=1e-12)
    ties = np.random.default_rng(1).integers(0, 5, (2, 300))
    assert ra.spearman(*ties) == pytest.approx(stats.spearmanr(*ties).statistic, abs=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        ra.spearman([1.0, np.nan, 2.0], [1.0, 2.0, 3.0])


def test_auroc_is_sklearns_and_the_mann_whitney_u_with_ties():
    rng = np.random.default_rng(2)
    neg, pos = rng.integers(0, 6, 40).astype(float), rng.integers(2, 8, 30).astype(float)
    labels = np.r_[np.zeros(40), np.ones(30)]
    assert ra.auroc(neg, pos) == pytest.approx(roc_auc_score(labels, np.r_[neg, pos]), abs=1e-12)
    u = stats.mannwhitneyu(pos, neg).statistic
    assert ra.auroc(neg, pos) == pytest.approx(u / (40 * 30), abs=1e-12)


def test_the_window_bootstrap_agrees_with_scipys_bootstrap_of_whole_windows():
    x, y = windows()
    ours = ra.spearman_ci(x, y, n_boot=N_BOOT, seed=0)
    theirs = stats.bootstrap((np.arange(len(x)),), lambda rows: ra.spearman(x[rows], y[rows]), n_resamples=N_BOOT,
                             method="percentile", vectorized=False, random_state=np.random.default_rng(0))
    assert ours["low"] == pytest.approx(theirs.confidence_interval.low, abs=MC)
    assert ours["high"] == pytest.approx(theirs.confidence_interval.high, abs=MC)
    # resampling tokens as if independent gives a narrower, wrong interval: windows matter here
    tokens = ra.spearman_ci(x.ravel(), y.ravel(), n_boot=N_BOOT, seed=0)
    assert tokens["high"] - tokens["low"] < 0.8 * (ours["high"] - ours["low"])


def test_the_auroc_bootstrap_agrees_with_scipys_stratified_bootstrap():
    rng = np.random.default_rng(3)
    neg, pos = rng.normal(0, 1, 80), rng.normal(0.8, 1, 50)
    ours = ra.auroc_ci(neg, pos, n_boot=N_BOOT, seed=0)
    # scipy resamples each sample on its own when given two unpaired samples
    theirs = stats.bootstrap((neg, pos), ra.auroc, n_resamples=N_BOOT, method="percentile", vectorized=False,
                             random_state=np.random.default_rng(0))
    assert ours["estimate"] == ra.auroc(neg, pos)
    assert ours["low"] == pytest.approx(theirs.confidence_interval.low, abs=MC)
    assert ours["high"] == pytest.approx(theirs.confidence_interval.high, abs=MC)
