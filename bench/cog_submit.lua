-- wrk script: a synchronous Cog prediction with the same inputs as our submit.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"input": {"prompt": "benchmark: a lighthouse at dusk", "num_frames": 9}}'
