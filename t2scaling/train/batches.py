"""Training batches: non-overlapping token windows of the train file, one seeded permutation per epoch, so a
step's batch is a pure function of (seed, step).
"""

import numpy as np


class TokenWindows:
    """Deterministic batches of (seq_len + 1)-token windows from a flat token array (see module doc)."""

    def __init__(self, tokens, seq_len, seed, path="train tokens"):
        self.tokens, self.seq_len, self.seed = tokens, seq_len, seed
        self.n_windows = (len(tokens) - 1) // seq_len
        if self.n_windows < 1:
            raise ValueError(f"{path}: {len(tokens)} tokens, fewer than seq_len + 1 = {seq_len + 1}; "
                             "use a larger corpus or a shorter --seq-len")
        self._epoch, self._order = None, None

    def _permutation(self, epoch):
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
        return self._order

    def rows(self, first, count):
        """Global samples first..first+count-1 as an int64 array (count, seq_len + 1)."""
        index = np.arange(first, first + count)
        epochs = index // self.n_windows
        windows = np.empty(count, dtype=np.int64)
        for epoch in np.unique(epochs):
            hit = epochs == epoch
            windows[hit] = self._permutation(int(epoch))[index[hit] % self.n_windows]
        offsets = windows[:, None] * self.seq_len + np.arange(self.seq_len + 1)
        return np.asarray(self.tokens[offsets], dtype=np.int64)
