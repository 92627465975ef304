"""Small helpers every layer may use: JSON text, the clock, a bounded LRU, addresses,
log-line safety, TLS contexts, the refusal rate table."""
