"""Proof of crash safety: resending MLLP senders, a broker process killed (SIGKILL) and
restarted, its embedded redis-server killed, a modality doing MPPS, the status messages at
a receiver process; afterwards the store, the message log, a C-FIND and the receiver are
checked against what was sent and acknowledged. ``scenario.run_soak`` is the entry point
(the test ``tests/integration/test_crash_safety.py`` and ``bench/soak.py``)."""
