"""Every Redis-backed repository (worklist, patients, MPPS, message log, mapping versions,
retention, key schema) and the step pipeline that shares round trips between messages.
The only package besides ``broker.audit`` that talks to Redis; it imports no face."""
