-- wrk script: the webhook receiver's own POST rate (the ceiling for deliveries/s), with a body
-- the size of a job's webhook.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.rep("x", 900)
