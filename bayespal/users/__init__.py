"""The users layer: new users placed in a fitted population, and the questions to ask them.

``newuser`` (few-shot posteriors: :class:`NewUser`, :class:`NewUserPosteriors`, the
reference's :class:`PointPlacement`, :func:`place_users`) and ``active`` (query selection:
:func:`acquisition`, :func:`suggest`).
"""

from bayespal.users.active import STRATEGIES, acquisition, suggest
from bayespal.users.newuser import NewUser, NewUserPosteriors, PointPlacement, place_users

__all__ = ["STRATEGIES", "NewUser", "NewUserPosteriors", "PointPlacement", "acquisition",
           "place_users", "suggest"]
