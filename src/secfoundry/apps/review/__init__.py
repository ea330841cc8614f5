"""Engineering enablement: config/code review and compliance (``secfoundry review``)."""
