"""Public alias of :mod:`secfoundry.core.paths` (where state and offline data are found).

Kept so that code written against ``secfoundry.paths`` keeps working; new code imports
``secfoundry.core.paths``.
"""

from secfoundry.core.paths import (  # noqa: F401
    benchmark_data_dir,
    cache_dir,
    home,
    mirror_dir,
    shared_data,
)
