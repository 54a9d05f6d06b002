-- bench/peers: every wrk request is a POST of a small JSON body, to Ray Serve's proxy and to
-- `muster gateway` alike (each front door decodes it and hands it to a no-op handler).
wrk.method = "POST"
wrk.body = '{"n":1}'
wrk.headers["Content-Type"] = "application/json"
