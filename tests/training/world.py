"""Generated interactions with planted structure: two user groups, each buying from one cluster."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass
class Planted:
    users: np.ndarray  # one row per event
    items: np.ndarray
    timestamps: np.ndarray
    user_group: np.ndarray  # per user: 0 or 1
    item_cluster: np.ndarray  # per item: 0 or 1
    n_users: int
    n_items: int

    def matrix(self) -> sparse.csr_matrix:
        """users x items event counts (float32)."""
        ones = np.ones(len(self.users), np.float32)
        shape = (self.n_users, self.n_items)
        return sparse.csr_matrix((ones, (self.users, self.items)), shape=shape, dtype=np.float32)


def planted_world(
    users_per_group: int = 100,
    items_per_cluster: int = 40,
    events_per_user: int = 14,
    noise: float = 0.03,
    seed: int = 7,
) -> Planted:
    """Each user picks distinct items of their group's cluster with a popularity skew (so
    co-occurrence carries signal); a `noise` share of picks come from the other cluster."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 2 * users_per_group, 2 * items_per_cluster
    # Clusters are interleaved at random so no model can lean on item index order.
    item_cluster = rng.permutation(np.repeat([0, 1], items_per_cluster))
    user_group = np.repeat([0, 1], users_per_group)
    popularity = 1.0 / (1.0 + np.arange(items_per_cluster)) ** 0.8
    popularity /= popularity.sum()
    users, items = [], []
    for user in range(n_users):
        own = np.flatnonzero(item_cluster == user_group[user])
        other = np.flatnonzero(item_cluster != user_group[user])
        picks = rng.choice(own, size=events_per_user, replace=False, p=popularity)
        stray = rng.random(events_per_user) < noise
        picks[stray] = rng.choice(other, size=int(stray.sum()))
        users.extend([user] * events_per_user)
        items.extend(picks.tolist())
    timestamps = rng.uniform(0, 100 * 86_400, size=len(users))
    return Planted(
        users=np.array(users),
        items=np.array(items),
        timestamps=timestamps,
        user_group=user_group,
        item_cluster=item_cluster,
        n_users=n_users,
        n_items=n_items,
    )
