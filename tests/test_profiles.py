import pytest

from atome_core.book import profiles


def test_every_chapter_resolves_under_every_profile():
    spec = profiles.load_profiles()
    for chapter in spec["chapters"]:
        for prof in profiles.PROFILE_NAMES:
            params = profiles.chapter_parameters(chapter, prof, spec)
            assert params["profile"] == prof


def test_profile_overrides_defaults_and_explicit_values_win(monkeypatch):
    monkeypatch.setenv("ATOME_PROFILE", "smoke")
    ns = {"profile": None, "seed": None, "max_chars": None, "corpora": ["moby"]}
    p = profiles.resolve_parameters("00_corpora", ns)
    assert p.profile == "smoke"
    assert p.max_chars == profiles.chapter_parameters("00_corpora", "smoke")["max_chars"]
    assert p.corpora == ["moby"]          # explicit value kept
    monkeypatch.delenv("ATOME_PROFILE")
    assert profiles.resolve_parameters("00_corpora", {"profile": None}).profile == "cpu"
    assert profiles.resolve_parameters("00_corpora", {"profile": "paper"}).profile == "paper"


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.chapter_parameters("00_corpora", "gpu")


def test_malformed_profiles_file_is_rejected(tmp_path):
    bad = tmp_path / "profiles.yml"
    bad.write_text("profiles: {smoke: {}}\nchapters:\n  x:\n    smoke: {n: 1}\n")
    with pytest.raises(ValueError, match="not declared in defaults"):
        profiles.load_profiles(bad)
    bad.write_text("profiles: {turbo: {}}\nchapters: {}\n")
    with pytest.raises(ValueError, match="unknown profiles"):
        profiles.load_profiles(bad)


def test_a_derived_profile_takes_its_base_profiles_parameters_and_cuts_only_sizes(tmp_path):
    path = tmp_path / "profiles.yml"
    path.write_text("profiles: {paper: {}, paper-smoke: {base: paper}}\n"
                    "chapters:\n  x:\n    defaults: {steps: 10, lr: 0.1, recipe: cpu}\n"
                    "    paper: {steps: 3000, recipe: paper}\n    paper-smoke: {steps: 4}\n")
    spec = profiles.load_profiles(path)
    assert profiles.chapter_parameters("x", "paper-smoke", spec) == {"profile": "paper-smoke", "steps": 4,
                                                                     "lr": 0.1, "recipe": "paper"}
    path.write_text(path.read_text().replace("paper-smoke: {steps: 4}", "paper-smoke: {steps: 4, lr: 0.5}"))
    with pytest.raises(ValueError, match=r"changes only sizes, not \['lr'\]"):
        profiles.load_profiles(path)


def test_a_profile_based_on_a_missing_or_derived_profile_is_refused(tmp_path):
    path = tmp_path / "profiles.yml"
    path.write_text("profiles: {paper-smoke: {base: paper}}\nchapters: {}\n")
    with pytest.raises(ValueError, match="not a profile of its own"):
        profiles.load_profiles(path)


def test_the_book_declares_paper_smoke_as_the_paper_profile_cut():
    spec = profiles.load_profiles()
    assert profiles.base_profile("paper-smoke", spec) == "paper"
    assert spec["profiles"]["paper"].get("checkpoints") and spec["profiles"]["paper-smoke"].get("checkpoints")


def test_a_derived_profile_takes_only_the_sizes_of_the_profile_it_names(tmp_path):
    path = tmp_path / "profiles.yml"
    path.write_text("profiles: {smoke: {}, paper: {}, paper-smoke: {base: paper, sizes_from: smoke}}\n"
                    "chapters:\n  x:\n    defaults: {steps: 10, recipe: cpu, val_bytes: 100, corpus: a}\n"
                    "    smoke: {steps: 2, corpus: b}\n    paper: {steps: 3000, recipe: paper, val_bytes: null}\n"
                    "    paper-smoke: {val_bytes: 50}\n")
    params = profiles.chapter_parameters("x", "paper-smoke", profiles.load_profiles(path))
    assert params == {"profile": "paper-smoke", "steps": 2, "recipe": "paper", "val_bytes": 50, "corpus": "a"}


def test_paper_smoke_differs_from_paper_only_in_sizes_for_every_chapter():
    spec = profiles.load_profiles()
    for chapter in spec["chapters"]:
        paper = profiles.chapter_parameters(chapter, "paper", spec)
        cut = profiles.chapter_parameters(chapter, "paper-smoke", spec)
        changed = {k for k in paper if k != "profile" and paper[k] != cut[k]}
        assert all(profiles.is_size(k) for k in changed), (chapter, changed)
