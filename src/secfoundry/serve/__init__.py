"""The analyst service: FastAPI app, auth, jobs, web UI (``secfoundry serve``).

    from secfoundry.serve import ServeConfig, create_app
"""

from secfoundry.serve.config import ServeConfig


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003 - lazy import keeps `import secfoundry.serve` light
    from secfoundry.serve.app import create_app as _create

    return _create(*args, **kwargs)


__all__ = ["ServeConfig", "create_app"]
