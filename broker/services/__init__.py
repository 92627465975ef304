"""The application: the use cases every face calls (``broker.services.application``)."""
