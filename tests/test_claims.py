import json

import pytest

from atome_core.book import claims
from atome_core.book.results import ChapterResults


def _ab_claims(tmp_path, monkeypatch, routed_ppl, drop=None):
    """Write chapter 4's claims block the way the notebook does, through ChapterResults."""
    monkeypatch.setenv("ATOME_RESULTS_DIR", str(tmp_path / "04_ab_60k"))
    results = ChapterResults("04_ab_60k", "smoke")
    values = {"corpus": ("tinystories", ""), "steps": (1500, "steps"), "seeds": (3, "seeds"),
              "routed_ppl": (routed_ppl, "per-byte perplexity"), "param_fair_ppl": (7.1, "per-byte perplexity"),
              "flash_fair_ppl": (15.0, "per-byte perplexity"), "modern_ppl": (5.5, "per-byte perplexity")}
    for key, (value, unit) in values.items():
        if key != drop:
            results.claim(key, value, unit)
    return claims.load_metrics(tmp_path)


def _row(table, text):
    return next(r for r in table.splitlines() if text in r)


def test_every_claim_says_not_measured_without_results():
    table = claims.claims_markdown({}, "cpu")
    rows = table.strip().splitlines()[2:]
    assert len(rows) == len(claims.CLAIMS)
    assert all(claims.NOT_MEASURED in row for row in rows)
    assert "`cpu` profile" in table


def test_our_number_comes_from_the_chapters_claims_block(tmp_path, monkeypatch):
    metrics = _ab_claims(tmp_path, monkeypatch, 7.59)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json")     # skipped, not fatal
    assert set(claims.load_metrics(tmp_path)) == {"04_ab_60k"}
    row = _row(claims.claims_markdown(metrics, "smoke"), "flash-fair one by 52")
    assert "routed 7.59, param-fair 7.10, flash-fair 15.00, modern 5.50" in row and "1,500 steps" in row
    # a different measurement gives a different table: nothing is typed in
    other = claims.claims_markdown(_ab_claims(tmp_path, monkeypatch, 9.25), "smoke")
    assert "routed 9.25" in other and "routed 7.59" not in other


def test_a_chapter_that_ran_without_a_declared_key_is_flagged_not_hidden(tmp_path, monkeypatch):
    metrics = _ab_claims(tmp_path, monkeypatch, 7.59, drop="modern_ppl")
    row = _row(claims.claims_markdown(metrics, "cpu"), "flash-fair one by 52")
    assert "MISSING" in row and "modern_ppl" in row and claims.NOT_MEASURED not in row
    assert claims.missing_claims(metrics) == ["04_ab_60k: modern_ppl"]


def test_metrics_outside_the_claims_block_are_never_read(tmp_path, monkeypatch):
    metrics = {"04_ab_60k": {"routed_ppl": 6.0, "final": {"routed": 6.0}}}
    assert "MISSING" in _row(claims.claims_markdown(metrics, "cpu"), "flash-fair one by 52")


def test_a_claim_the_build_could_not_measure_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("ATOME_RESULTS_DIR", str(tmp_path / "05_reversal"))
    results = ChapterResults("05_reversal", "smoke")
    for key in ("published_windows", "published_routed_nats_per_byte", "published_vanilla_nats_per_byte"):
        results.claim(key, None, reason="no ../shared/interop")
    row = _row(claims.claims_markdown(claims.load_metrics(tmp_path), "smoke"), "reverses")
    assert "not measured in this build: no ../shared/interop" in row
    with pytest.raises(ValueError, match="say why"):
        results.claim("published_windows", None)
    stored = json.loads((tmp_path / "05_reversal" / "metrics.json").read_text())["claims"]
    assert stored["published_windows"] == {"value": None, "unit": "", "reason": "no ../shared/interop"}


def test_each_row_carries_the_verdict_its_numbers_give_and_it_changes_with_them(tmp_path, monkeypatch):
    holds = _row(claims.claims_markdown(_ab_claims(tmp_path, monkeypatch, 6.5), "cpu"), "flash-fair one by 52")
    refuted = _row(claims.claims_markdown(_ab_claims(tmp_path, monkeypatch, 7.59), "cpu"), "flash-fair one by 52")
    assert "| holds |" in holds and "the routed model is below both baselines" in holds
    assert "| refuted |" in refuted and "not below the param-fair one's" in refuted
    header = claims.claims_markdown({}, "cpu").splitlines()[0]
    assert "| verdict | why | chapter |" in header
    assert all("| not comparable | not measured in this build |" in r
               for r in claims.claims_markdown({}, "cpu").splitlines()[2:])
