"""Threat-intelligence and vulnerability applications (``secfoundry intel``)."""
