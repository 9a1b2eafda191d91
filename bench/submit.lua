-- wrk script: durable submits of a small clip.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LTX_KEY")
wrk.body = '{"prompt": "benchmark: a lighthouse at dusk", "num_frames": 9}'
