"""SOC acceleration (``secfoundry soc``)."""
