"""ltx-serve's LTX-2.3 engine: a long-lived process that keeps the models resident and speaks
the JSON-lines protocol in `protocol.py` with the Rust worker (src/worker/engines/ltx/)."""
