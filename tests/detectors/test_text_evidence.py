import numpy as np

from detectors.text_evidence import character_surprisal, format_z


def test_format_z_scores_long_texts_and_rare_endings():
    texts = ["A short review of a film." for _ in range(30)] + ["A much longer text. " * 30, "A headline without an ending"]
    z = format_z(texts)
    assert np.argmax(z["length"]) == 30 and z["length"][30] > 3
    assert np.argmax(z["ending"]) == 31 and z["ending"][:31].max() == 0
    assert (z["length"] >= 0).all()


def test_character_surprisal_ranks_garbled_text_first():
    rng = np.random.default_rng(0)
    words = "the story moves along with charm and a light touch".split()
    texts = [" ".join(rng.choice(words, size=10)) for _ in range(30)] + ["tge stxry mocez alqng wiih chxrm"]
    scores = character_surprisal(texts)
    assert np.argmax(scores) == 30


def test_character_surprisal_of_texts_too_short_to_compare():
    assert character_surprisal(["ok", "", "a"]).tolist() == [0.0, 0.0, 0.0]
    scores = character_surprisal(["fine text here", "", "another fine text"])
    assert scores[1] == 0.0 and (scores[[0, 2]] > 0).all()
