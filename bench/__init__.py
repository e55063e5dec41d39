"""One-command throughput, latency, memory and replay benchmark (``python -m bench``); see __main__."""
