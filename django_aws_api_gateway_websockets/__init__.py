"""Real-time WebSockets for Django, with AWS API Gateway holding the connections."""

__version__ = "0.1.0"
