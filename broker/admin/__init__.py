"""The admin face: the REST API (and, to come, the web console and DICOMweb).

``app.create_app(services, settings)`` builds the FastAPI application with its state
injected; ``server.AdminServer`` runs it with uvicorn on the broker's event loop.
Modules: ``problems`` (every error as RFC 9457 problem+json, from one handler),
``middleware`` (security headers, request body bound), ``security`` (who is calling:
session cookie or bearer token, roles, CSRF), and one router module per resource
(``health``, ``session``, ``status``, ``users``).
"""
