-- wrk script: authenticated polling of one job.
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LTX_KEY")
