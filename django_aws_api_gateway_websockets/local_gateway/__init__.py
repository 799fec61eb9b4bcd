"""A local AWS API Gateway for WebSocket APIs: control plane, data plane and Management API.

Imports nothing from Django, so it can sit in front of any HTTP backend.
"""
