"""Unit tests for dubbing_pipeline.speakers.clustering."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from dubbing_pipeline.speakers.clustering import (
    assign_global,
    complete_linkage,
    match_to_global,
    relabel_by_first_appearance,
    speaker_embedding,
    unit,
)


def from_gram(gram: list[list[float]]) -> NDArray[np.float64]:
    """Unit vectors whose pairwise cosine similarities are exactly ``gram`` (must be PSD)."""
    g = np.asarray(gram, dtype=np.float64)
    values, vectors = np.linalg.eigh(g)
    assert values.min() > -1e-12, "not a valid similarity matrix"
    x: NDArray[np.float64] = vectors * np.sqrt(np.clip(values, 0.0, None))
    np.testing.assert_allclose(x @ x.T, g, atol=1e-9)
    return x


def same_partition(a: list[int], b: list[int]) -> bool:
    pairs = {(x, y) for x, y in zip(a, b, strict=True)}
    return len(pairs) == len(set(a)) == len(set(b))


def test_unit_vector_matrix_and_zero() -> None:
    np.testing.assert_allclose(unit(np.array([3.0, 4.0])), [0.6, 0.8])
    np.testing.assert_array_equal(unit(np.zeros(3)), np.zeros(3))
    m = unit(np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]]))
    np.testing.assert_allclose(m, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]])
    assert unit(np.array([[1, 2]], dtype=np.int32)).dtype == np.float64
    with pytest.raises(ValueError):
        unit(np.zeros((2, 2, 2)))


def test_complete_linkage_trivial_sizes() -> None:
    assert complete_linkage(np.zeros((0, 8))) == []
    assert complete_linkage(np.zeros(0)) == []
    assert complete_linkage(np.ones((1, 8))) == [0]
    with pytest.raises(ValueError):
        complete_linkage(np.ones(8))


def test_complete_linkage_two_groups_labelled_by_first_appearance() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=16), rng.normal(size=16)
    x = np.stack([b, a, b, a, a]) + 0.01 * rng.normal(size=(5, 16))
    assert complete_linkage(x) == [0, 1, 0, 1, 1]
    assert complete_linkage(x * np.array([[5.0], [0.1], [2.0], [1.0], [30.0]])) == [0, 1, 0, 1, 1]


def test_complete_linkage_does_not_chain() -> None:
    x = from_gram([[1.0, 0.86, 0.5], [0.86, 1.0, 0.85], [0.5, 0.85, 1.0]])
    # Single linkage would merge all three (a~b and b~c both exceed 0.78); complete linkage must not.
    assert complete_linkage(x, threshold=0.78) == [0, 0, 1]
    assert complete_linkage(x, threshold=0.4) == [0, 0, 0]


def test_complete_linkage_merges_closest_pair_first() -> None:
    x = from_gram([[1.0, 0.85, 0.7], [0.85, 1.0, 0.95], [0.7, 0.95, 1.0]])
    # b-c (0.95) merge first, then a can no longer join (its minimum to {b, c} is 0.7).
    assert complete_linkage(x, threshold=0.8) == [0, 1, 1]


def test_complete_linkage_threshold_is_strict() -> None:
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert complete_linkage(x, threshold=1.0) == [0, 1, 2]
    assert complete_linkage(x, threshold=0.999) == [0, 0, 1]
    assert complete_linkage(x, threshold=-1.0) == [0, 0, 0]


def test_complete_linkage_random_invariants() -> None:
    rng = np.random.default_rng(5)
    for _ in range(60):
        n, d = int(rng.integers(2, 40)), int(rng.integers(2, 12))
        centres = rng.normal(size=(int(rng.integers(1, 5)), d))
        x = centres[rng.integers(0, len(centres), size=n)] + rng.uniform(0.05, 1.0) * rng.normal(size=(n, d))
        threshold = float(rng.uniform(0.3, 0.95))
        labels = complete_linkage(x, threshold)
        assert sorted(set(labels)) == list(range(len(set(labels))))
        firsts = [labels.index(k) for k in range(len(set(labels)))]
        assert firsts == sorted(firsts)  # numbered by first appearance
        sim = unit(x) @ unit(x).T
        for k in set(labels):
            members = [i for i, lab in enumerate(labels) if lab == k]
            assert all(sim[i, j] > threshold for i in members for j in members if i != j)
        perm = rng.permutation(n)
        permuted = complete_linkage(x[perm], threshold)
        assert same_partition([labels[i] for i in perm], permuted)


def test_speaker_embedding_uses_longest_qualifying_items() -> None:
    e = np.eye(5)
    durations = [0.5, 3.0, 2.0, 1.0, 4.0]
    np.testing.assert_allclose(speaker_embedding(e, durations, k=3), unit(e[1] + e[2] + e[4]))
    np.testing.assert_allclose(speaker_embedding(e, durations, k=1), e[4])
    np.testing.assert_allclose(speaker_embedding(e, durations, k=10), unit(e[1:].sum(axis=0)))
    np.testing.assert_allclose(speaker_embedding(e, [0.2, 0.9, 0.9, 0.1, 0.3]), e[1])  # none qualify


def test_speaker_embedding_is_scale_invariant_per_item() -> None:
    e = np.array([[100.0, 0.0], [0.0, 1.0]])
    out = speaker_embedding(e, [2.0, 2.0])
    np.testing.assert_allclose(out, unit(np.array([1.0, 1.0])))
    assert np.linalg.norm(out) == pytest.approx(1.0)


def test_speaker_embedding_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        speaker_embedding(np.zeros((0, 4)), [])
    with pytest.raises(ValueError):
        speaker_embedding(np.eye(3), [1.0, 2.0])
    with pytest.raises(ValueError):
        speaker_embedding(np.eye(3), [1.0, 2.0, 3.0], k=0)


def test_match_to_global_basic() -> None:
    g = np.eye(3)
    assert match_to_global(np.zeros((0, 3)), g) == [-1, -1, -1]
    assert match_to_global(g, np.zeros((0, 3))) == []
    c = np.array([[0.0, 0.0, 1.0], [1.0, 0.05, 0.0], [0.5, 0.5, 0.0]])
    assert match_to_global(g, c) == [2, 0, -1]  # the last is cos 0.71 < 0.8 from everyone
    assert match_to_global(g, c, threshold=0.7) == [2, 0, 1]
    with pytest.raises(ValueError):
        match_to_global(np.eye(2), np.eye(3))


def test_match_to_global_is_one_to_one() -> None:
    g = np.array([[1.0, 0.0]])
    c = np.array([[1.0, 0.01], [1.0, 0.02]])
    assert match_to_global(g, c) == [0, -1]


def test_hungarian_beats_greedy() -> None:
    # Vectors A, B (global) and x, y (chunk) with cos(x,A)=.95, cos(x,B)=.90, cos(y,A)=.92, cos(y,B)=.5.
    v = from_gram(
        [
            [1.0, 0.75, 0.95, 0.92],
            [0.75, 1.0, 0.90, 0.5],
            [0.95, 0.90, 1.0, 0.8],
            [0.92, 0.5, 0.8, 1.0],
        ]
    )
    g, c = v[:2], v[2:]
    sim = c @ g.T
    greedy_total = sim[0, 0] + 0.8  # x->A, y new (valued at the threshold)
    assert sim[0, 1] + sim[1, 0] > greedy_total
    # Greedy (best pair first) would give x->A, then y has only B (0.5) left: y is new.
    # The optimal assignment keeps both speakers: x->B, y->A.
    assert match_to_global(g, c, threshold=0.8) == [1, 0]


def test_assign_global_tracks_speakers_across_chunks() -> None:
    rng = np.random.default_rng(9)
    a, b, c = unit(rng.normal(size=(3, 32)))
    noise = 0.02
    chunks = [
        np.stack([a, b]) + noise * rng.normal(size=(2, 32)),
        np.stack([b]) + noise * rng.normal(size=(1, 32)),
        np.zeros((0, 32)),
        np.stack([c, a]) + noise * rng.normal(size=(2, 32)),
    ]
    ids, globals_ = assign_global(chunks, threshold=0.8)
    assert ids == [[0, 1], [1], [], [2, 0]]
    assert globals_.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(globals_, axis=1), 1.0)
    expected_a = unit(unit(chunks[0][0]) + unit(chunks[3][1]))
    np.testing.assert_allclose(globals_[0], expected_a)
    ids_strict, globals_strict = assign_global(chunks, threshold=0.99999)
    assert ids_strict == [[0, 1], [2], [], [3, 4]]
    assert globals_strict.shape == (5, 32)


def test_assign_global_empty_and_bad_dims() -> None:
    ids, g = assign_global([])
    assert ids == [] and g.shape == (0, 0)
    ids, g = assign_global([np.zeros((0, 4))])
    assert ids == [[]] and g.shape == (0, 4)
    with pytest.raises(ValueError):
        assign_global([np.eye(3), np.eye(4)])


def test_relabel_by_first_appearance() -> None:
    assert relabel_by_first_appearance([5, 3, 5, 7], [2.0, 1.0, 3.0, 0.5]) == [2, 1, 2, 0]
    assert relabel_by_first_appearance([1, 0, 1], [0.0, 0.0, 1.0]) == [0, 1, 0]  # ties: list order
    assert relabel_by_first_appearance([-1, 4, 2], [0.0, 1.0, 2.0]) == [-1, 0, 1]
    assert relabel_by_first_appearance([], []) == []
    with pytest.raises(ValueError):
        relabel_by_first_appearance([0], [])
