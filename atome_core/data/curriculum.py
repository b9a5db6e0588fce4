"""A data curriculum: a mixture of named corpora whose weights change over training.

The schedule is a list of (fraction of training, {corpus: weight}) points; between
points the weights are interpolated linearly, before the first and after the last
they are held. Each row of a batch picks its corpus with those weights from the
trainer's seeded generator, so a run is reproducible from its seed, and the trainer
logs the weights in force at each logged step.

Atom 3.4m's recipe (web text early, educational and math text later) becomes, on
our offline corpora, e.g. [(0.0, {"moby": 0.7, "shakespeare": 0.3}),
(1.0, {"moby": 0.1, "shakespeare": 0.9})].
"""
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Curriculum:
    corpora: dict            # name -> 1-D integer token array
    schedule: list           # [(fraction in [0, 1], {name: weight >= 0}), ...], fractions increasing

    def __post_init__(self):
        if not self.corpora:
            raise ValueError("a curriculum needs at least one corpus")
        if not self.schedule:
            raise ValueError("a curriculum needs at least one schedule point")
        fractions = [f for f, _ in self.schedule]
        if fractions != sorted(fractions) or fractions[0] < 0 or fractions[-1] > 1:
            raise ValueError(f"schedule fractions must increase within [0, 1], got {fractions}")
        for f, weights in self.schedule:
            unknown = set(weights) - set(self.corpora)
            if unknown:
                raise ValueError(f"schedule point {f} names unknown corpora {sorted(unknown)}")
            if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError(f"schedule point {f}: weights must be >= 0 and not all zero")
        self.names = list(self.corpora)
        self.corpora = {k: np.asarray(v) for k, v in self.corpora.items()}

    def weights_at(self, step: int, total_steps: int) -> dict:
        """Normalised mixture weights for optimizer step `step` (1-based) of `total_steps`."""
        t = (step - 1) / max(1, total_steps - 1)
        points = [(f, np.array([w.get(n, 0.0) for n in self.names], dtype=float)) for f, w in self.schedule]
        if t <= points[0][0]:
            w = points[0][1]
        elif t >= points[-1][0]:
            w = points[-1][1]
        else:
            for (f0, w0), (f1, w1) in zip(points, points[1:]):
                if f0 <= t <= f1:
                    w = w0 + (w1 - w0) * ((t - f0) / (f1 - f0) if f1 > f0 else 1.0)
                    break
        w = w / w.sum()
        return dict(zip(self.names, w.tolist()))

    def batch(self, step: int, total_steps: int, batch_size: int, seq_len: int, rng: np.random.Generator):
        """(x, y) LongTensors: each row a random window of a corpus drawn by the weights."""
        weights = self.weights_at(step, total_steps)
        picks = rng.choice(len(self.names), size=batch_size, p=[weights[n] for n in self.names])
        rows = []
        for i in picks:
            tokens = self.corpora[self.names[i]]
            if len(tokens) <= seq_len:
                raise ValueError(f"corpus {self.names[i]!r} has {len(tokens)} tokens, too few for {seq_len}+1")
            start = rng.integers(0, len(tokens) - seq_len)
            rows.append(tokens[start:start + seq_len + 1])
        windows = torch.from_numpy(np.stack(rows).astype(np.int64))
        return windows[:, :-1], windows[:, 1:]
