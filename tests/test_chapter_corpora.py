"""Chapter 0's analysis: loading the corpora, their table rows, the model-free baselines."""
from atome_core import data
from atome_core.chapters import corpora


def _corpus(text, name="toy"):
    train, val = data.train_val_split(text)
    return data.Corpus(name=name, text=text, train=train, val=val, sha256="ab" * 32, licence="MIT",
                       source="test", description="test")


def test_best_baseline_is_the_lowest_validation_score_and_ignores_the_training_entropy():
    row = {corpora.UNIGRAM_ENTROPY: 0.5, "0-gram": 4.0, "3-gram": 2.5, "xz -9e": 2.2}
    assert corpora.best_baseline(row) == ("xz -9e", 2.2)


def test_a_truncated_corpus_is_split_again_by_the_same_rule():
    c = corpora.truncated(_corpus("abcdefghij" * 100), 200)
    assert c.text == ("abcdefghij" * 100)[:200]
    assert (c.train, c.val) == data.train_val_split(c.text) and len(c.val) == 20


def test_corpus_summary_counts_utf8_bytes_and_characters_apart():
    s = corpora.corpus_summary(_corpus("héllo wörld " * 50))
    assert s["characters"] == 600 and s["bytes"] == 700
    assert s["train bytes"] + s["validation bytes"] == s["bytes"]
    assert s["distinct characters"] == len(set("héllo wörld ")) and s["sha256 (source)"] == "ab" * 8 + "…"


def test_baseline_row_scores_a_repetitive_text_far_below_its_unigram_entropy():
    text = b"to be or not to be, that is the question. " * 200
    row = corpora.baseline_row(text[:7000], text[7000:])
    assert list(row) == [corpora.UNIGRAM_ENTROPY, "0-gram", "1-gram", "2-gram", "3-gram", *corpora.COMPRESSORS]
    assert row["3-gram"] < 1.0 < row["0-gram"] < row[corpora.UNIGRAM_ENTROPY] + 0.1
    assert row["3-gram"] < row["1-gram"]


def test_load_corpora_adds_tinystories_only_when_a_file_is_given_and_truncates_every_corpus(monkeypatch, tmp_path):
    loaded_paths = []

    def fake_load(name, path=None):
        loaded_paths.append(path)
        return _corpus(name * 500, name)

    monkeypatch.setattr(data, "load_corpus", fake_load)
    monkeypatch.setattr(corpora, "tinystories_sample_path", lambda given: given)
    out = corpora.load_corpora(["alice"], None, None)
    assert list(out) == ["alice"] and len(out["alice"].text) == 2500
    story = tmp_path / "stories.txt"
    out = corpora.load_corpora(["alice"], story, 100)
    assert list(out) == ["alice", "tinystories"] and loaded_paths[-1] == str(story)
    assert all(len(c.text) == 100 and len(c.val) == 10 for c in out.values())


def test_the_given_tinystories_path_wins_over_the_shared_sample(tmp_path):
    assert corpora.tinystories_sample_path(tmp_path / "mine.txt") == tmp_path / "mine.txt"


def test_hamlet_opening_is_the_plays_markdown_before_conversion():
    raw = corpora.hamlet_opening(300)
    assert len(raw) == 300 and raw.lstrip().startswith("#")
    assert data.shakespeare_to_plain(raw) != raw
