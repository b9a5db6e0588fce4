import json

from atome_core.book import claims


def _ab_metrics(routed_ppl):
    final = {f"tinystories|{name}": {"ppl": {"median": ppl, "n": 3}}
             for name, ppl in [("routed", routed_ppl), ("vanilla param-fair", 7.1),
                               ("vanilla flash-fair", 15.0), ("modern", 5.5)]}
    return {"04_ab_60k": {"main_corpus": "tinystories", "steps": 1500, "final": final}}


def test_every_claim_says_not_measured_without_results():
    table = claims.claims_markdown({}, "cpu")
    rows = table.strip().splitlines()[2:]
    assert len(rows) == len(claims.CLAIMS)
    assert all(claims.NOT_MEASURED in row for row in rows)
    assert "`cpu` profile" in table


def test_our_number_comes_from_the_chapter_metrics(tmp_path):
    chapter = tmp_path / "04_ab_60k"
    chapter.mkdir()
    (chapter / "metrics.json").write_text(json.dumps(_ab_metrics(7.59)["04_ab_60k"]))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json")     # skipped, not fatal
    metrics = claims.load_metrics(tmp_path)
    assert set(metrics) == {"04_ab_60k"}
    row = next(r for r in claims.claims_markdown(metrics, "smoke").splitlines() if "flash-fair one by 52" in r)
    assert "routed 7.59, param-fair 7.10, flash-fair 15.00, modern 5.50" in row and "1,500 steps" in row
    # a different measurement gives a different table: nothing is typed in
    other = claims.claims_markdown(_ab_metrics(9.25), "smoke")
    assert "routed 9.25" in other and "routed 7.59" not in other


def test_a_chapter_missing_a_key_is_not_measured_not_an_error():
    metrics = _ab_metrics(7.59)
    del metrics["04_ab_60k"]["final"]["tinystories|modern"]
    row = next(r for r in claims.claims_markdown(metrics, "cpu").splitlines() if "flash-fair one by 52" in r)
    assert claims.NOT_MEASURED in row
