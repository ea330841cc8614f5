"""secfoundry: build, train and measure security LLMs end to end."""

__version__ = "0.1.0"
