"""The users layer: new users placed in a fitted population, and the questions to ask them.

``newuser`` (few-shot posteriors: ``NewUser``, ``NewUserPosteriors``, the
reference's ``PointPlacement``, ``place_users``) and ``active`` (query selection:
``acquisition``, ``suggest``; over sets of items: ``set_acquisition``, ``suggest_set``).
"""

from bayespal.users.active import STRATEGIES, acquisition, set_acquisition, suggest, suggest_set
from bayespal.users.newuser import NewUser, NewUserPosteriors, PointPlacement, place_users

__all__ = ["STRATEGIES", "NewUser", "NewUserPosteriors", "PointPlacement", "acquisition",
           "place_users", "set_acquisition", "suggest", "suggest_set"]
