"""Engineering enablement: config/code review and compliance (``secfoundry review``).

    from secfoundry.apps.review import review_code, review_config
    result = review_code(["src/"])   # schemas.ReviewResult
"""

from secfoundry.apps.review.review import review_code, review_config

__all__ = ["review_code", "review_config"]
