"""A sample of the profiles Redis holds, as the simulations read them (``decision simulate --from-redis``, the
console's comparisons): found by SCAN, their memberships and attributes decoded by the audience directory."""

from __future__ import annotations

from decision.core.simulation import Profile
from decision.store.connect import AnyRedis
from decision.store.control import ControlStore
from decision.store.profiles import ProfileStore
from inbound_common.keys import KeySpace


async def sample_profiles(client: AnyRedis, keys: KeySpace, count: int, now: float) -> list[Profile]:
    """Up to ``count`` profiles, their audiences as they count at ``now``. Does not close ``client``."""
    profiles = ProfileStore(client, keys)
    directory = await profiles.refresh_directory()
    sample = await ControlStore(client, keys).sample_memberships(count)
    return [Profile(pid, directory.audiences(raw, now)[0], attributes=directory.attributes(raw)) for pid, raw in sample]
