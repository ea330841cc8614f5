"""The analyst service: FastAPI app, auth, jobs, web UI (``secfoundry serve``)."""
